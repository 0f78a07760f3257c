"""archc on a GPU in one command (issue 13): under 8 minutes on an H100/H200, writes gpu.json and gpu.md.

Measures, in bf16 autocast with channels_last:
  1. training images/s of resnet_uva, preact_resnet_uva, googlenet_uva, densenet_uva and airbench94
     (batch 512 at 32, synthetic CIFAR-shaped data on the device) under archc's runtime loop
     (runtime/loop.py: train_epoch) against a plain hand-written loop over the same nn.Module, and of
     resnet50 at 224 (batch 256, synthetic) as built by archc against torchvision's, both in the plain
     loop; each eager and with torch.compile (compiled cases run last, as the time budget allows);
  2. DenseNet-121 peak memory with and without `efficient=true` (torchvision's memory_efficient beside);
  3. `archc train archs/resnet_uva.arch` for two epochs on the real CIFAR-10 subset, with the host reads
     and CUDA syncs of each training epoch counted (set_sync_debug_mode);
  4. airbench94: `archc train archs/airbench94.arch --recipe airbench` against bench/airbench_loop.py,
     epoch times on 50,000 synthetic images, and both trained on the real subset for accuracy;
  5. a 2-process NCCL DDP step when the machine has 2 GPUs (else it says so);
  6. with --profile, torch.profiler on the case where archc trails its reference most: profile.txt
     and profile-trace.json under --out.
Targets (in the JSON and markdown): archc >= 1.0x its reference for every model; resnet50 >= 2,470
images/s (NVIDIA's A100 reference); airbench94's epoch within 1.1x of the airbench loop's.

The device machine gets the repository only, with python3, torch and torchvision but not archc's
other dependencies; prepare two ignored folders here first (`out/` and `.whl/` are in .gitignore):
    mkdir -p out/gpu-data && cp -r ../shared/data/cifar10-subset out/gpu-data/
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl pydantic==2.14.4 \
        pydantic_core==2.50.5 lark==1.3.1 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0
then the device tool's `run` with carry ["out/gpu-data", ".whl"] and timeout_s 420 on this one line:
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl && mkdir -p /tmp/pkg && ln -sfn "$PWD" /tmp/pkg/archc && export PYTHONPATH=/tmp/pkg:/tmp/site PYTHONUNBUFFERED=1 && python3 bench/gpu.py --data out/gpu-data/cifar10-subset --out "$OUT" --profile 2>&1 | tee "$OUT/log.txt"
The eager sections take about 2 minutes; compiled cases start while the --budget (300 s) lasts, so
the run ends in about 6 minutes, inside 8. What it writes survives a timeout (the report is rewritten
after every section and case). A machine start (1-2 min) plus this run plus a rerun fit 15 minutes of
device time: rerun only what failed, e.g. `... bench/gpu.py --only airbench ddp --out "$OUT"`, with
timeout_s the time left less a minute.

`python bench/gpu.py --smoke` runs every section on the CPU at toy sizes in seconds (compiling with
dynamo's eager backend: graph capture without code generation); tests/test_gpu_bench.py runs it, so
the GPU run cannot die on a typo. Its figures mean nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import math
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # run as a script or imported by the tests: the sibling modules

import torch  # noqa: E402

import airbench_loop  # noqa: E402
import gpu_steps as steps  # noqa: E402
from gpu_report import Airbench, Memory, Report, Throughput, TrainRun  # noqa: E402

CIFAR_MODELS = ("resnet_uva", "preact_resnet_uva", "googlenet_uva", "densenet_uva", "airbench94")
SUBSET = ROOT.parent / "shared" / "data" / "cifar10-subset"


@dataclass(frozen=True)
class Sizes:
    cifar_models: tuple[str, ...]
    cifar_batch: int
    cifar_steps: int  # per timed pass
    imagenet_batch: int
    imagenet_size: int
    imagenet_steps: int
    resnet50_layers: tuple[int, ...]  # bottleneck blocks per stage: ResNet-50's (3, 4, 6, 3), or a toy one
    memory_batch: int
    memory_size: int
    densenet_blocks: tuple[int, ...]  # DenseNet-121's (6, 12, 24, 16), or a toy one
    train_epochs: int  # of the `archc train` run on the real data
    airbench_images: int  # synthetic, for epoch times
    airbench_batch: int
    airbench_epochs: int
    airbench_real: bool  # also train both on the real data for accuracy (--smoke: the same calls as the timed runs)
    real_cap: int | None  # use only this many real training images (and a tenth as many test images)
    ddp_batch: int
    ddp_steps: int
    compiled: tuple[str, ...]  # models timed with torch.compile, in this order while the budget lasts
    compile_reserve_s: float  # time a compiled case may take: none starts with less left


GPU = Sizes(cifar_models=CIFAR_MODELS, cifar_batch=512, cifar_steps=30, imagenet_batch=256, imagenet_size=224,
            imagenet_steps=20, resnet50_layers=(3, 4, 6, 3), memory_batch=64, memory_size=224, densenet_blocks=(6, 12, 24, 16), train_epochs=2,
            airbench_images=50_000, airbench_batch=1024, airbench_epochs=4, airbench_real=True, real_cap=None,
            ddp_batch=512, ddp_steps=20,
            compiled=("airbench94", "resnet_uva", "resnet50", "preact_resnet_uva", "googlenet_uva", "densenet_uva"),
            compile_reserve_s=60)
# One CIFAR model in --smoke: every one takes the same calls (check_specs compiles all of GPU's), and
# resnet_uva still trains in train_run and ddp.
SMOKE = Sizes(cifar_models=("airbench94",), cifar_batch=8, cifar_steps=1, imagenet_batch=2, imagenet_size=32,
              imagenet_steps=1, resnet50_layers=(1, 1, 1, 1), memory_batch=2, memory_size=32, densenet_blocks=(1, 1, 1, 1), train_epochs=1,
              airbench_images=16, airbench_batch=8, airbench_epochs=1, airbench_real=False, real_cap=32,
              ddp_batch=8, ddp_steps=1, compiled=("airbench94",), compile_reserve_s=0)


class Run:
    """One invocation: its device, sizes, report and clock; every section records into the report."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.smoke = args, args.smoke
        self.sizes = SMOKE if args.smoke else GPU
        self.dev = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
        self.start = time.perf_counter()
        self.tmp = Path(tempfile.mkdtemp(prefix="archc-gpu-"))
        name = torch.cuda.get_device_name(self.dev) if self.dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
        self.report = Report(device=name, torch=torch.__version__, smoke=args.smoke)

    def left(self) -> float:
        return self.args.budget - (time.perf_counter() - self.start)

    def section(self, fn) -> None:
        """Run one section; outside --smoke a failure is recorded and the run goes on to the next."""
        print(f"== {fn.__name__} ({time.perf_counter() - self.start:.0f} s)", flush=True)
        try:
            fn(self)
        except Exception as e:  # noqa: BLE001  (a GPU run reports every section it can)
            if self.smoke:
                raise
            self.report.errors.append(f"{fn.__name__}: {type(e).__name__}: {e}")
            traceback.print_exc()
        finally:
            self.report.seconds = time.perf_counter() - self.start
            self.report.write(self.args.out)
            self.release()

    def release(self) -> None:
        """Hand the last case's GPU memory back, so the next one's peak is its own. Not on a CPU, where
        a full gc.collect() (a third of a second with torch loaded) would only slow the smoke run."""
        if self.dev.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()


def check_specs() -> None:
    """Compile (torch-free, under a second) every .arch the full run builds, with its parameters, before
    anything is timed: a misspelt name or parameter fails at once, in --smoke too, not minutes into a GPU run."""
    import archc
    for name in dict.fromkeys((*GPU.cifar_models, *GPU.compiled)):
        archc.check(ROOT / "archs" / f"{name}.arch")
    archc.check(ROOT / "archs" / "densenet121.arch", blocks=list(GPU.densenet_blocks), efficient=True)


def archc_model(name: str, **params) -> torch.nn.Module:
    from archc import build
    torch.manual_seed(0)
    return build(ROOT / "archs" / f"{name}.arch", **params)


def synthetic(n: int, dev: torch.device, test: int = 0):
    """CIFAR-shaped random images and labels, as archc's data class."""
    from archc.runtime.data import Cifar10
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n + test, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n + test,), generator=g)
    return Cifar10(x[:n].to(dev), y[:n].to(dev), x[n:].to(dev), y[n:].to(dev), Path("synthetic"))


def real(run: Run):
    """The real CIFAR-10 images of --data (cut to real_cap in --smoke) on the device, and a folder holding them."""
    from archc.runtime.data import Cifar10, load_cifar10
    data = load_cifar10(run.args.data, run.dev)
    cap = run.sizes.real_cap
    if cap is None:
        return data, run.args.data
    data = Cifar10(data.train_x[:cap], data.train_y[:cap], data.test_x[:cap // 10], data.test_y[:cap // 10], data.root)
    return data, write_folder(data, run.tmp / "real")


def write_folder(data, folder: Path) -> Path:
    """``data`` as a cifar-10-batches-py folder (two training batch files) that `archc train --data` reads."""
    import pickle
    folder.mkdir(parents=True, exist_ok=True)
    halves = torch.arange(len(data.train_y)).chunk(2)
    parts = [(f"data_batch_{i + 1}", data.train_x[h], data.train_y[h]) for i, h in enumerate(halves)]
    for name, x, y in parts + [("test_batch", data.test_x, data.test_y)]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": x.reshape(len(x), -1).cpu().numpy(), "labels": y.cpu().tolist()}, f)
    return folder


def throughput(run: Run, compiled: bool) -> None:
    z = run.sizes
    data = synthetic(z.cifar_batch * z.cifar_steps, run.dev)
    for name in z.cifar_models if not compiled else z.compiled:
        if compiled and run.left() < z.compile_reserve_s:
            run.report.throughput.append(Throughput(name, 0, 0, True, "-", note="skipped: time budget"))
            continue
        print(f"   {name}{' compiled' if compiled else ''} ({time.perf_counter() - run.start:.0f} s)", flush=True)
        if name == "resnet50":
            row = _resnet50(run, compiled)
        else:
            model = archc_model(name)
            row = Throughput(name, z.cifar_batch, 32, compiled, "plain loop")
            row.archc_first_s, archc_s = steps.seconds_per_pass(
                lambda: steps.archc_runtime(steps.fresh(model), data, z.cifar_batch, compiled, run.dev), run.dev)
            row.reference_first_s, ref_s = steps.seconds_per_pass(
                lambda: steps.plain_cifar(steps.fresh(model), data, z.cifar_batch, compiled, run.dev), run.dev)
            row.archc_ips, row.reference_ips = len(data.train_y) / archc_s, len(data.train_y) / ref_s
        run.report.throughput.append(row)
        run.report.write(run.args.out)
    if not compiled:
        run.report.throughput.append(_resnet50(run, False))


def _resnet50(run: Run, compiled: bool) -> Throughput:
    from torchvision.models.resnet import Bottleneck, ResNet  # resnet50() is ResNet(Bottleneck, [3, 4, 6, 3])
    z = run.sizes
    row = Throughput("resnet50", z.imagenet_batch, z.imagenet_size, compiled, "torchvision (plain loop)")
    for side, make in (("archc", lambda: _archc_resnet50(z)), ("reference", lambda: ResNet(Bottleneck, list(z.resnet50_layers)))):
        first, timed = steps.seconds_per_pass(
            lambda: steps.plain_fixed(make(), z.imagenet_batch, z.imagenet_size, z.imagenet_steps, compiled, run.dev), run.dev)
        setattr(row, f"{side}_first_s", first)
        setattr(row, f"{side}_ips", z.imagenet_batch * z.imagenet_steps / timed)
    return row


def _archc_resnet50(z: Sizes) -> torch.nn.Module:
    return archc_model("resnet50", layers=list(z.resnet50_layers))


def throughput_eager(run: Run) -> None:
    throughput(run, False)


def throughput_compiled(run: Run) -> None:
    throughput(run, True)


def memory(run: Run) -> None:
    import torchvision
    z = run.sizes
    blocks = z.densenet_blocks  # torchvision's DenseNet() defaults are DenseNet-121's but for the blocks
    cases = (("archc densenet121", lambda: archc_model("densenet121", blocks=list(blocks))),
             ("archc densenet121 efficient=true", lambda: archc_model("densenet121", blocks=list(blocks), efficient=True)),
             ("torchvision densenet121", lambda: torchvision.models.DenseNet(block_config=blocks)),
             ("torchvision densenet121 memory_efficient",
              lambda: torchvision.models.DenseNet(block_config=blocks, memory_efficient=True)))
    for label, make in cases:
        peak, growth = steps.peak_memory(make(), z.memory_batch, z.memory_size, run.dev)
        run.report.memory.append(Memory(label, z.memory_batch, z.memory_size, _mib(peak), _mib(growth)))
        run.release()


def _mib(n: int | None) -> float | None:
    return None if n is None else n / 2**20


def train_run(run: Run) -> None:
    """`archc train` end to end, counting the host reads of each training epoch."""
    from archc.runtime import loop
    from archc.runtime import train as train_module

    _, folder = real(run)
    epochs, counts = run.sizes.train_epochs, []

    def counted(s, epoch, progress):
        with steps.counting_syncs(run.dev) as c:
            result = loop.train_epoch(s, epoch, progress)
        counts.append(c)
        run.report.train_run.steps_per_epoch = s.steps
        run.report.train_run.allowed_reads = math.ceil(s.steps / loop.CHECK_EVERY) + 2
        return result

    out = run.tmp / "train-run"
    run.report.train_run = TrainRun("archs/resnet_uva.arch", epochs, 0, None, None, [], [], [], 0)
    train_module.train_epoch, original = counted, train_module.train_epoch  # the loop's own function, wrapped
    try:
        summary, history = _archc_train(run, "resnet_uva", folder, out, epochs=epochs, batch_size=8 if run.smoke else 128)
    finally:
        train_module.train_epoch = original
    r = run.report.train_run
    r.test_acc, r.images_per_s = summary["test_acc"], summary["images_per_s"]
    r.epoch_seconds = [h["seconds"] for h in history]
    r.host_reads, r.cuda_syncs = [c["host_reads"] for c in counts], [c["cuda_syncs"] for c in counts]


def airbench(run: Run) -> None:
    """airbench94 under archc's recipe against the airbench loop: epoch times on synthetic data, accuracy on the real subset."""
    import statistics

    z = run.sizes
    a = run.report.airbench = Airbench(z.airbench_images, z.airbench_batch, z.airbench_epochs)
    data = synthetic(z.airbench_images, run.dev, test=z.airbench_images // 10)
    _, history = _archc_train(run, "airbench94", write_folder(data, run.tmp / "synthetic"), run.tmp / "ab-synth",
                              recipe="airbench", epochs=z.airbench_epochs, batch_size=z.airbench_batch)
    later = history[1:] or history
    steps_per_epoch = z.airbench_images // z.airbench_batch
    a.archc_train_s = statistics.median(steps_per_epoch * z.airbench_batch / h["images_per_s"] for h in later)
    a.archc_epoch_s = statistics.median(h["seconds"] for h in later)
    precisions = ("fp16", "bf16") if run.dev.type == "cuda" else ("fp32",)  # a CPU has no fp16 convolutions
    for precision in precisions:
        r = airbench_loop.train(data.train_x, data.train_y, data.test_x, data.test_y, epochs=z.airbench_epochs,
                                precision=precision, batch=z.airbench_batch)
        a.loop_s[precision] = statistics.median(r.epoch_seconds[1:] or r.epoch_seconds)
    if z.airbench_real:  # the recipe's 10 epochs; the loop's 9.9, as airbench94
        subset, folder = real(run)
        a.subset_archc_acc = _archc_train(run, "airbench94", folder, run.tmp / "ab-real", recipe="airbench", epochs=10,
                                          batch_size=z.airbench_batch)[0]["test_acc"]
        a.subset_loop_acc = airbench_loop.train(subset.train_x, subset.train_y, subset.test_x, subset.test_y,
                                                precision=precisions[0], batch=z.airbench_batch).tta_acc


def _archc_train(run: Run, arch: str, folder: Path, out: Path, **settings) -> tuple[dict, list[dict]]:
    """`archc train archs/ARCH.arch` on ``folder`` into ``out``, quietly, on the run's device: its summary
    and its metrics.jsonl rows."""
    import json

    from archc.runtime import commands
    from archc.runtime.config import resolve_config
    cfg = resolve_config({"arch": ROOT / "archs" / f"{arch}.arch", "data": str(folder), "out": out,
                          "device": run.dev.type, "quiet": True, **settings})
    summary = commands.run(cfg)
    return summary, [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def ddp(run: Run) -> None:
    """2 NCCL processes when there are 2 GPUs; in --smoke the same step as one gloo process (no GPU needed)."""
    import json

    z = run.sizes
    out = run.tmp / "ddp.json"
    store = (run.tmp / "ddp.store").as_uri()  # the group's rendezvous: a file, no TCP port to race for
    if run.smoke:
        steps.ddp_step(0, 1, "gloo", store, str(out), z.ddp_batch, z.ddp_steps)
        run.report.ddp = {"processes": 1, "backend": "gloo (smoke)", **json.loads(out.read_text())}
    elif torch.cuda.device_count() >= 2:
        torch.multiprocessing.spawn(steps.ddp_step, args=(2, "nccl", store, str(out), z.ddp_batch, z.ddp_steps), nprocs=2)
        run.report.ddp = {"processes": 2, "backend": "nccl", "model": "resnet_uva", **json.loads(out.read_text())}
    else:
        run.report.ddp = {"skipped": f"{torch.cuda.device_count()} GPU on this machine; the 2-process NCCL step needs 2"}


def profile(run: Run) -> None:
    """torch.profiler over one pass of the case where archc trails its reference most (archc's side)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler
    rows = [t for t in run.report.throughput if t.ratio is not None and not t.compiled]
    if not rows:
        raise RuntimeError("profile picks its case from the eager throughput: run throughput_eager before it")
    worst = min(rows, key=lambda t: t.ratio)
    z = run.sizes
    few = 3  # steps: a trace of a few thousand kernels, well under the 16 MB a device run brings back per file
    if worst.model == "resnet50":
        one_pass = steps.plain_fixed(_archc_resnet50(z), z.imagenet_batch, z.imagenet_size,
                                     min(z.imagenet_steps, few), False, run.dev)
    else:
        data = synthetic(z.cifar_batch * min(z.cifar_steps, few), run.dev)
        one_pass = steps.archc_runtime(archc_model(worst.model), data, z.cifar_batch, False, run.dev)
    one_pass()
    steps.sync(run.dev)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if run.dev.type == "cuda" else [])
    with profiler(activities=activities) as prof:
        one_pass()
        steps.sync(run.dev)
    key = "cuda_time_total" if run.dev.type == "cuda" else "cpu_time_total"
    (run.args.out / "profile.txt").write_text(f"{worst.model}, archc side, one pass\n"
                                              + prof.key_averages().table(sort_by=key, row_limit=40))
    prof.export_chrome_trace(str(run.args.out / "profile-trace.json"))
    run.report.profile = f"{worst.model} (archc / reference {worst.ratio:.3f}×): profile.txt, profile-trace.json"


SECTIONS = (throughput_eager, memory, train_run, airbench, ddp, profile, throughput_compiled)  # compiled last: the budget


def main(argv: list[str] | None = None) -> Report:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="real CIFAR-10 (cifar-10-batches-py); default ../shared's subset, "
                                                            "or the bundled sample with --smoke")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "gpu", help="where gpu.json, gpu.md (and the profile) go")
    ap.add_argument("--budget", type=float, default=300, help="seconds; compiled cases stop starting when it runs low "
                                                             "(not in --smoke, which compiles its one case whatever the time)")
    ap.add_argument("--only", nargs="+", choices=[f.__name__ for f in SECTIONS], help="run these sections alone (a rerun)")
    ap.add_argument("--profile", action="store_true", help="torch.profiler on the slowest case")
    ap.add_argument("--smoke", action="store_true", help="every section on the CPU at toy sizes (a test, no figures)")
    args = ap.parse_args(argv)
    args.data = args.data or (ROOT / "runtime" / "sample" if args.smoke else SUBSET)
    args.budget = math.inf if args.smoke else args.budget
    check_specs()
    run = Run(args)
    chosen = [f for f in SECTIONS if (f.__name__ in args.only if args.only else f is not profile or args.profile)]
    with _smoke_settings(args.smoke):
        try:
            for section in chosen:
                run.section(section)
        finally:
            shutil.rmtree(run.tmp, ignore_errors=True)
    print(run.report.markdown())
    return run.report


@contextlib.contextmanager
def _smoke_settings(smoke: bool):
    """In --smoke, torch.compile captures graphs only (dynamo's eager backend): a CPU has no Triton, and
    Inductor's C++ build alone would take minutes; and torch runs on one thread: at toy sizes a second
    only adds OpenMP barrier waits, which on a loaded machine cost 10-20x the work. Both are restored
    afterwards (the tests call main in-process)."""
    real_compile, threads = torch.compile, torch.get_num_threads()
    if smoke:
        torch.compile = functools.partial(real_compile, backend="eager")
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.compile = real_compile
        torch.set_num_threads(threads)


if __name__ == "__main__":
    report = main()
    sys.exit(1 if report.errors else 0)
