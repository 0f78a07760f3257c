"""Wall time of `archc check` on a DenseNet-264-sized spec next to `python -c pass`.

Target (issue 2): under 0.3 s on a 2-core machine. Prints the median of several runs. The
project's modules are byte-compiled first, as any normal run leaves them (this sandbox sets
PYTHONDONTWRITEBYTECODE, which would otherwise recompile them on every start, +35 ms).
Run: .venv/bin/python bench/check_speed.py
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHC = [sys.executable, "-m", "archc"]


def wall(cmd: list[str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    spec = ROOT / "archs" / ("densenet264.arch" if (ROOT / "archs/densenet264.arch").exists() else "densenet121.arch")
    cmd = [*ARCHC, "check", str(spec), "--set", "blocks=[6,12,64,48]"]
    subprocess.run([sys.executable, "-m", "compileall", "-q", "__init__.py", "__main__.py", "dsl", "compiler", "runtime"], cwd=ROOT, check=True)
    base = wall([sys.executable, "-c", "pass"])
    check = wall(cmd)
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(f"python -c pass        {base:6.3f} s")
    print(f"archc check (264)     {check:6.3f} s   {out}")
    print(f"target < 0.300 s: {'met' if check < 0.3 else 'MISSED'}")


if __name__ == "__main__":
    main()
