"""``compare --measure``: timing real training steps of one arch in a fresh, isolated process.

Each arch runs in its own child (``python -I -m archc.runtime.measure SPEC``) so that its peak
memory is its own: CUDA's allocator statistics on a GPU, the growth of the child's peak RSS on
CPU. ``-I`` (isolated mode) keeps the working folder and every PYTHON* variable off the child's
``sys.path``: a ``runtime/``, ``archc/`` or ``torch/`` folder where the user stands is never
imported; the child imports archc and torch from where they are installed.

Timing: WARMUP_STEPS untimed steps, then ``rounds`` rounds of ``steps`` steps each; images/s is
the median round, with the slowest and fastest round as its range. The child reports each round
on stderr as it finishes (the parent relays it) and one JSON object on stdout at the end; a
failure is a JSON ``error`` and exit code 2, which the parent turns into an ``ArchError``.
"""
from __future__ import annotations

import collections
import json
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass

from archc.dsl.errors import ArchError, MeasureError
from archc.dsl.text import printable

WARMUP_STEPS = 2  # excluded from timing: cuDNN autotuning, allocator growth, lazy init


@dataclass(frozen=True)
class MeasureSpec:
    """What the child measures; travels as JSON on its command line."""
    file: str  # absolute: the child's working folder is the parent's, but say it plainly
    sets: tuple  # --set NAME=VALUE texts
    limits: dict  # max_nodes, max_params, max_depth
    batch: int
    device: str  # auto | cpu | cuda
    steps: int  # timed steps per round
    rounds: int


# ---- parent side ------------------------------------------------------------------------------
def measure_in_child(spec: MeasureSpec, echo) -> dict:
    """Run the child, relaying its progress lines through ``echo``; its result dict, or MeasureError."""
    cmd = [sys.executable, "-I", "-m", "archc.runtime.measure", json.dumps(asdict(spec))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
    tail = collections.deque(maxlen=20)  # the end of a traceback, for the error message
    for line in proc.stderr:  # the child writes one short JSON line to stdout: no pipe deadlock
        echo("  " + printable(line.rstrip(), 300))
        tail.append(line.rstrip())
    out, rc = proc.stdout.read(), proc.wait()
    result = _result(out)
    if rc == 0 and result is not None and "error" not in result:
        return result
    hint = (result or {}).get("hint") or ("the child's output is above; measure the arch alone with a small "
                                          "batch (`--batch-size 8`) to narrow it down")
    raise MeasureError(f"measuring {printable(spec.file)} failed: {_why(rc, result, tail)}",
                       where=printable((result or {}).get("where") or "--measure"), hint=printable(hint, 500))


def _result(stdout: str) -> dict | None:
    lines = stdout.strip().splitlines()
    try:
        value = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _why(rc: int, result: dict | None, tail) -> str:
    if result is not None and "error" in result:
        return printable(result["error"], 500)
    if rc < 0:
        return f"the process was killed by signal {-rc}" + (" (out of memory?)" if -rc == 9 else "")
    last = next((t for t in reversed(tail) if t.strip()), "no output")
    return f"exit code {rc}: {printable(last, 300)}"


# ---- child side -------------------------------------------------------------------------------
def measure(spec: MeasureSpec, report) -> dict:
    """Build the module, run warmup + timed rounds of SGD steps; speed (median, range) and peak memory."""
    import torch
    from archc.compiler.builder import build_graph
    from archc.runtime.cli import parse_sets
    from archc.runtime.compare import compile_for
    from archc.runtime.distributed import resolve_device
    graph, _ = compile_for(spec.file, parse_sets(spec.sets), spec.limits)
    dev = resolve_device(spec.device)
    if dev.type == "cpu":
        _warm_cpu_runtime(torch)
    rss_before = _peak_rss()
    step = _train_step(torch, build_graph(graph).to(dev).train(), graph, spec.batch, dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(dev)  # the peak still counts the weights: they stay allocated
    try:
        speeds = _rounds(torch, step, spec, dev, report)
    except torch.cuda.OutOfMemoryError:
        raise MeasureError(f"out of memory on {dev} at batch {spec.batch}", where="--batch-size",
                           hint="lower --batch-size") from None
    if dev.type == "cuda":
        peak, name = torch.cuda.max_memory_allocated(dev), torch.cuda.get_device_name(dev)
    else:
        peak, name = _peak_rss() - rss_before, "cpu"
    return {"images_per_s": statistics.median(speeds), "images_per_s_range": [min(speeds), max(speeds)],
            "rounds": speeds, "peak_bytes": peak, "device": name}


def _warm_cpu_runtime(torch):
    """Train a throwaway conv net for two steps. Torch's first CPU training step sets up thread
    pools, per-thread malloc arenas and kernel caches worth ~200 MB of RSS; doing that before
    the baseline keeps it out of the arch's peak-memory delta."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        net(torch.randn(8, 3, 32, 32)).sum().backward()
        opt.step()


def _train_step(torch, model, graph, batch: int, dev):
    """One fwd + bwd + SGD-momentum step on a fixed random batch (cross-entropy for class scores)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, *graph.input_shape, device=dev)
    out_shape = graph.shapes[graph.output_id]
    y = torch.randint(0, out_shape[0], (batch,), device=dev) if len(out_shape) == 1 else None

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out, y) if y is not None else out.float().square().mean()
        loss.backward()
        opt.step()
    return step


def _rounds(torch, step, spec: MeasureSpec, dev, report) -> list[float]:
    """Images/s of each round; CUDA is synchronised at both ends of every round."""
    import time
    for _ in range(WARMUP_STEPS):
        step()
    speeds = []
    for r in range(spec.rounds):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        for _ in range(spec.steps):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        speeds.append(spec.batch * spec.steps / (time.perf_counter() - start))
        report(f"round {r + 1}/{spec.rounds}: {speeds[-1]:,.1f} img/s")
    return speeds


def _peak_rss() -> int:
    """This process's peak resident set size in bytes (Linux reports KiB, macOS bytes)."""
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def main(argv: list[str]) -> int:
    """The child: one JSON line on stdout (the result or its error), progress on stderr."""
    spec = MeasureSpec(**json.loads(argv[1]))
    try:
        result = measure(spec, lambda line: print(line, file=sys.stderr, flush=True))
    except ArchError as e:
        where = e.where or (str(e.span) if e.span else None)
        result = {"error": f"{e.phase}: {e.what}", "where": where, "hint": e.hint}
    except Exception as e:  # torch's own failures (out of memory, a kernel refusing a shape): one line, no traceback
        result = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}",
                  "hint": "measure the arch alone with a small batch (`--batch-size 8`); `archc train` on it "
                          "gives the located error if the spec is at fault"}
    print(json.dumps(result), flush=True)
    return 2 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
