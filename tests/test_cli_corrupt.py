"""``ambient corrupt`` end to end on a small written Fashion-MNIST stand-in."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from ambient_omni.cli.main import main
from ambient_omni.data import readers
from ambient_omni.data.dataset_folder import load_dataset


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()


@pytest.fixture
def fmnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """40 random 28x28 images with labels 0..9 (4 each) as gzipped IDX files."""
    rng = np.random.default_rng(0)
    root = tmp_path / "fmnist"
    root.mkdir()
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    labels = (np.arange(40) % 10).astype(np.uint8)
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (root / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    monkeypatch.setenv(readers.FASHION_MNIST_ENV, str(root))
    return root


def run(*argv: str) -> int:
    return main(["corrupt", *argv])


def test_corrupt_writes_identical_folders(fmnist: Path, tmp_path: Path, capsys) -> None:
    args = ["--source", "fashion-mnist", "--corruption", "blur:sigma=0.6", "--clean-fraction", "0.1", "--seed", "0"]
    assert run(*args, "--out", str(tmp_path / "a")) == 0
    assert run(*args, "--out", str(tmp_path / "b")) == 0
    assert "36 corrupted:blur:sigma=0.6" in capsys.readouterr().out
    for name in ("images.npy", "labels.npy", "manifest.jsonl", "dataset.json", "README.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    dataset = load_dataset(tmp_path / "a")
    assert dataset.info["counts"] == {"clean": 4, "corrupted:blur:sigma=0.6": 36}
    assert dataset.info["command"] == ("ambient corrupt --source fashion-mnist:train --corruption "
                                       "blur:sigma=0.6 --clean-fraction 0.1 --seed 0 --out FOLDER")
    assert dataset.sources[0] == "fashion-mnist:train"


def test_corrupt_class_count_and_subset(fmnist: Path, tmp_path: Path) -> None:
    assert run("--source", "fashion-mnist:train", "--class", "Sneaker,5", "--corruption", "jpeg:quality=10",
               "--clean-count", "2", "--n", "6", "--seed", "3", "--out", str(tmp_path / "c")) == 0
    dataset = load_dataset(tmp_path / "c")
    assert len(dataset) == 6 and set(dataset.labels.tolist()) <= {5, 7}
    assert dataset.info["counts"]["clean"] == 2


def test_corrupt_with_mixed_corruptions(fmnist: Path, tmp_path: Path) -> None:
    assert run("--source", "fashion-mnist:train", "--corruption", "blur:sigma=1.0", "--corruption", "jpeg:quality=10",
               "--clean-count", "2", "--n", "7", "--out", str(tmp_path / "m")) == 0
    dataset = load_dataset(tmp_path / "m")
    assert dataset.info["counts"] == {"clean": 2, "corrupted:blur:sigma=1": 3, "corrupted:jpeg:quality=10": 2}
    assert dataset.info["command"].count("--corruption") == 2


def test_corrupt_user_errors(fmnist: Path, tmp_path: Path, capsys) -> None:
    out = ["--out", str(tmp_path / "d")]
    assert run("--source", "fashion-mnist", "--corruption", "smudge:x=1", "--clean-fraction", "0.1", *out) == 2
    assert "smudge" in capsys.readouterr().err
    assert run("--source", "nowhere", "--corruption", "blur:sigma=1", "--clean-fraction", "0.1", *out) == 2
    assert "valid forms" in capsys.readouterr().err
    assert run("--source", "fashion-mnist@class=1", "--class", "2", "--corruption", "blur:sigma=1",
               "--clean-fraction", "0.1", *out) == 2
    assert "conflicts" in capsys.readouterr().err
    assert run("--source", "fashion-mnist", "--clean-fraction", "0.5", *out) == 2
    assert "corruption is needed" in capsys.readouterr().err
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    assert run("--source", "fashion-mnist", "--corruption", "blur:sigma=1", "--clean-fraction", "0.1", *out) == 2
    assert "not empty" in capsys.readouterr().err
    assert run("--source", "fashion-mnist", "--corruption", "blur:sigma=1", "--clean-fraction", "0.1",
               "--overwrite", *out) == 0
