"""The CIFAR-10 loader on real files, and its refusals of missing, truncated and foreign data."""
from __future__ import annotations

import os
import pickle
import urllib.error

import numpy as np
import pytest
import torch

from archc.dsl.errors import DataError
from archc.runtime import data
from runtime_kit import SAMPLE, SHARED


def _raw(path):
    with path.open("rb") as f:
        return pickle.load(f, encoding="latin1")


def test_sample_is_an_even_cut_of_the_shared_subset_under_8mb():
    d = data.load_cifar10("sample")
    assert d.train_x.shape == (2000, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.test_x.shape == (500, 3, 32, 32) and d.train_y.dtype == torch.int64
    for i in range(5):  # 400 images from each of the 5 training batches, in order
        ref = _raw(SHARED / f"data_batch_{i + 1}")
        assert np.array_equal(d.train_x[400 * i:400 * (i + 1)].numpy().reshape(400, -1), ref["data"][:400])
        assert d.train_y[400 * i:400 * (i + 1)].tolist() == ref["labels"][:400]
    assert d.test_y.tolist() == _raw(SHARED / "test_batch")["labels"][:500]
    assert _raw(SAMPLE / "batches.meta")["label_names"] == list(d.classes)
    assert sum(p.stat().st_size for p in SAMPLE.iterdir()) <= 8_000_000


def test_reads_channel_major_rows_as_chw():
    raw = _raw(SHARED / "test_batch")
    d = data.load_cifar10(SHARED.parent, train=False)  # the folder holding cifar-10-batches-py
    img = d.test_x[7]
    assert img[0, 0, 1] == raw["data"][7][1]  # red, row 0, column 1
    assert img[1, 0, 0] == raw["data"][7][1024]  # first green value
    assert img[2, 31, 31] == raw["data"][7][3071]
    assert len(d.test_y) == len(raw["labels"])


def test_accepts_the_batches_folder_itself(tiny_data):
    a = data.load_cifar10(tiny_data)
    b = data.load_cifar10(tiny_data / "cifar-10-batches-py")
    assert torch.equal(a.train_x, b.train_x) and len(a.train_y) == 256


def test_missing_folder(tmp_path):
    with pytest.raises(DataError) as e:
        data.load_cifar10(tmp_path / "nowhere")
    assert "nowhere" in str(e.value) and "not found" in str(e.value)


def test_folder_without_cifar(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError) as e:
        data.load_cifar10(tmp_path)
    assert "notes.txt" in str(e.value) and "cifar-10-batches-py" in str(e.value)


def test_truncated_batch_names_the_file(tiny_data):
    path = tiny_data / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError) as e:
        data.load_cifar10(tiny_data)
    assert str(path) in str(e.value) and "truncated" in str(e.value)


@pytest.mark.parametrize("payload, found", [
    ([1, 2, 3], "list"),
    ({"data": np.zeros((4, 100), np.uint8), "labels": [0, 1, 2, 3]}, "data: a ndarray 4×100 uint8"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1, 2]}, "3 labels for 2 images"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 12]}, "label of image 1: the int 12"),
])
def test_wrong_format_names_the_file(tiny_data, payload, found):
    path = tiny_data / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(DataError) as e:
        data.load_cifar10(tiny_data)
    assert str(path) in str(e.value) and found in str(e.value)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_hostile_pickle_does_not_run(tiny_data, tmp_path):
    marker = tmp_path / "pwned"
    path = tiny_data / "cifar-10-batches-py" / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": _Evil(str(marker)), "labels": []}))
    with pytest.raises(DataError) as e:
        data.load_cifar10(tiny_data)
    assert "refusing" in str(e.value) and not marker.exists()


def test_missing_test_batch(tiny_data):
    os.remove(tiny_data / "cifar-10-batches-py" / "test_batch")
    with pytest.raises(DataError, match="test_batch"):
        data.load_cifar10(tiny_data)


def test_offline_download_is_a_data_error(tmp_path, monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(data, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError) as e:
        data.load_cifar10("cifar10")
    assert "download" in str(e.value) and "--data sample" in str(e.value) and str(tmp_path / "cache") in str(e.value)
