"""``archc compile FILE --weights torchvision:NAME[:ENUM]``, with torch's cache in a temporary TORCH_HOME.

The network is never used: the pretrained file is stood in for by a randomly initialised torchvision
model's state dict, written where torch caches the download, or "downloaded" by a patched
``torch.hub.download_url_to_file``. The reference is torchvision itself: after loading, the compiled
model's outputs equal torchvision's model with the same weights. Hostile cached files (code in the
pickle, empty, cut off, a FIFO, a zip bomb) are generated from tests/hostile/payloads.py: each must be
refused naming the file and the fix (delete it), and never run.
"""
from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from archc.compiler.builder import build
from archc.dsl.errors import CheckpointError, UsageError
from archc.runtime.cli import main
from archc.runtime.weights import load_weights
from hostile import payloads

ROOT = Path(__file__).resolve().parents[1]
RESNET18 = str(ROOT / "archs/resnet18.arch")
FILE = "resnet18-f37072fd.pth"  # torchvision's ResNet18_Weights.IMAGENET1K_V1, as torch caches it


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """TORCH_HOME in tmp_path; returns (the cached file's path, the downloads attempted)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    downloads = []

    def offline(url, dst, hash_prefix=None, progress=True):
        downloads.append((url, dst, hash_prefix))
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    path = tmp_path / "torch" / "hub" / "checkpoints" / FILE
    path.parent.mkdir(parents=True)
    return path, downloads


@pytest.fixture(scope="module")
def model():
    return build(RESNET18).eval()


def test_cached_weights_give_torchvision_outputs(cache, model):
    path, downloads = cache
    reference = torchvision.models.resnet18().eval()
    torch.save(reference.state_dict(), path)
    load_weights(model, "torchvision:resnet18:IMAGENET1K_V1")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() <= 1e-5
    assert downloads == []


def test_a_missing_file_is_downloaded_with_its_hash_checked(cache, model, monkeypatch):
    path, _ = cache
    reference = torchvision.models.resnet18().eval()
    fetched = []

    def download(url, dst, hash_prefix=None, progress=True):
        fetched.append((url, dst, hash_prefix))
        torch.save(reference.state_dict(), dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    load_weights(model, "torchvision:resnet18")
    assert fetched == [(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url, str(path), "f37072fd")]
    assert torch.equal(model.state_dict()["fc.weight"], reference.fc.weight)


@pytest.mark.parametrize("arch, sets, message", [
    ("densenet_uva.arch", {}, "missing (first: input_net.0.weight)"),
    ("resnet18.arch", {"classes": 10}, "2 shape mismatches (first: fc.weight: 1000×512 in the checkpoint, 10×512 here)"),
])
def test_mismatch_is_refused_before_reading_or_downloading(cache, arch, sets, message):
    path, downloads = cache
    path.write_bytes(b"never read")
    with pytest.raises(CheckpointError) as err:
        load_weights(build(str(ROOT / "archs" / arch), **sets), "torchvision:resnet18")
    assert message in str(err.value) and downloads == []


@pytest.mark.parametrize("spec, message", [
    ("resnet18", "is not understood"),
    ("hub:resnet18", "is not understood"),
    ("torchvision:resnet18:NOPE", "torchvision has no weights `resnet18:NOPE`"),
    ("torchvision:nonet", "torchvision has no weights `nonet:DEFAULT`"),
])
def test_bad_spec_is_a_usage_error(cache, model, spec, message):
    with pytest.raises(UsageError) as err:
        load_weights(model, spec)
    assert message in str(err.value)


def test_offline_cli_says_how_to_fix(cache, capsys):
    code = main(["compile", RESNET18, "--weights", "torchvision:resnet18"])
    err = capsys.readouterr().err
    assert code == 2 and "could not download ResNet18_Weights.IMAGENET1K_V1" in err
    assert "connect to the internet once" in err and FILE in err and "Traceback" not in err


FORMATS = {"zip": {}, "legacy": {"_use_new_zipfile_serialization": False}, "zip, protocol 4": {"pickle_protocol": 4}}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("call", payloads.calls(""))
def test_code_in_the_cached_file_never_runs(cache, model, tmp_path, call, fmt):
    """torch.hub's own loader unpickles without weights_only: these files ran their code before."""
    path, downloads = cache
    marker = tmp_path / "PWNED"
    torch.save({"conv1.weight": payloads.calls(str(marker))[call]}, path, **FORMATS[fmt])
    with pytest.raises(CheckpointError) as err:
        load_weights(model, "torchvision:resnet18")
    assert not marker.exists()
    assert str(err.value).startswith(f"{path}: checkpoint error: ") and f"hint: delete {path}" in str(err.value)
    assert downloads == []


DAMAGED = {
    "empty": (lambda p: p.write_bytes(b""), "cached weights file is damaged or not a PyTorch file", "an empty file (0 bytes)"),
    "cut off": (lambda p: p.write_bytes(_real_bytes()[:30_000]), "is damaged", "cut off or corrupt"),
    "a list": (lambda p: torch.save([1, 2], p), "holds no state dict", "a list of 2 items"),
    "nested lists for a tensor": (lambda p: torch.save({"conv1.weight": [[0.5] * 7] * 64}, p), "holds no state dict at "
                                  "['conv1.weight']", "a list of 64 items"),
    "other names": (lambda p: torch.save({"w": torch.zeros(1)}, p), "does not hold ResNet18_Weights.IMAGENET1K_V1",
                    "122 missing (first: conv1.weight); 1 unexpected (first: w)"),
    "a FIFO": (lambda p: os.mkfifo(p), "cached weights file is not a regular file", "a regular file"),
    "a folder": (lambda p: p.mkdir(), "cached weights file is a directory", "a file"),
    "a link to /dev/zero": (lambda p: p.symlink_to("/dev/zero"), "is not a regular file", "a regular file"),
    "a zip bomb": (lambda p: payloads.zip_bomb(p, 2**31), "would unpack to far more than it holds", "declaring 2,147,48"),
}


def _real_bytes() -> bytes:
    import io
    buf = io.BytesIO()
    torch.save(torchvision.models.resnet18().state_dict(), buf)
    return buf.getvalue()


@pytest.mark.parametrize("kind", DAMAGED)
def test_a_damaged_cached_file_names_itself_and_the_fix(cache, kind, capsys):
    """Through the command line: exit 2 (an empty file used to end as "aborted", exit 130, like Ctrl-C)."""
    path, downloads = cache
    make, what, detail = DAMAGED[kind]
    make(path)
    code = main(["compile", RESNET18, "--weights", "torchvision:resnet18"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"{path}: checkpoint error: ") and what in err.splitlines()[0], err
    assert detail in err and f"hint: delete {path}; the next run downloads it again" in err and "Traceback" not in err
    assert downloads == []
