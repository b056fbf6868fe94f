"""``ambient train`` then ``ambient sample`` end to end on a tiny dataset folder (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _training_helpers import write_tiny_dataset
from ambient_omni.cli.main import main
from ambient_omni.training.logging import read_log

TINY = ["--channels", "8", "--blocks", "1", "--batch", "8", "--no-progress"]


def test_train_resume_and_sample(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, run = write_tiny_dataset(tmp_path / "ds"), tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(run), "--steps", "3", "--checkpoint-every", "2",
            "--log-every", "1", "--preview-every", "3", "--preview-n", "4", "--preview-steps", "2", "--cond", "--variance-weight", *TINY]
    assert main(args) == 0
    assert (run / "model" / "model.safetensors").is_file() and (run / "samples" / "preview-00000003.png").is_file()
    assert "every image treated as clean" in capsys.readouterr().out
    assert json.loads((run / "model" / "config.json").read_text())["settings"]["variance_weight"] is True
    # same command with a longer length: continues from step 3
    assert main([*args[:5], "--steps", "4", *args[7:]]) == 0
    steps = [r["step"] for r in read_log(run / "log.jsonl") if "loss_mean" in r]
    assert steps == [1, 2, 3, 4]
    out = tmp_path / "samples"
    assert main(["sample", "--model", str(run), "--seeds", "0-3", "--out", str(out), "--steps", "2",
                 "--batch", "4", "--class", "1"]) == 0
    with np.load(out / "samples.npz") as npz:
        assert npz["images"].shape == (4, 1, 8, 8) and npz["images"].dtype == np.uint8
        assert npz["seeds"].tolist() == list(range(4)) and npz["labels"].tolist() == [1] * 4
    settings = json.loads((out / "sampling.json").read_text())
    assert settings["steps"] == 2 and settings["class"] == 1 and (out / "grid.png").stat().st_size > 0


def test_user_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "missing" in capsys.readouterr().err
    data = write_tiny_dataset(tmp_path / "ds")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--resume", "--steps", "1", *TINY]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--batch", "0"]) == 2
    assert main(["sample", "--model", str(tmp_path), "--out", str(tmp_path / "s"), "--seeds", "9-1"]) == 2
