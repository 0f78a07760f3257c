"""The memory estimate that `archc compile --max-memory` checks is measured, not guessed: building
a 3,006-node network in a fresh process must grow it by less than the estimate, and by more than
a quarter of it (an estimate far above the truth would refuse networks that fit)."""
from __future__ import annotations

import subprocess
import sys

import pytest

# The build's own peak: freed memory goes back to the OS first (malloc_trim) and the peak is reset to the
# current size (clear_refs 5), so neither the compile's earlier peak nor its freed heap hides the growth.
CODE = """
import ctypes, gc
from archc.compiler.passes import compile_file
from archc.runtime.memory import build_bytes
import archc.compiler.builder as builder

def kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

g = compile_file(text='''arch chain
input [3, 8, 8]
conv(8, 3, pad = 1)
{ conv(8, 3, pad = 1); bn; relu } * 1000
gap; flatten; linear(10)
''').graph
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = kib("VmRSS")
model = builder.build_graph(g)
grown = kib("VmHWM") - before
print(len(g), grown, build_bytes(g))
"""


@pytest.mark.slow
def test_estimate_bounds_the_measured_growth():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    nodes, grown, estimated = map(int, r.stdout.split())
    print(f"{nodes} nodes: grew {grown / nodes / 1024:.1f} KiB a node, estimate {estimated / nodes / 1024:.1f}")
    assert estimated / 4 < grown < estimated


def _cgroup(folder, limit: str, current: int, stat: str | None):
    folder.mkdir(exist_ok=True)
    (folder / "memory.max").write_text(limit + "\n")
    (folder / "memory.current").write_text(f"{current}\n")
    if stat is not None:
        (folder / "memory.stat").write_text(stat)
    return folder


def test_a_container_s_reclaimable_page_cache_counts_as_room(tmp_path):
    """cgroup v2 (Documentation/admin-guide/cgroup-v2.rst): memory.current includes the page cache, and
    inactive_file is the part the kernel reclaims first."""
    from archc.runtime.preflight import _cgroup_room
    mib = 2**20
    stat = f"anon {300 * mib}\nfile {700 * mib}\nactive_file {100 * mib}\ninactive_file {600 * mib}\n"
    assert _cgroup_room(_cgroup(tmp_path, str(1024 * mib), 1000 * mib, stat)) == [624 * mib]
    assert _cgroup_room(_cgroup(tmp_path, str(1024 * mib), 1000 * mib, "garbled")) == [24 * mib]  # all counted used
    assert _cgroup_room(_cgroup(tmp_path, "max", 1000 * mib, stat)) == []
    assert _cgroup_room(tmp_path / "absent") == []
