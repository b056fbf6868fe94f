"""Synthetic images: `ambient sample` output read with its labels, other sources, clear errors for bad files."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ambient_omni.data.synthetic import read_samples_file, read_synthetic, samples_path, synthetic_provenance
from ambient_omni.errors import AmbientError


def _samples(folder: Path, n: int = 6, labels: bool = True) -> Path:
    """A samples.npz laid out as `ambient sample` writes it (images uint8 N,C,H,W; seeds; labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(0).integers(0, 256, (n, 1, 8, 8), dtype=np.uint8)
    arrays = {"images": images, "seeds": np.arange(n, dtype=np.int64)}
    if labels:
        arrays["labels"] = (np.arange(n) % 3).astype(np.int64)
    np.savez(folder / "samples.npz", **arrays)
    (folder / "sampling.json").write_text("{}")
    return folder


def test_a_sample_folder_and_its_file_give_the_images_and_labels(tmp_path: Path) -> None:
    folder = _samples(tmp_path / "s")
    codes = np.load(folder / "samples.npz")["images"]
    for spec in (str(folder), str(folder / "samples.npz")):
        images = read_synthetic(spec)
        assert torch.equal(images.images, torch.from_numpy(codes).float() / 127.5 - 1)
        assert images.labels.tolist() == [0, 1, 2, 0, 1, 2] and images.source_index.tolist() == list(range(6))
    assert read_synthetic(f"{folder}@class=2").labels.tolist() == [2, 2]


def test_unconditional_samples_have_no_labels(tmp_path: Path) -> None:
    assert read_samples_file(_samples(tmp_path / "s", labels=False) / "samples.npz").labels.tolist() == [-1] * 6


def test_any_image_folder_is_a_synthetic_source(tmp_path: Path) -> None:
    (tmp_path / "png").mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(tmp_path / "png" / f"{i}.png")
    assert samples_path(str(tmp_path / "png")) is None
    assert read_synthetic(str(tmp_path / "png")).images.shape == (3, 1, 8, 8)


def test_missing_damaged_or_wrong_samples_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AmbientError, match="no such samples file"):
        read_synthetic(str(tmp_path / "absent" / "samples.npz"))
    folder = _samples(tmp_path / "s")
    blob = (folder / "samples.npz").read_bytes()
    (folder / "samples.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(AmbientError, match="cannot read the samples file, truncated or damaged"):
        read_synthetic(str(folder))
    np.savez(tmp_path / "other.npz", pictures=np.zeros((2, 1, 8, 8), dtype=np.uint8))
    with pytest.raises(AmbientError, match="not a samples file"):
        read_synthetic(str(tmp_path / "other.npz"))
    np.savez(tmp_path / "float.npz", images=np.zeros((2, 1, 8, 8), dtype=np.float32))
    with pytest.raises(AmbientError, match="must be uint8 .* use an array: source"):
        read_synthetic(str(tmp_path / "float.npz"))
    assert read_synthetic(f"array:{tmp_path / 'float.npz'}").images.shape == (2, 1, 8, 8)  # read_source's forms
    np.savez(tmp_path / "labels.npz", images=np.zeros((2, 1, 8, 8), dtype=np.uint8), labels=np.array([0, -2]))
    with pytest.raises(AmbientError, match="'labels' must be 2 integers >= -1"):
        read_synthetic(str(tmp_path / "labels.npz"))
    with pytest.raises(AmbientError, match="@mode applies to image folders"):
        read_synthetic(str(tmp_path / "labels.npz") + "@mode=L")


def test_folders_that_look_like_samples_but_hold_none_are_errors(tmp_path: Path) -> None:
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "sampling.json").write_text("{}")
    with pytest.raises(AmbientError, match="sampling.json but no samples.npz"):
        read_synthetic(str(tmp_path / "partial"))
    (tmp_path / "run" / "samples").mkdir(parents=True)
    (tmp_path / "run" / "log.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(AmbientError, match="training run folder; draw samples first"):
        read_synthetic(str(tmp_path / "run"))


def test_provenance_names_the_model() -> None:
    assert synthetic_provenance("edm-fmnist") == "synthetic:edm-fmnist"
    for bad in ("", "two words", "a@b"):
        with pytest.raises(AmbientError, match="model name without spaces or '@'"):
            synthetic_provenance(bad)
