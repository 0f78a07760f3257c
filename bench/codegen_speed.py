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

Every measurement runs in a fresh process, as a real training run would: two models
stepping in one process share the allocator, and on a CPU whether a step's buffers are
recycled or freshly faulted in moves a step's time by 10-25%. Pairs are timed in rounds
(archc then reference, then the other way round); each side's figure is the median over
rounds of each process's fastest step, the ratio is archc's images/s over the reference's,
and the range of the per-round ratios is printed beside it. Memory is the growth of the
resident set over one training step after a warm-up step, with glibc's mmap threshold fixed
so freed tensors leave the resident set at once.

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
    from archc.compiler import build
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


def step_seconds(model: nn.Module, batch: int, size: int, classes: int, steps: int) -> float:
    """Fastest of ``steps`` timed training steps, after two warm-up steps (allocator, oneDNN caches).

    The minimum, as timeit recommends: on a shared machine noise only ever adds time."""
    s = Stepper(model, batch, size, classes)
    s.timed(2)
    return min(s.timed(1) for _ in range(steps))


def child(job: dict) -> float:
    """One measurement in a fresh process (``--child JSON``): how a model really trains, with
    no other model's memory in the allocator."""
    side, name, params = job["side"], job["name"], job.get("params", {})
    if side == "archc":
        model = archc_model(name, **params)
    elif side == "torchvision":
        model = torchvision_model(name, **params)
    else:
        model = seed_twin(name)
    if job["kind"] == "memory":
        return memory_step(model)
    return step_seconds(model, job["batch"], job["size"], job["classes"], job["steps"])


def in_child(job: dict, env: dict | None = None):
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def paired_seconds(job_a: dict, job_b: dict, rounds: int) -> tuple[list[float], list[float]]:
    """Step seconds of two jobs over ``rounds`` rounds, each job in a fresh process per round,
    alternating which goes first, so slow drift in the machine's speed hits both alike."""
    ta, tb = [], []
    for r in range(rounds):
        if r % 2 == 0:
            ta.append(in_child(job_a))
            tb.append(in_child(job_b))
        else:
            tb.append(in_child(job_b))
            ta.append(in_child(job_a))
    return ta, tb


def throughput_ratio(name: str, ref: str, batch: int, size: int, classes: int,
                     rounds: int, steps: int) -> tuple[float, float, list[float]]:
    """(archc images/s, reference images/s, per-round ratios archc/reference), from medians."""
    job = {"kind": "throughput", "name": name, "batch": batch, "size": size, "classes": classes, "steps": steps}
    ta, tb = paired_seconds(job | {"side": "archc"}, job | {"side": ref}, rounds)
    return batch / statistics.median(ta), batch / statistics.median(tb), [y / x for x, y in zip(ta, tb)]


def section_throughput(args):
    yield "| model | batch × size | archc img/s | reference img/s | ratio | per-round range | target |"
    yield "|---|---|---|---|---|---|---|"
    pairs = [(n, "torchvision", 1.0 if "densenet" in n else 0.98, 8, 224, 1000) for n in ("resnet50", "densenet121")]
    pairs += [(n, "hand-written", 0.98, 128, 32, 10) for n in SEEDS]
    for name, ref, target, batch, size, classes in pairs:
        if args.models and name not in args.models:
            continue
        ips_a, ips_b, ratios = throughput_ratio(name, ref, batch, size, classes, args.rounds, args.steps)
        ratio = ips_a / ips_b  # of the medians over rounds: one slow process does not move it
        mark = "met" if ratio >= target else "MISSED"
        yield (f"| {name} vs {ref} | {batch} × {size} | {ips_a:.1f} | {ips_b:.1f} | {ratio:.3f} | "
               f"{min(ratios):.2f}-{max(ratios):.2f} | ≥ {target} {mark} |")


def memory_step(model: nn.Module) -> int:
    """Bytes the resident set grows by over one training step (batch 8 at 224), after a warm-up step."""
    s = Stepper(model, 8, 224, 1000)
    s.step()  # warm-up: grads, momentum buffers, primitive caches exist from here on
    base = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark (VmHWM)
    s.step()
    return (_status_kb("VmHWM") - base) * 1024


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def section_memory(args):
    """Peak memory under a fixed mmap threshold (exact RSS accounting); step time under the normal
    allocator, plain and efficient paired in rounds as the throughput pairs are."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")  # big frees go back to the OS at once
    runs = {"archc": ("archc", {}), "archc-efficient": ("archc", {"efficient": True}),
            "torchvision": ("torchvision", {}), "torchvision-efficient": ("torchvision", {"memory_efficient": True})}
    job = {"name": "densenet121", "steps": args.steps, "batch": 8, "size": 224, "classes": 1000}
    peak = {which: in_child(job | {"kind": "memory", "side": side, "params": params}, env)
            for which, (side, params) in runs.items()}
    step = {}
    for side, efficient in (("archc", {"efficient": True}), ("torchvision", {"memory_efficient": True})):
        timed = job | {"kind": "throughput", "side": side}
        plain, eff = paired_seconds(timed, timed | {"params": efficient}, args.rounds)
        step[side], step[f"{side}-efficient"] = statistics.median(plain), statistics.median(eff)
    yield "| densenet121, batch 8 at 224 | step peak memory | step time |"
    yield "|---|---|---|"
    for which in runs:
        yield f"| {which} | {peak[which] / 2**20:,.0f} MiB | {step[which]:.2f} s |"
    for side in ("archc", "torchvision"):
        mem, t = peak[f"{side}-efficient"] / peak[side], step[f"{side}-efficient"] / step[side]
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
    # Byte-compile the project as a normal run leaves it (torchvision's .pyc come with its wheel;
    # this sandbox sets PYTHONDONTWRITEBYTECODE, which would recompile archc on every start).
    subprocess.run([sys.executable, "-m", "compileall", "-q", "__init__.py", "__main__.py", "dsl", "compiler", "runtime"], cwd=ROOT, check=True)
    for name in ("resnet50", "densenet121"):
        ours = fresh_process_seconds([sys.executable, "-m", "archc", "compile", f"archs/{name}.arch"], args.runs)
        ref = fresh_process_seconds([sys.executable, "-c", f"import torchvision; torchvision.models.{name}()"], args.runs)
        mark = "met" if ours / ref <= 1.2 else "MISSED"
        yield f"| {name} | {ours:.2f} s | {ref:.2f} s | {ours / ref:.2f}× | ≤ 1.2× {mark} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run, not figures")
    ap.add_argument("--only", choices=("throughput", "memory", "compile"), action="append")
    ap.add_argument("--models", nargs="+", help="throughput: only these pairs (names in archs/)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=None, help="training steps per timed round")
    args = ap.parse_args()
    args.rounds, args.runs = (1, 1) if args.quick else (5, 5)
    args.steps = args.steps or (1 if args.quick else 5)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    sections = {"throughput": section_throughput, "memory": section_memory, "compile": section_compile}
    for name in args.only or sections:
        print(f"\n## {name}")
        for row in sections[name](args):
            print(row, flush=True)


if __name__ == "__main__":
    main()
