"""``ambient classifier train``: noise and crop kinds write a loadable model folder; bad input is a user error."""

from pathlib import Path

import numpy as np
import pytest

from ambient_omni.cli.main import main
from ambient_omni.data.dataset_folder import write_dataset
from ambient_omni.data.mixed import MixedData
from ambient_omni.training.checkpoint import load_model, read_model_config


def _dataset(folder: Path, provenance: list[str]) -> str:
    n = len(provenance)
    codes = np.random.default_rng(0).integers(0, 256, (n, 1, 8, 8), dtype=np.uint8)
    write_dataset(folder, MixedData(codes, np.zeros(n, dtype=np.int64), ["t"] * n, np.arange(n), provenance, 0))
    return str(folder)


TINY = ["--channels", "4", "--blocks", "1", "--channel-mult", "1", "--steps", "2", "--batch", "4", "--no-progress",
        "--device", "cpu"]


def test_noise_and_crop_classifiers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _dataset(tmp_path / "d", ["clean", "clean", "corrupted:noise:std=0.1", "ood:x"])
    assert main(["classifier", "train", "--data", data, "--out", str(tmp_path / "n"), *TINY]) == 0
    assert load_model(tmp_path / "n" / "model")
    assert "accuracy" in capsys.readouterr().out and (tmp_path / "n" / "check.json").is_file()
    assert main(["classifier", "train", "--kind", "crop", "--crop-size", "4", "--data", data,
                 "--out", str(tmp_path / "c"), *TINY]) == 0
    config = read_model_config(tmp_path / "c" / "model")
    assert config["classifier"]["crop_size"] == 4 and config["classifier"]["sigma_cap"] == 0.5


def test_noise_classifier_negatives_are_corrupted_and_synthetic_images(tmp_path: Path) -> None:
    import argparse

    import torch

    from ambient_omni.cli.classifier import _classes
    from ambient_omni.data.dataset_folder import load_dataset

    data = _dataset(tmp_path / "d", ["clean", "synthetic:edm", "corrupted:x", "ood:y", "clean"])
    pos, neg, _ = _classes(argparse.Namespace(kind="noise", data=data, target=None, ood=None, holdout=None, folds=None, fold=None))
    images = load_dataset(data).images
    assert torch.equal(pos, images[[0, 4]]) and torch.equal(neg, images[[1, 2]])
    only_synthetic = _dataset(tmp_path / "s", ["clean", "synthetic:edm"])
    assert len(_classes(argparse.Namespace(kind="noise", data=only_synthetic, target=None, ood=None, holdout=None, folds=None, fold=None))[1]) == 1


def test_user_errors(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "d", ["clean", "clean"])
    assert main(["classifier", "train", "--data", data, "--out", str(tmp_path / "n"), *TINY]) == 2  # no corrupted
    assert main(["classifier", "train", "--kind", "crop", "--data", data, "--out", str(tmp_path / "c"), *TINY]) == 2


def test_holdout_trains_without_a_recorded_share_of_each_kind(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "d", ["clean"] * 8 + ["corrupted:noise:std=0.1"] * 12)
    assert main(["classifier", "train", "--data", data, "--out", str(tmp_path / "n"), "--holdout", "0.25",
                 "--seed", "3", *TINY]) == 0
    config = read_model_config(tmp_path / "n" / "model")["classifier"]
    assert (config["positives"], config["negatives"]) == (6, 9)
    assert config["holdout"]["fraction"] == 0.25 and config["holdout"]["seed"] == 3
    assert main(["classifier", "train", "--kind", "crop", "--crop-size", "4", "--data", data, "--holdout", "0.2",
                 "--out", str(tmp_path / "c"), *TINY]) == 2


def test_folds_train_without_one_fold_of_a_recorded_partition(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _dataset(tmp_path / "d", ["clean"] * 8 + ["corrupted:noise:std=0.1"] * 12)
    assert main(["classifier", "train", "--data", data, "--out", str(tmp_path / "f"), "--folds", "4", "--fold", "1",
                 "--seed", "2", *TINY]) == 0
    config = read_model_config(tmp_path / "f" / "model")["classifier"]
    assert (config["positives"], config["negatives"]) == (6, 9)
    assert {k: config["holdout"][k] for k in ("folds", "fold", "seed")} == {"folds": 4, "fold": 1, "seed": 2}
    for bad, message in ((["--folds", "4"], "go together"), (["--folds", "4", "--fold", "4"], "0 <= fold < folds"),
                         (["--folds", "4", "--fold", "0", "--holdout", "0.2"], "not both"),
                         (["--folds", "9", "--fold", "0"], "at least 9 clean images")):
        assert main(["classifier", "train", "--data", data, "--out", str(tmp_path / "bad"), *bad, *TINY]) == 2
        assert message in capsys.readouterr().err
