"""Readers: IDX, image folders, zips, arrays, scikit-image crops, source specs, bad input."""

import gzip
import warnings
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ambient_omni.data import readers
from ambient_omni.data.readers import (
    read_array, read_fashion_mnist, read_idx, read_image_folder, read_source, read_zip, skimage_crops,
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


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def test_folder_with_classes_png_and_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pics = [rng.integers(0, 256, (5, 8, 3), dtype=np.uint8) for _ in range(3)]
    save(tmp_path / "dog" / "b.png", pics[0])
    save(tmp_path / "cat" / "z.png", pics[1])
    pics[2] = np.broadcast_to(np.array([100, 150, 200], dtype=np.uint8), (5, 8, 3)).copy()  # smooth
    save(tmp_path / "dog" / "a.jpg", pics[2], quality=95)
    with pytest.warns(UserWarning, match="notes.txt"):
        (tmp_path / "notes.txt").write_text("not an image")
        data = read_image_folder(tmp_path)
    assert data.names == ["cat/z.png", "dog/a.jpg", "dog/b.png"]
    assert data.class_names == ["cat", "dog"] and data.labels.tolist() == [0, 1, 1]
    assert data.images.shape == (3, 3, 5, 8)  # non-square: H=5, W=8
    assert np.array_equal(data.to_uint8()[0].permute(1, 2, 0).numpy(), pics[1])  # PNG is lossless
    assert np.abs(data.to_uint8()[1].permute(1, 2, 0).numpy().astype(int) - pics[2]).max() <= 3
    (tmp_path / "notes.txt").unlink()
    gray = read_image_folder(tmp_path, mode="L")
    assert gray.images.shape == (3, 1, 5, 8)


def test_folder_without_classes_and_grayscale(tmp_path: Path) -> None:
    save(tmp_path / "x.png", np.full((4, 4), 255, dtype=np.uint8))
    save(tmp_path / "sub" / "y.png", np.zeros((4, 4), dtype=np.uint8))
    data = read_source(str(tmp_path))
    assert data.labels.tolist() == [-1, -1] and data.class_names == []
    assert data.names == ["sub/y.png", "x.png"] and data.images[0].max() == -1
    assert read_source(f"folder:{tmp_path}@mode=RGB").images.shape == (2, 3, 4, 4)


def test_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(AmbientError, match="no images found"):
        read_image_folder(tmp_path / "empty")
    save(tmp_path / "sizes" / "a.png", np.zeros((4, 4), dtype=np.uint8))
    save(tmp_path / "sizes" / "b.png", np.zeros((4, 6), dtype=np.uint8))
    with pytest.raises(AmbientError, match=r"a.png is 4x4.*b.png is 6x4"):
        read_image_folder(tmp_path / "sizes")
    save(tmp_path / "chan" / "a.png", np.zeros((4, 4), dtype=np.uint8))
    save(tmp_path / "chan" / "b.png", np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(AmbientError, match="mixed channel counts"):
        read_image_folder(tmp_path / "chan")
    assert read_image_folder(tmp_path / "chan", mode="RGB").images.shape == (2, 3, 4, 4)
    save(tmp_path / "alpha" / "a.png", np.zeros((4, 4, 4), dtype=np.uint8))
    with pytest.raises(AmbientError, match="RGBA"):
        read_image_folder(tmp_path / "alpha")
    full = save(tmp_path / "trunc" / "a.png", np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    full.write_bytes(full.read_bytes()[:200])
    with pytest.raises(AmbientError, match=r"a.png: unreadable or truncated"):
        read_image_folder(tmp_path / "trunc")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(AmbientError, match="a.jpg"):
        read_source(f"folder:{tmp_path / 'junk'}")
    with pytest.raises(AmbientError, match="mode"):
        read_image_folder(tmp_path / "chan", mode="CMYK")


def png_bytes(array: np.ndarray) -> bytes:
    import io
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_zip_reader(tmp_path: Path) -> None:
    a, b = np.zeros((3, 5), dtype=np.uint8), np.full((3, 5), 200, dtype=np.uint8)
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("two/b.png", png_bytes(b))
        handle.writestr("one/a.png", png_bytes(a))
        handle.writestr("one/", b"")
    data = read_source(str(archive))
    assert data.names == ["one/a.png", "two/b.png"] and data.labels.tolist() == [0, 1]
    assert data.to_uint8()[1, 0].tolist() == b.tolist()
    assert torch.equal(read_zip(archive, mode="RGB").images[:, 0], data.images[:, 0])


@pytest.mark.parametrize("member", ["../evil.png", "/abs.png", "a/../../x.png", "C:/win.png"])
def test_zip_rejects_escaping_members(tmp_path: Path, member: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("ok.png", png_bytes(np.zeros((2, 2), dtype=np.uint8)))
        handle.writestr(zipfile.ZipInfo(member), png_bytes(np.zeros((2, 2), dtype=np.uint8)))
    with pytest.raises(AmbientError, match="escapes the archive"):
        read_zip(archive)


def test_zip_errors(tmp_path: Path) -> None:
    (tmp_path / "not.zip").write_bytes(b"plain bytes")
    with pytest.raises(AmbientError, match="not.zip: cannot open zip"):
        read_source(f"zip:{tmp_path / 'not.zip'}")
    archive = tmp_path / "trunc.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("a.png", png_bytes(np.zeros((16, 16), dtype=np.uint8))[:30])
    with pytest.raises(AmbientError, match="a.png: unreadable or truncated"):
        read_zip(archive)
    with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
        pass
    with pytest.raises(AmbientError, match="no images found"):
        read_zip(tmp_path / "empty.zip")


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


@pytest.mark.parametrize("mode", [None, "L", "RGB"])
def test_sixteen_bit_grayscale_keeps_its_range(tmp_path: Path, mode: str | None) -> None:
    from PIL import Image

    from ambient_omni.data.readers import read_image_folder

    ramp = (np.arange(256, dtype=np.uint32) * 257).reshape(16, 16)  # 0 .. 65535, a full-range gradient
    Image.fromarray(ramp.astype(np.uint16)).save(tmp_path / "ramp.png")
    with Image.open(tmp_path / "ramp.png") as image:
        assert image.mode in ("I;16", "I")  # what Pillow makes of a 16-bit PNG
    images = read_image_folder(tmp_path, mode=mode)
    codes = np.round((images.images.numpy() + 1) * 127.5).astype(np.int64)
    assert codes.shape == (1, 3 if mode == "RGB" else 1, 16, 16)
    np.testing.assert_array_equal(codes[0, 0].reshape(-1), np.arange(256))  # v * 257 -> v, not 99.5% white


def test_dangling_symbolic_links_are_reported(tmp_path: Path) -> None:
    from PIL import Image

    from ambient_omni.data.readers import read_image_folder

    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "missing.png")
    with pytest.warns(UserWarning, match="1 dangling symbolic link.*b.png"):
        assert len(read_image_folder(tmp_path).images) == 1


def test_an_image_claiming_too_many_pixels_is_refused_before_decoding(tmp_path: Path) -> None:
    from ambient_omni.data.readers import read_zip

    big = tmp_path / "big.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        Image.new("L", (10_000, 10_000)).save(big, optimize=True)  # compresses to a few kB
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(big, "big.png")
    assert archive.stat().st_size < 100_000
    with pytest.raises(AmbientError, match=r"10000x10000 pixels is more than"):
        read_zip(archive)
