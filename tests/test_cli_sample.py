"""``ambient sample``: one-line errors for folders that hold no denoiser."""

from pathlib import Path

import pytest

from ambient_omni.cli.main import main
from ambient_omni.networks.classifier import NoiseClassifier
from ambient_omni.networks.registry import network_config
from ambient_omni.training.checkpoint import save_model


def test_classifier_run_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A noise-classifier run (``model/`` with kind ``classifier``, no ``image_shape``) exits 2 with one line."""
    net = NoiseClassifier(1, model_channels=8, channel_mult=(1, 2), num_blocks=1)
    save_model(tmp_path / "run" / "model", net, {"kind": "classifier", "network": network_config(net)})
    assert main(["sample", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "--n", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "classifier model, not a denoiser" in err and "ambient train" in err
    assert not (tmp_path / "out").exists()


def test_empty_folder_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["sample", "--model", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "neither a model folder nor a run folder" in capsys.readouterr().err
