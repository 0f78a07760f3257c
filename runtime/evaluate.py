"""``evaluate(model, checkpoint, data)``: test-set accuracy, per-class accuracy and confusion matrix."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archc.dsl.errors import ShapeError
from archc.dsl.text import markup
from archc.runtime import checkpoint, distributed
from archc.runtime.data import load_cifar10
from archc.runtime.loop import predict
from archc.runtime.paths import write_output


def evaluate(model: nn.Module, checkpoint_path: Path, data: str | Path, *, device: str = "auto",
             plot: Path | None = None, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load the checkpoint's weights into ``model`` and score it on ``data``'s test batch.

    Returns ``accuracy`` (fraction), ``per_class`` (class name -> fraction), ``confusion`` (rows: true
    class, columns: predicted), ``classes``, ``n``, ``checkpoint`` and ``epoch``. ``state`` is the
    already loaded checkpoint, to skip a second read; ``plot`` writes the confusion matrix as a PNG.
    """
    state = state if state is not None else checkpoint.load(checkpoint_path)
    checkpoint.load_model_state(model, state, checkpoint_path)
    dev = distributed.resolve_device(device)
    cifar = load_cifar10(data, dev, train=False)
    model.to(dev, memory_format=torch.channels_last)
    tta = state["config"].get("tta", "none")  # the test-time views the run scored its test set with
    logits = predict(model, cifar.test_x, bf16=dev.type == "cuda", tta=tta)
    k = len(cifar.classes)
    if logits.shape[1:] != (k,):  # archc eval checks the spec first; a module handed in directly may not fit
        raise ShapeError(f"the network gives {'×'.join(map(str, logits.shape[1:]))} outputs per image, not {k} class scores",
                         where=str(checkpoint_path), expected=f"{k} scores per image", found=str(tuple(logits.shape[1:])))
    preds = logits.argmax(1)
    confusion = torch.bincount(cifar.test_y * k + preds, minlength=k * k).view(k, k).cpu()
    totals = confusion.sum(1).tolist()
    per_class = {name: (confusion[i, i].item() / totals[i] if totals[i] else None) for i, name in enumerate(cifar.classes)}
    if plot:
        plot_confusion(plot, confusion, cifar.classes)
    return {"accuracy": confusion.diag().sum().item() / max(1, len(preds)), "n": len(preds), "per_class": per_class,
            "classes": list(cifar.classes), "confusion": confusion.tolist(), "checkpoint": str(checkpoint_path),
            "epoch": state.get("epoch")}


def plot_confusion(path: Path, confusion: torch.Tensor, classes: tuple[str, ...]) -> None:
    """The confusion matrix as a heat map, each row normalised to the fraction of its true class."""
    from matplotlib.figure import Figure  # object API: Agg rendering without touching pyplot's backend

    rows = confusion.double() / confusion.sum(1, keepdim=True).clamp(min=1)
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel="predicted", ylabel="true", title="confusion matrix")
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticklabels(classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if rows[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    write_output(path, buf.getvalue(), "--plot")


def print_report(result: dict[str, Any], plot: Path | None = None) -> None:
    """The result as a headline, a per-class table and the confusion matrix on the terminal."""
    from rich.console import Console
    from rich.table import Column, Table

    names = [markup(n, 24) for n in result["per_class"]]
    table = Table("class", Column("accuracy", justify="right"), Column("images", justify="right"))
    for i, (name, acc) in enumerate(zip(names, result["per_class"].values())):
        table.add_row(name, "-" if acc is None else f"{acc:.2%}", str(sum(result["confusion"][i])))
    # Columns numbered like the rows, so ten classes fit 80 columns
    matrix = Table(title="confusion matrix (rows: true class, columns: predicted)", title_justify="left")
    matrix.add_column("true")
    for i in range(len(names)):
        matrix.add_column(str(i), justify="right")
    for i, (name, row) in enumerate(zip(names, result["confusion"])):
        matrix.add_row(f"{i} {name}", *map(str, row))
    console = Console()
    console.print(f"{markup(result['checkpoint'])} (epoch {markup(result['epoch'])}): accuracy {result['accuracy']:.2%} "
                  f"on {result['n']} test images", highlight=False, soft_wrap=True)
    console.print(table)
    console.print(matrix)
    if plot:
        console.print(f"confusion matrix plot: {markup(plot)}", highlight=False, soft_wrap=True)
