"""``ambient autoencoder train`` end to end on a tiny dataset folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ambient_omni.cli.main import main
from ambient_omni.data.dataset_folder import write_dataset
from ambient_omni.data.mixed import MixedData
from ambient_omni.training.checkpoint import read_model_config


def _dataset(folder: Path, size: int = 8) -> Path:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 1, size, size), dtype=np.uint8)
    write_dataset(folder, MixedData(images, np.zeros(12, dtype=np.int64), ["t"] * 12, np.arange(12), ["clean"] * 12, 0))
    return folder


def test_train_writes_the_model_and_a_reconstruction_picture(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _dataset(tmp_path / "d")
    args = ["autoencoder", "train", "--data", str(data), "--out", str(tmp_path / "ae"), "--steps", "3", "--batch", "4",
            "--channels", "4", "--channel-mult", "1,2", "--latent-channels", "2", "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    config = read_model_config(tmp_path / "ae" / "model")
    assert config["network"]["latent_channels"] == 2 and config["factor"] == 2
    assert (tmp_path / "ae" / "reconstructions.png").is_file()
    assert "mean squared reconstruction error" in capsys.readouterr().out


@pytest.mark.parametrize("extra, needle", [
    (["--preset", "fmnist-small"], "not an autoencoder preset"),
    (["--channel-mult", "1,2,2,2"], "not a multiple of its factor 8"),
    (["--beta", "-1"], "--beta"),
])
def test_bad_options_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture, extra: list, needle: str) -> None:
    data = _dataset(tmp_path / "d", size=4)
    args = ["autoencoder", "train", "--data", str(data), "--out", str(tmp_path / "ae"), "--steps", "1", "--batch", "2",
            "--channels", "4", "--no-progress", "--device", "cpu", *extra]
    if "--channel-mult" not in extra:
        args += ["--channel-mult", "1,2"]
    assert main(args) == 2
    assert needle in capsys.readouterr().err and not (tmp_path / "ae" / "model").exists()
