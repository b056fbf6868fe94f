"""Readers: IDX, arrays, scikit-image crops, source specs, bad input (image folders and zips:
test_data_image_files)."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_omni.data import readers
from ambient_omni.data.readers import (
    read_array, read_fashion_mnist, read_idx, read_source, skimage_crops,
)
from ambient_omni.errors import AmbientError

REAL_FMNIST = Path(readers.FASHION_MNIST_DEFAULT_DIR)


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding: magic 00 00 08 ndim, big-endian int32 dims, raw bytes."""
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()


@pytest.fixture
def fake_fmnist(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))  # plain, not gzipped
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images[:3])))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels[:2])))
    return tmp_path, images, labels


def test_fashion_mnist_from_written_idx(fake_fmnist, monkeypatch) -> None:
    root, images, labels = fake_fmnist
    data = read_fashion_mnist("train", root)
    assert data.images.shape == (7, 1, 28, 28)
    assert torch.equal(data.to_uint8()[:, 0], torch.from_numpy(images))
    assert data.labels.tolist() == labels.tolist() and data.class_names[7] == "Sneaker"
    monkeypatch.setenv(readers.FASHION_MNIST_ENV, str(root))
    assert len(read_source("fashion-mnist")) == 7
    with pytest.raises(AmbientError, match="2 labels for 3 images"):
        read_fashion_mnist("test", root)
    with pytest.raises(AmbientError, match="split"):
        read_fashion_mnist("val", root)


def test_idx_errors(tmp_path: Path) -> None:
    good = idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8))
    cases = {"magic": b"\x00\x00\x0d\x03" + good[4:], "truncated": good[:-1], "header": good[:6]}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
    with pytest.raises(AmbientError, match="magic"):
        read_idx(tmp_path / "magic", 3)
    with pytest.raises(AmbientError, match="truncated"):
        read_idx(tmp_path / "truncated", 3)
    with pytest.raises(AmbientError, match="truncated IDX header"):
        read_idx(tmp_path / "header", 3)
    (tmp_path / "ok").write_bytes(good)
    with pytest.raises(AmbientError, match="3 dimensions, expected 1"):
        read_idx(tmp_path / "ok", 1)
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(AmbientError, match="bad.gz"):
        read_idx(tmp_path / "bad.gz", 3)
    with pytest.raises(AmbientError, match="missing Fashion-MNIST"):
        read_fashion_mnist("train", tmp_path)


@pytest.mark.skipif(not REAL_FMNIST.is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_real_fashion_mnist() -> None:
    test = read_fashion_mnist("test", REAL_FMNIST)
    assert test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert float(test.images.min()) == -1.0 and float(test.images.max()) == 1.0
    sneakers = read_source("fashion-mnist:test@class=Sneaker")
    assert len(sneakers) == 1000 and set(sneakers.labels.tolist()) == {7}
    assert torch.equal(sneakers.images[0], test.images[int(sneakers.source_index[0])])


def test_array_layouts_and_ranges(tmp_path: Path) -> None:
    codes = np.random.default_rng(2).integers(0, 256, (4, 3, 6, 5), dtype=np.uint8)
    expected = torch.from_numpy(codes).float() / 127.5 - 1
    np.save(tmp_path / "nchw.npy", codes)
    np.save(tmp_path / "nhwc.npy", codes.transpose(0, 2, 3, 1))
    np.savez(tmp_path / "unit.npz", images=codes.astype(np.float32) / 255.0, labels=np.arange(4))
    np.save(tmp_path / "signed.npy", expected.numpy())
    np.save(tmp_path / "gray.npy", codes[:, 0])
    assert torch.equal(read_array(tmp_path / "nchw.npy").images, expected)
    assert torch.equal(read_source(f"array:{tmp_path / 'nhwc.npy'}").images, expected)
    unit = read_source(str(tmp_path / "unit.npz"))
    assert torch.allclose(unit.images, expected, atol=1e-6) and unit.labels.tolist() == [0, 1, 2, 3]
    assert torch.equal(read_array(tmp_path / "signed.npy").images, expected)
    assert read_array(tmp_path / "gray.npy").images.shape == (4, 1, 6, 5)
    forced = read_array(tmp_path / "unit.npz", value_range=(-1.0, 1.0))
    assert torch.allclose(forced.images, torch.from_numpy(codes).float() / 255.0)


@pytest.mark.parametrize("array, message", [
    (np.zeros((2, 3, 4, 3), dtype=np.uint8), "ambiguous"),
    (np.zeros((2, 5, 4, 4), dtype=np.uint8), "no channel axis"),
    (np.zeros((2, 4), dtype=np.uint8), "shape"),
    (np.full((2, 1, 4, 4), 1.5, dtype=np.float32), "outside the value range"),
    (np.full((2, 1, 4, 4), np.nan, dtype=np.float32), "NaN"),
    (np.full((2, 1, 4, 4), 300, dtype=np.int32), "0..255"),
    (np.zeros((2, 1, 4, 4), dtype=bool), "dtype"),
])
def test_array_errors(tmp_path: Path, array: np.ndarray, message: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(AmbientError, match=message):
        read_array(tmp_path / "bad.npy")


def test_array_file_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(AmbientError, match="objects.npy"):
        read_array(tmp_path / "objects.npy")
    np.savez(tmp_path / "nokey.npz", pics=np.zeros((1, 1, 4, 4), dtype=np.uint8))
    with pytest.raises(AmbientError, match="'images'"):
        read_array(tmp_path / "nokey.npz")
    np.savez(tmp_path / "labels.npz", images=np.zeros((2, 1, 4, 4), dtype=np.uint8), labels=np.zeros(3))
    with pytest.raises(AmbientError, match="labels"):
        read_array(tmp_path / "labels.npz")
    (tmp_path / "short.npy").write_bytes(np.lib.format.magic(1, 0) + b"\x10")
    with pytest.raises(AmbientError, match="short.npy"):
        read_array(tmp_path / "short.npy")


def test_skimage_crops_deterministic_and_prefix_stable() -> None:
    a = skimage_crops(6, (16, 24), seed=3)
    b = skimage_crops(4, (16, 24), seed=3)
    assert a.images.shape == (6, 3, 16, 24) and a.images.min() >= -1 and a.images.max() <= 1
    assert torch.equal(a.images[:4], b.images) and a.names[:4] == b.names
    assert not torch.equal(skimage_crops(4, (16, 24), seed=4).images, b.images)
    gray = read_source("skimage:3:12:3:1")
    assert gray.images.shape == (3, 1, 12, 12) and gray.labels.tolist() == [-1] * 3
    with pytest.raises(AmbientError, match="no bundled photo"):
        skimage_crops(1, 5000, seed=0)


def test_source_spec_errors(tmp_path: Path, fake_fmnist, monkeypatch) -> None:
    monkeypatch.setenv(readers.FASHION_MNIST_ENV, str(fake_fmnist[0]))
    with pytest.raises(AmbientError, match="valid forms.*folder:PATH"):
        read_source("cifar10")
    with pytest.raises(AmbientError, match="skimage:N:SIZE"):
        read_source("skimage:ten")
    with pytest.raises(AmbientError, match="unknown class 'Unicorn'.*Sneaker"):
        read_source("fashion-mnist:train@class=Unicorn")
    with pytest.raises(AmbientError, match="folder and zip"):
        read_source("fashion-mnist@mode=RGB")
    with pytest.raises(AmbientError, match="needs labels"):
        read_source("skimage:2:8@class=1")
    labels = fake_fmnist[2]
    missing = next(c for c in range(10) if c not in labels)
    with pytest.raises(AmbientError, match="no image has class"):
        read_source(f"fashion-mnist@class={missing}")
    present = int(labels[0])
    picked = read_source(f"fashion-mnist:train@class={present}")
    assert set(picked.labels.tolist()) == {present}
    assert picked.source_index.tolist() == np.flatnonzero(labels == present).tolist()
