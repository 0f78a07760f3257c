"""bench/gpu.py's results: typed rows, the targets they are judged by, and their JSON and markdown."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

RESNET50_TARGET = 2470  # images/s: NVIDIA's A100 reference for ResNet-50 training in mixed precision
AIRBENCH_TARGET = 1.1  # archc's airbench94 epoch time / the airbench loop's


@dataclass
class Throughput:
    model: str
    batch: int
    size: int
    compiled: bool
    reference: str  # what archc is compared with
    archc_ips: float | None = None  # training images/s
    reference_ips: float | None = None
    archc_first_s: float | None = None  # the warm-up pass: autotuning, compilation
    reference_first_s: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.archc_ips / self.reference_ips if self.archc_ips and self.reference_ips else None


@dataclass
class Memory:
    model: str
    batch: int
    size: int
    peak_mib: float | None
    step_growth_mib: float | None  # peak minus what was allocated before the step


@dataclass
class TrainRun:
    """`archc train` end to end on the real data, and the host reads of its training epochs."""
    arch: str
    epochs: int
    steps_per_epoch: int
    test_acc: float | None
    images_per_s: float | None
    epoch_seconds: list[float]
    host_reads: list[int]  # per training epoch: .item() and the like
    cuda_syncs: list[int | None]  # per training epoch, from torch.cuda.set_sync_debug_mode
    allowed_reads: int  # per epoch: the loss checks every CHECK_EVERY steps and the epoch totals


@dataclass
class Airbench:
    """archs/airbench94.arch under `archc train --recipe airbench` against bench/airbench_loop.py."""
    images: int
    batch: int
    epochs: int
    archc_train_s: float | None = None  # median training phase of an epoch after the first
    archc_epoch_s: float | None = None  # median whole epoch: with checkpoint, metrics and curves
    # the airbench loop's median epoch by precision: fp16 is airbench's own, bf16 autocast as archc's (CUDA);
    # fp32 on a CPU, which has no fp16 convolutions
    loop_s: dict[str, float] = field(default_factory=dict)
    subset_archc_acc: float | None = None  # test accuracy on the real subset (tiny: a does-it-learn check)
    subset_loop_acc: float | None = None

    @property
    def ratio(self) -> float | None:
        """archc's training phase against airbench's own loop (fp16; fp32 on a CPU)."""
        loop = self.loop_s.get("fp16") or self.loop_s.get("fp32")
        return self.archc_train_s / loop if self.archc_train_s and loop else None


@dataclass
class Report:
    device: str = ""
    torch: str = ""
    smoke: bool = False
    seconds: float = 0.0
    throughput: list[Throughput] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)
    train_run: TrainRun | None = None
    airbench: Airbench | None = None
    ddp: dict = field(default_factory=dict)
    profile: str = ""
    errors: list[str] = field(default_factory=list)

    def targets(self) -> list[tuple[str, str, str, bool | None]]:
        """(what, measured, target, met) for every target of issue 13 that has a figure."""
        rows = []
        for t in self.throughput:
            rows.append((f"{t.model}{' compiled' if t.compiled else ''}: archc / {t.reference}", _x(t.ratio), "≥ 1.0×",
                         None if t.ratio is None else t.ratio >= 1.0))
            if t.model == "resnet50":
                rows.append((f"resnet50{' compiled' if t.compiled else ''}: archc images/s", _n(t.archc_ips),
                             f"≥ {RESNET50_TARGET:,}", None if t.archc_ips is None else t.archc_ips >= RESNET50_TARGET))
        a = self.airbench
        if a is not None:
            rows.append(("airbench94 epoch: archc / airbench loop", _x(a.ratio), f"≤ {AIRBENCH_TARGET}×",
                         None if a.ratio is None else a.ratio <= AIRBENCH_TARGET))
        r = self.train_run
        if r is not None:
            worst = max(r.host_reads, default=None)
            rows.append(("archc train: host reads per epoch", f"{worst} ({r.steps_per_epoch} steps)",
                         f"≤ {r.allowed_reads}", None if worst is None else worst <= r.allowed_reads))
        return rows

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["targets"] = [dict(zip(("what", "measured", "target", "met"), t)) for t in self.targets()]
        for row, t in zip(data["throughput"], self.throughput):
            row["ratio"] = t.ratio
        if self.airbench is not None:
            data["airbench"]["ratio"] = self.airbench.ratio
        return json.dumps(data, indent=2)

    def markdown(self) -> str:
        lines = [f"# archc on {self.device}", "", f"torch {self.torch}; {self.seconds:.0f} s"
                 f"{'; SMOKE RUN (CPU, toy sizes): no figures' if self.smoke else ''}", "", "## Targets", "",
                 "| what | measured | target | met |", "|---|---|---|---|"]
        lines += [f"| {w} | {m} | {t} | {'-' if ok is None else 'met' if ok else 'MISSED'} |" for w, m, t, ok in self.targets()]
        lines += ["", "## Training throughput (bf16 autocast, channels_last)", "",
                  "| model | batch × size | compile | archc img/s | reference | reference img/s | ratio | warm-up s (archc / ref) | note |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {t.model} | {t.batch} × {t.size} | {'yes' if t.compiled else 'no'} | {_n(t.archc_ips)} | {t.reference} | "
                  f"{_n(t.reference_ips)} | {_x(t.ratio)} | {_s(t.archc_first_s)} / {_s(t.reference_first_s)} | {t.note} |"
                  for t in self.throughput]
        lines += ["", "## Peak memory of one training step", "", "| model | batch × size | peak MiB | step growth MiB |",
                  "|---|---|---|---|"]
        lines += [f"| {m.model} | {m.batch} × {m.size} | {_n(m.peak_mib)} | {_n(m.step_growth_mib)} |" for m in self.memory]
        lines += self._train_lines() + self._airbench_lines()
        lines += ["", "## DDP", "", json.dumps(self.ddp), "", "## Profile", "", self.profile or "not asked (--profile)"]
        if self.errors:
            lines += ["", "## Errors", ""] + [f"- {e}" for e in self.errors]
        return "\n".join(lines) + "\n"

    def _train_lines(self) -> list[str]:
        r = self.train_run
        if r is None:
            return []
        return ["", f"## `archc train {r.arch}` ({r.epochs} epochs, {r.steps_per_epoch} steps each)", "",
                f"test accuracy {_pct(r.test_acc)}; {_n(r.images_per_s)} img/s; epochs {', '.join(map(_s, r.epoch_seconds))} s; "
                f"host reads per epoch {r.host_reads} (allowed {r.allowed_reads}); CUDA syncs per epoch {r.cuda_syncs}"]

    def _airbench_lines(self) -> list[str]:
        a = self.airbench
        if a is None:
            return []
        return ["", f"## airbench94: {a.images:,} images, batch {a.batch}, {a.epochs} epochs (median after the first)", "",
                "| loop | seconds per epoch |", "|---|---|",
                f"| archc train --recipe airbench: training phase | {_s(a.archc_train_s)} |",
                f"| archc train --recipe airbench: whole epoch (checkpoint, metrics, curves) | {_s(a.archc_epoch_s)} |",
                *(f"| airbench loop, {p} | {_s(v)} |" for p, v in a.loop_s.items()), "",
                f"real subset, 10 epochs (9.9 for the loop): archc {_pct(a.subset_archc_acc)}, airbench loop "
                f"{_pct(a.subset_loop_acc)} test accuracy (with flip-translate test-time views)"]

    def write(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu.json").write_text(self.to_json())
        (out / "gpu.md").write_text(self.markdown())


def _n(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}×"


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2%}"
