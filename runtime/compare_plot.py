"""The pictures of ``archc compare``: costs of several archs (``plot_rows``) and accuracy against
costs of several finished runs (``plot_runs``).

Made to be read in a paper or a blog post: axes in human units (``40.8M`` MACs, not
``0.04 GMACs``), a log scale where values span decades, every label placed next to its point
where it covers no other point or label, a size legend for bubble areas, 200 dpi.
"""
from __future__ import annotations

from pathlib import Path

from archc.dsl.text import printable

DPI = 200
_PAD_PT = 3  # gap between a marker's edge and its label, in points


def plot_rows(rows: list, path: str, batch: int) -> Path:
    return _save(rows_figure(rows, batch), path)


def plot_runs(rows: list, path: str) -> Path:
    return _save(runs_figure(rows), path)


def rows_figure(rows: list, batch: int):
    """MACs vs params, bubble area ∝ training memory; a throughput panel when measured."""
    measured = [r for r in rows if "images_per_s" in r]
    fig, axes = _figure(2 if measured else 1)
    labels = _bubbles(axes[0], rows, batch)
    if measured:
        _throughput(axes[1], measured, batch)
    fig.tight_layout()  # before placing labels: it moves the axes
    _label(axes[0], *labels)
    return fig


def runs_figure(rows: list):
    """Test accuracy against MACs, params and estimated training memory, one point per run;
    runs of the same network (graph hash) share a colour."""
    fig, axes = _figure(3, width=5.0)
    colour = _colours(rows)
    panels = (("macs", "MACs per image"), ("params", "parameters"),
              ("train_memory_bytes", "training memory (estimate)"))
    labels = []
    for ax, (key, xlabel) in zip(axes, panels):
        shown = [r for r in rows if r.get(key) is not None and r.get("test_acc") is not None]
        xs, ys = [r[key] for r in shown], [100 * r["test_acc"] for r in shown]
        ax.scatter(xs, ys, s=60, c=[colour[r["group"]] for r in shown], edgecolors="#333333", linewidths=0.6, zorder=3)
        _axis(ax, "x", xs, "B" if key == "train_memory_bytes" else "")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        missing = len(rows) - len(shown)
        ax.set_title(f"{len(shown)} runs" + (f" ({missing} without this figure)" if missing else ""), fontsize=9)
        ax.margins(0.15)
        labels.append((ax, xs, ys, [_text(_run_name(r)) for r in shown], [4.4] * len(shown)))
    fig.suptitle("test accuracy of best.pt against cost (archc train runs)", fontsize=11)
    fig.tight_layout()  # before placing labels: it moves the axes
    for args in labels:
        _label(*args)
    return fig


# ---- panels -------------------------------------------------------------------------------------
def _bubbles(ax, rows: list, batch: int) -> tuple:
    """The bubble panel; returns what ``_label`` needs once the layout is final."""
    xs, ys, mem = [r["params"] for r in rows], [r["macs"] for r in rows], [r["train_memory_bytes"] for r in rows]
    area = _areas(mem)
    ax.scatter(xs, ys, s=[area(m) for m in mem], alpha=0.5, c=[f"C{i % 10}" for i in range(len(rows))],
               edgecolors="#333333", linewidths=0.6, zorder=3)
    _axis(ax, "x", xs, "")
    _axis(ax, "y", ys, "")
    ax.margins(0.3)
    ax.set_xlabel("parameters")
    ax.set_ylabel("MACs per image")
    ax.set_title(f"bubble area ∝ training memory at batch {batch} (estimate)", fontsize=9)
    ax.grid(alpha=0.3)
    refs = _reference_sizes(mem)
    handles = [ax.scatter([], [], s=area(m), color="#bbbbbb", edgecolors="#333333", linewidths=0.6) for m in refs]
    ax.legend(handles, [_tick(m, "B") for m in refs], title="training memory", loc="upper left",
              bbox_to_anchor=(1.01, 1), labelspacing=3.2, borderpad=1.4, handletextpad=2.6, frameon=False,
              fontsize=8, title_fontsize=8)
    return xs, ys, [_text(r["arch"]) for r in rows], [(area(m) / 3.1416) ** 0.5 for m in mem]


def _throughput(ax, rows: list, batch: int):
    from archc.compiler.summary import human
    names = [_text(r["arch"]) for r in rows]
    speed = [r["images_per_s"] for r in rows]
    lo_hi = [r.get("images_per_s_range") or [s, s] for r, s in zip(rows, speed)]
    err = [[s - lo for s, (lo, _) in zip(speed, lo_hi)], [hi - s for s, (_, hi) in zip(speed, lo_hi)]]
    bars = ax.barh(names, speed, xerr=err, capsize=3, color=[f"C{i % 10}" for i in range(len(rows))], alpha=0.7)
    for bar, r, (lo, hi) in zip(bars, rows, lo_hi):
        ax.annotate(f"  {r['images_per_s']:,.0f} img/s ({lo:,.0f}–{hi:,.0f}), peak {human(r['peak_bytes'], 'B')}",
                    (hi, bar.get_y() + bar.get_height() / 2), va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(h for _, h in lo_hi) * 1.8)
    ax.set_xlabel("training images/s (fwd + bwd + SGD): median of rounds, bar = range")
    ax.set_title(f"measured on {_text(rows[0]['device'])}, batch {batch}", fontsize=9)
    ax.grid(axis="x", alpha=0.3)


def _run_name(row: dict) -> str:
    """``dense · seed1`` for run folder seed1 of arch dense; just the arch when the folder is named after it."""
    arch, run = row.get("arch"), row["run"]
    return run if not arch or arch == run else f"{arch} · {run}"


# ---- helpers ------------------------------------------------------------------------------------
def _figure(panels: int, width: float = 6.0):
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, panels, figsize=(width * panels + 1.2, 4.6), squeeze=False)
    return fig, list(axes[0])


def _save(fig, path: str) -> Path:
    """As a PNG through ``write_output``: a FIFO, a device or a folder at ``path`` is refused, never written."""
    import io

    import matplotlib.pyplot as plt
    from archc.runtime.paths import write_output
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    write_output(path, buf.getvalue(), "--plot")
    return Path(path)


def _axis(ax, axis: str, values: list, unit: str):
    """Human tick labels (``40.8M``); a log scale when the values span more than 20×."""
    from matplotlib.ticker import FuncFormatter
    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) > 20:
        getattr(ax, f"set_{axis}scale")("log")
    getattr(ax, f"{axis}axis").set_major_formatter(FuncFormatter(lambda v, _: _tick(v, unit)))


def _tick(v: float, unit: str) -> str:
    """``1.50M`` -> ``1.5M``, ``500.00K`` -> ``500K``: tick labels without padding zeros."""
    from archc.compiler.summary import human
    if v <= 0:
        return "0"
    text = human(v, unit)
    head = text.rstrip("KMGTB" + unit)
    return (head.rstrip("0").rstrip(".") if "." in head else head) + text[len(head):]


def _areas(values: list):
    """Marker area (points²) for a value: proportional, the largest 2000; at least 30 to stay visible."""
    top = max(values) or 1
    return lambda v: max(30.0, 2000 * v / top)


def _reference_sizes(values: list) -> list:
    """Up to three round values spanning ``values``, for the size legend."""
    lo, hi = min(values), max(values)
    picks = [hi, (lo + hi) / 2, lo] if hi > 1.5 * lo else [hi]
    return sorted({_round(v) for v in picks if v > 0}, reverse=True)


def _round(v: float) -> float:
    """One significant figure: 344.6 MB -> 300 MB."""
    from math import floor, log10
    scale = 10 ** floor(log10(v))
    return max(1, round(v / scale)) * scale


def _colours(rows: list) -> dict:
    groups = list(dict.fromkeys(r["group"] for r in rows))
    return {g: f"C{i % 10}" for i, g in enumerate(groups)}


def _text(value) -> str:
    """User text for matplotlib: printable, and ``$`` not read as mathtext."""
    return printable(value, 60).replace("$", r"\$")


def _label(ax, xs: list, ys: list, texts: list, radii_pt: list):
    """Put each label beside its marker, on the first side where it overlaps no marker, no label
    placed before it and stays inside the axes; else on the side with the least overlap."""
    fig = ax.figure
    fig.canvas.draw()  # fixes the transforms (log scales, margins) before measuring
    renderer = fig.canvas.get_renderer()
    to_px = fig.dpi / 72
    centres = ax.transData.transform(list(zip(xs, ys))) if xs else []
    taken = [_disc_box(c, r * to_px) for c, r in zip(centres, radii_pt)]
    frame = ax.get_window_extent(renderer)
    for (x, y), text, r in zip(zip(xs, ys), texts, radii_pt):
        best, best_cost = None, None
        for dx, dy, ha, va in _sides(r + _PAD_PT):
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=8)
            box = label.get_window_extent(renderer)
            cost = sum(_overlap(box, t) for t in taken) + (0 if _inside(box, frame) else box.width * box.height)
            if best is None or cost < best_cost:
                if best is not None:
                    best.remove()
                best, best_cost = label, cost
            else:
                label.remove()
            if cost == 0:
                break
        taken.append(best.get_window_extent(renderer))


def _sides(d: float) -> list:
    """Offsets (points) and alignments: right, left, above, below, then the diagonals."""
    e = d * 0.75
    return [(d, 0, "left", "center"), (-d, 0, "right", "center"), (0, d, "center", "bottom"),
            (0, -d, "center", "top"), (e, e, "left", "bottom"), (-e, e, "right", "bottom"),
            (e, -e, "left", "top"), (-e, -e, "right", "top")]


def _disc_box(centre, r_px: float):
    from matplotlib.transforms import Bbox
    x, y = centre
    return Bbox([[x - r_px, y - r_px], [x + r_px, y + r_px]])


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _inside(box, frame) -> bool:
    return box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1
