"""Checks made on the checked graph before a net is built or any memory allocated: does it fit the
data, and does it fit the device's memory. Torch-free, so ``archc compile`` can reuse the estimate.

A net the runtime cannot train would otherwise fail inside its first step with a torch error (or,
with a global pool, train silently on images of the wrong size); a net too large for the device would
fail after the data is loaded and the model built, or swap the machine to a halt.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from archc.compiler.ops import fmt
from archc.compiler.summary import human
from archc.dsl.errors import LimitError, ShapeError

FP32 = 4  # bytes of a parameter, its gradient and each optimizer state tensor (all kept in fp32)


@dataclass(frozen=True)
class MemoryEstimate:
    """Static training memory of one process: fp32 copies of the parameters (weights, gradients,
    optimizer state) plus the activations kept for backward. Workspaces, the allocator's slack and
    the data set are left out, so this is a floor, not a measurement."""

    params: int
    activations: int  # elements per image kept for backward
    batch: int  # images per process and step
    copies: int  # fp32 copies of the parameters
    act_bytes: int  # bytes per kept activation element (4 fp32, 2 bf16)
    state: str  # what the optimizer keeps, for the formula

    @property
    def total(self) -> int:
        return FP32 * self.copies * self.params + self.batch * self.activations * self.act_bytes

    def formula(self) -> str:
        per_image = human(self.activations * self.act_bytes, "B")
        return (f"{self.params:,} params × 4 B × {self.copies} (weights, grads{self.state}) "
                f"+ batch {self.batch} × {per_image} of activations per image")


def training_memory(graph, batch: int, optimizer: str = "sgd", momentum: float = 0.9,
                    precision: str = "fp32") -> MemoryEstimate:
    """The estimate for training ``graph`` with ``batch`` images per step (default: momentum SGD, fp32)."""
    states = {"adamw": (2, ", Adam moments")}.get(optimizer, (1, ", momentum") if momentum > 0 else (0, ""))
    t = graph.totals()
    return MemoryEstimate(t.params, t.activations, batch, 2 + states[0], 2 if precision == "bf16" else 4, states[1])


def host_memory_available() -> int | None:
    """Bytes the host can still give this process: MemAvailable, or the cgroup's room when smaller."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            found += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    found += _cgroup_room() + _address_space_left()
    return min(found) if found else None


def _cgroup_room(group: Path = Path("/sys/fs/cgroup")) -> list[int]:
    """The room under a container's limit (cgroup v2; "max" means none). ``memory.current`` counts the
    page cache too, which the kernel reclaims before it fails an allocation: its inactive part
    (``inactive_file`` in ``memory.stat``) is room, or a container that just read a large file would
    look full."""
    try:
        limit = (group / "memory.max").read_text().strip()
        if limit == "max":
            return []
        used = int((group / "memory.current").read_text())
    except (OSError, ValueError):
        return []
    try:
        stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
        used -= int(stat.get("inactive_file", 0))
    except (OSError, ValueError):
        pass  # no breakdown: count all of it as used
    return [max(0, int(limit) - used)]


def _address_space_left() -> list[int]:
    """The room under ``ulimit -v`` (RLIMIT_AS), which fails an allocation long before the host runs out."""
    import resource
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return []
    try:
        with open("/proc/self/status") as f:
            used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, ValueError, IndexError, StopIteration):
        used = 0
    return [max(0, limit - used)]


def check_memory(est: MemoryEstimate, processes: int, available: int | None, device: str,
                 max_memory: int | None) -> None:
    """Refuse a run whose estimate, times the ``processes`` sharing that memory, exceeds what ``device``
    has free or ``--max-memory``; the message shows both figures and the formula."""
    need = est.total * processes
    over = [(limit, flag) for limit, flag in ((max_memory, "--max-memory"), (available, f"free on {device}"))
            if limit is not None and need > limit]
    if not over:
        return
    limit, flag = over[0]
    bounds = [f"{human(max_memory, 'B')} (--max-memory)" if max_memory else None,
              f"{human(available, 'B')} free on {device}" if available is not None else None]
    shared = f" × {processes} processes" if processes > 1 else ""
    raise LimitError(f"training needs an estimated {human(need, 'B')}, more than {human(limit, 'B')} ({flag})",
                     where="--max-memory" if flag == "--max-memory" else "--batch-size",
                     expected="at most " + " and ".join(filter(None, bounds)) + ("" if max_memory else " (no --max-memory given)"),
                     found=f"{human(need, 'B')} = ({est.formula()}){shared}",
                     hint=f"lower --batch-size (each image adds {human(est.activations * est.act_bytes, 'B')}), "
                          "use a smaller net, or raise --max-memory if the estimate is too cautious")


def check_fits_data(comp, image: tuple[int, ...], classes: int, data: str = "CIFAR-10") -> None:
    """The checked graph of ``comp`` takes ``image``-shaped inputs and gives ``classes`` scores per image."""
    g = comp.graph
    main = comp.program.main
    input_span = main.input.span if main.input is not None else main.span
    if tuple(g.input_shape) != tuple(image):
        wanted = f"input [{', '.join(map(str, image))}]"
        raise ShapeError(f"the network's input {fmt(g.input_shape)} does not fit {data} images ({fmt(image)})",
                         input_span, expected=wanted, found=f"input {list(g.input_shape)}",
                         hint=f"declare `{wanted}`{_set_hint(g, g.input_shape, image)}; archc train and eval "
                              f"feed {data}'s {fmt(image)} images as they are")
    for out_id in g.output_ids:  # the main output, then each auxiliary head's (trained on the same labels)
        _check_scores(g, out_id, classes, data)


def _check_scores(g, out_id: str, classes: int, data: str) -> None:
    """Output ``out_id`` of ``g`` gives ``classes`` scores per image."""
    what = "the network's output" if out_id == g.output_id else f"auxiliary head `{g.inputs(out_id)[0]}`"
    out = tuple(g.shapes[out_id])
    last = g.node(g.inputs(out_id)[0]).span
    if len(out) != 1:
        raise ShapeError(f"{what} is {fmt(out)} per image, not a vector of {classes} class scores",
                         last, expected=f"output {classes}", found=f"output {fmt(out)}",
                         hint=f"end it with a classifier head, e.g. `gap; flatten; linear({classes})`")
    if out[0] != classes:
        raise ShapeError(f"{what} gives {out[0]} class scores; {data} has {classes} classes", last,
                         expected=f"output {classes}", found=f"output {out[0]}",
                         hint=f"end it with linear({classes}){_set_hint(g, out, (classes,))}")


def _set_hint(g, found: tuple, wanted: tuple) -> str:
    """``, or --set NAME=VALUE`` when an arch parameter holds the first wrong size (``classes``, ``size``)."""
    pairs = [(f, w) for f, w in zip(found, wanted) if f != w] if len(found) == len(wanted) else []
    if not pairs:
        return ""
    bad, good = pairs[0]
    names = sorted((k for k, v in g.params.items() if type(v) is int and v == bad), key=lambda k: k != "classes")
    return f", or --set {names[0]}={good}" if names else ""


def processes_sharing(device_type: str, world: int) -> int:
    """How many processes draw on one device's memory: all of them on the host, one per GPU."""
    return world if device_type == "cpu" else 1
