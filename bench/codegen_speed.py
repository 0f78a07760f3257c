"""Codegen speed and memory: archc-compiled modules against the models they reproduce (issue 3).

Prints, from one run on this machine:
  1. fwd+bwd training-step throughput, archc / torchvision, for resnet50 and densenet121
     (CPU, batch 8 at 224, channels_last on both sides); target >= 0.98, DenseNet >= 1.0;
  2. the same for the four seed-table models against their hand-written twins in
     tests/reference/uva_models.py (batch 128 at 32); target >= 0.98;
  3. densenet121 training peak memory and step time with `efficient = true` (each dense
     layer's concat-BN-ReLU-conv1x1 under @checkpoint) against without; target <= 0.6x memory
     at <= 1.3x time; torchvision's memory_efficient DenseNet is printed beside it;
  4. `archc compile FILE` end to end against constructing the torchvision model, each in a
     fresh process; target <= 1.2x.

Throughput pairs are timed in interleaved rounds (A then B, then B then A, ...) so drift in
the machine's speed hits both sides; the ratio is the median over rounds. Memory is the
growth of the resident set over one training step in a fresh process, after a warm-up
step, with glibc's mmap threshold fixed so freed tensors leave the resident set at once.

Run: .venv/bin/python bench/codegen_speed.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script, sys.path[0] is bench/

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SEEDS = ("googlenet_uva", "resnet_uva", "preact_resnet_uva", "densenet_uva")


def archc_model(name: str, **params) -> nn.Module:
    from compiler import build
    return build(ROOT / "archs" / f"{name}.arch", **params)


def torchvision_model(name: str, **kwargs) -> nn.Module:
    import torchvision
    return getattr(torchvision.models, name)(**kwargs)


def seed_twin(name: str) -> nn.Module:
    from tests.reference.uva_models import MODELS
    return MODELS[name]()


class Stepper:
    """One model's training step (SGD, cross-entropy) on a fixed channels_last batch."""

    def __init__(self, model: nn.Module, batch: int, size: int, classes: int):
        torch.manual_seed(0)
        self.model = model.to(memory_format=torch.channels_last).train()
        self.x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
        self.y = torch.randint(0, classes, (batch,))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)

    def step(self) -> None:
        loss = F.cross_entropy(self.model(self.x), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def timed(self, steps: int) -> float:
        t = time.perf_counter()
        for _ in range(steps):
            self.step()
        return time.perf_counter() - t


def throughput_ratio(ours: nn.Module, ref: nn.Module, batch: int, size: int, classes: int,
                     rounds: int, steps: int) -> tuple[float, float, float]:
    """(archc images/s, reference images/s, median per-round ratio archc/reference)."""
    a, b = Stepper(ours, batch, size, classes), Stepper(ref, batch, size, classes)
    a.timed(1), b.timed(1)  # warm-up: allocator, oneDNN primitive caches
    ta, tb = [], []
    for r in range(rounds):
        first, second = (a, b) if r % 2 == 0 else (b, a)
        t1, t2 = first.timed(steps), second.timed(steps)
        ta.append(t1 if first is a else t2)
        tb.append(t2 if first is a else t1)
    ratio = statistics.median(y / x for x, y in zip(ta, tb))
    images = batch * steps
    return images / statistics.median(ta), images / statistics.median(tb), ratio


def section_throughput(args):
    yield "| model | batch × size | archc img/s | reference img/s | ratio | target |"
    yield "|---|---|---|---|---|---|"
    big = [(n, "torchvision", 1.0 if "densenet" in n else 0.98) for n in ("resnet50", "densenet121")]
    pairs = [(n, ref, target, 8, 224, 1000) for n, ref, target in big]
    pairs += [(n, "hand-written", 0.98, 128, 32, 10) for n in SEEDS]
    for name, ref_kind, target, batch, size, classes in pairs:
        ref = torchvision_model(name) if ref_kind == "torchvision" else seed_twin(name)
        ours = archc_model(name)
        ips_a, ips_b, ratio = throughput_ratio(ours, ref, batch, size, classes, args.rounds, args.steps)
        mark = "met" if ratio >= target else "MISSED"
        yield (f"| {name} vs {ref_kind} | {batch} × {size} | {ips_a:.1f} | {ips_b:.1f} | "
               f"{ratio:.3f} | ≥ {target} {mark} |")


def memory_child(which: str, steps: int) -> dict:
    """In a fresh process: RSS growth over one densenet121 training step (batch 8 at 224)."""
    model = {"archc": lambda: archc_model("densenet121"),
             "archc-efficient": lambda: archc_model("densenet121", efficient=True),
             "torchvision": lambda: torchvision_model("densenet121"),
             "torchvision-efficient": lambda: torchvision_model("densenet121", memory_efficient=True)}[which]()
    s = Stepper(model, 8, 224, 1000)
    s.step()  # warm-up: grads, momentum buffers, primitive caches exist from here on
    base = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark (VmHWM)
    s.step()
    peak = _status_kb("VmHWM") - base
    seconds = statistics.median(s.timed(1) for _ in range(steps))
    return {"peak_bytes": peak * 1024, "step_s": seconds}


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def section_memory(args):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")  # big frees go back to the OS at once
    got = {}
    for which in ("archc", "archc-efficient", "torchvision", "torchvision-efficient"):
        out = subprocess.run([sys.executable, __file__, "--memory-child", which, "--steps", str(args.steps)],
                             env=env, check=True, capture_output=True, text=True).stdout
        got[which] = json.loads(out.strip().splitlines()[-1])
    yield "| densenet121, batch 8 at 224 | step peak memory | step time |"
    yield "|---|---|---|"
    for which, r in got.items():
        yield f"| {which} | {r['peak_bytes'] / 2**20:,.0f} MiB | {r['step_s']:.2f} s |"
    for side in ("archc", "torchvision"):
        plain, eff = got[side], got[f"{side}-efficient"]
        mem, t = eff["peak_bytes"] / plain["peak_bytes"], eff["step_s"] / plain["step_s"]
        ok = "met" if mem <= 0.6 and t <= 1.3 else "MISSED"
        target = f" (target ≤ 0.6×, ≤ 1.3×) {ok}" if side == "archc" else ""
        yield f"| {side}: efficient / plain | {mem:.2f}× | {t:.2f}×{target} |"


def fresh_process_seconds(code_or_cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(code_or_cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def section_compile(args):
    yield "| model | `archc compile` | torchvision constructor | ratio | target |"
    yield "|---|---|---|---|---|"
    for name in ("resnet50", "densenet121"):
        ours = fresh_process_seconds([sys.executable, "-m", "runtime.cli", "compile", f"archs/{name}.arch"], args.runs)
        ref = fresh_process_seconds([sys.executable, "-c", f"import torchvision; torchvision.models.{name}()"], args.runs)
        mark = "met" if ours / ref <= 1.2 else "MISSED"
        yield f"| {name} | {ours:.2f} s | {ref:.2f} s | {ours / ref:.2f}× | ≤ 1.2× {mark} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run, not figures")
    ap.add_argument("--only", choices=("throughput", "memory", "compile"), action="append")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=None, help="training steps per timed round")
    args = ap.parse_args()
    args.rounds, args.runs = (2, 1) if args.quick else (7, 5)
    args.steps = args.steps or (1 if args.quick else 3)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.steps)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    sections = {"throughput": section_throughput, "memory": section_memory, "compile": section_compile}
    for name in args.only or sections:
        print(f"\n## {name}")
        for row in sections[name](args):
            print(row, flush=True)


if __name__ == "__main__":
    main()
