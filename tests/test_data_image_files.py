"""Image folders and zip archives: classes from subfolders, modes, 16-bit grayscale, bad or hostile files."""

import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ambient_omni.data.image_files import read_image_folder, read_zip
from ambient_omni.data.readers import read_source
from ambient_omni.errors import AmbientError


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


@pytest.mark.parametrize("mode", [None, "L", "RGB"])
def test_sixteen_bit_grayscale_keeps_its_range(tmp_path: Path, mode: str | None) -> None:
    from PIL import Image

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

    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "missing.png")
    with pytest.warns(UserWarning, match="1 dangling symbolic link.*b.png"):
        assert len(read_image_folder(tmp_path).images) == 1


def test_an_image_claiming_too_many_pixels_is_refused_before_decoding(tmp_path: Path) -> None:
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
