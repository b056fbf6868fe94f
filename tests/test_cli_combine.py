"""``ambient combine``: part syntax, the OOD recipe, stacking dataset folders, errors."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from ambient_omni.cli.combine import parse_part
from ambient_omni.cli.main import main
from ambient_omni.data import readers
from ambient_omni.data.dataset_folder import load_dataset
from ambient_omni.errors import AmbientError


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()


@pytest.fixture(autouse=True)
def fmnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """30 random 28x28 images, labels 0..9 three times, as IDX files."""
    root = tmp_path / "fmnist"
    root.mkdir()
    images = np.random.default_rng(1).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    (root / "train-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (root / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes((np.arange(30) % 10).astype(np.uint8))))
    monkeypatch.setenv(readers.FASHION_MNIST_ENV, str(root))


def test_parse_part_forms() -> None:
    part = parse_part("ood:fashion-mnist@class=Sandal@count=2")
    assert part.provenance == "ood:fashion-mnist:train@class=Sandal" and part.count == 2
    assert set(part.data.labels.tolist()) == {5}
    assert parse_part("clean:fashion-mnist:train@fraction=0.5").fraction == 0.5
    for bad, message in [("fashion-mnist", "KIND:SOURCE"), ("clean:fashion-mnist@count=x", "integer"),
                         ("clean:fashion-mnist@count=1@fraction=0.1", "not both")]:
        with pytest.raises(AmbientError, match=message):
            parse_part(bad)


def test_combine_sneaker_plus_sandal_then_stack(tmp_path: Path) -> None:
    out = tmp_path / "ood"
    argv = ["combine", "--part", "clean:fashion-mnist:train@class=Sneaker@count=2",
            "--part", "ood:fashion-mnist:train@class=Sandal", "--seed", "4"]
    assert main([*argv, "--out", str(out)]) == 0
    assert main([*argv, "--out", str(tmp_path / "again")]) == 0
    assert (out / "images.npy").read_bytes() == (tmp_path / "again" / "images.npy").read_bytes()
    assert (out / "README.md").read_bytes() == (tmp_path / "again" / "README.md").read_bytes()
    dataset = load_dataset(out)
    assert dataset.info["counts"] == {"clean": 2, "ood:fashion-mnist:train@class=Sandal": 3}
    assert dataset.labels.tolist() == [7, 7, 5, 5, 5]
    assert main(["combine", "--part", f"dataset:{out}", "--part", "ood:fashion-mnist@class=0",
                 "--out", str(tmp_path / "stacked")]) == 0
    stacked = load_dataset(tmp_path / "stacked")
    assert stacked.provenance[:5] == dataset.provenance and len(stacked) == 8


def test_combine_shape_mismatch_is_a_user_error(tmp_path: Path, capsys) -> None:
    assert main(["combine", "--part", "clean:fashion-mnist", "--part", "ood:skimage:2:16",
                 "--out", str(tmp_path / "x")]) == 2
    assert "shape" in capsys.readouterr().err


def _sampled(tmp_path: Path) -> Path:
    """`ambient sample` output of an untrained 3-class conditional denoiser: 28x28, labels = seed mod 3."""
    from ambient_omni.networks.registry import build_network, network_config
    from ambient_omni.training.checkpoint import save_model

    net = build_network({"kind": "denoiser", "sigma_data": 0.5, "in_channels": 1, "out_channels": 1,
                         "model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1, "label_dim": 3}, init_seed=0)
    save_model(tmp_path / "model", net, {"kind": "denoiser", "network": network_config(net),
                                         "image_shape": [1, 28, 28], "num_classes": 3})
    out = tmp_path / "samples"
    assert main(["sample", "--model", str(tmp_path / "model"), "--out", str(out), "--n", "4", "--steps", "2",
                 "--device", "cpu"]) == 0
    return out


def test_combine_clean_plus_sampled_images_as_synthetic(tmp_path: Path) -> None:
    from ambient_omni.data.annotations import AnnotationTable

    samples = _sampled(tmp_path)
    out = tmp_path / "syn"
    assert main(["combine", "--part", "clean:fashion-mnist@count=2", "--part",
                 f"synthetic:{samples}@model=edm-tiny@count=3", "--out", str(out)]) == 0
    dataset = load_dataset(out)
    assert dataset.provenance == ["clean"] * 2 + ["synthetic:edm-tiny"] * 3
    assert dataset.info["counts"] == {"clean": 2, "synthetic:edm-tiny": 3}
    kept = dataset.source_index[2:]
    assert dataset.labels[2:].tolist() == [int(i) % 3 for i in kept]  # the samples' labels travel with them
    codes = np.load(samples / "samples.npz")["images"]
    assert np.array_equal(dataset.codes[2:], codes[kept])
    table = AnnotationTable.fixed(dataset.ids.numpy(), dataset.provenance, 1.5)  # ambient annotate fixed
    assert table.sigma_min.tolist() == [0.0, 0.0, 1.5, 1.5, 1.5]
    assert main(["combine", "--part", f"synthetic:{samples / 'samples.npz'}@model=edm-tiny",
                 "--out", str(tmp_path / "file")]) == 0
    assert len(load_dataset(tmp_path / "file")) == 4


def test_synthetic_part_errors(tmp_path: Path, capsys) -> None:
    for bad, message in [("synthetic:somewhere", "needs @model=NAME"),
                         ("clean:fashion-mnist@model=x", "synthetic parts only"),
                         ("synthetic:somewhere@model=two words", "model name")]:
        with pytest.raises(AmbientError, match=message):
            parse_part(bad)
    assert main(["combine", "--part", f"synthetic:{tmp_path / 'none' / 'samples.npz'}@model=m",
                 "--out", str(tmp_path / "x")]) == 2
    assert "no such samples file" in capsys.readouterr().err
