"""``python -m archc``: the command line."""
import sys

from archc.runtime.cli import main

sys.exit(main())
