"""Text-conditional training end to end: ``ambient captions make`` -> ``ambient train --captions`` ->
``ambient sample --prompt`` (guidance weight 0 is the unconditional model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _training_helpers import write_tiny_dataset
from ambient_omni.cli.main import main
from ambient_omni.data.captions import write_captions

TINY = ["--channels", "8", "--blocks", "1", "--batch", "8", "--no-progress", "--device", "cpu"]


def test_captions_make_needs_class_names(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_tiny_dataset(tmp_path / "ds")
    assert main(["captions", "make", "--data", str(data), "--out", str(tmp_path / "c.jsonl")]) == 2
    assert "no class names" in capsys.readouterr().err


def test_train_on_captions_then_sample_by_prompt(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_tiny_dataset(tmp_path / "ds")
    write_captions(tmp_path / "c.jsonl", [f"a blob number {i % 3}" for i in range(48)])
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--steps", "3", "--captions",
                 str(tmp_path / "c.jsonl"), *TINY]) == 0
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["network"]["text_dim"] == 384 and config["text"]["captions"] == "c.jsonl"

    def sample(name: str, *extra: str) -> np.ndarray:
        assert main(["sample", "--model", str(run), "--seeds", "0-3", "--out", str(tmp_path / name), "--steps", "3",
                     *extra]) == 0
        with np.load(tmp_path / name / "samples.npz") as npz:
            return npz["images"]

    unconditional = sample("u")
    prompted = sample("p", "--prompt", "a blob number 1")
    assert not np.array_equal(prompted, unconditional)
    assert np.array_equal(sample("g0", "--prompt", "a blob number 1", "--guidance", "0"), unconditional)
    assert not np.array_equal(sample("g2", "--prompt", "a blob number 1", "--guidance", "2"), prompted)
    assert json.loads((tmp_path / "p" / "sampling.json").read_text())["prompt"] == "a blob number 1"
    assert main(["sample", "--model", str(run), "--out", str(tmp_path / "x"), "--class", "1"]) == 2
    assert "takes --prompt instead" in capsys.readouterr().err


def test_captions_are_refused_with_cond_and_must_cover_every_image(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    data = write_tiny_dataset(tmp_path / "ds")
    write_captions(tmp_path / "c.jsonl", ["a blob"] * 47)
    args = ["train", "--data", str(data), "--out", str(tmp_path / "r"), "--steps", "1", *TINY]
    assert main([*args, "--captions", str(tmp_path / "c.jsonl")]) == 2
    assert "no caption for dataset ids 47" in capsys.readouterr().err
    write_captions(tmp_path / "c.jsonl", ["a blob"] * 48)
    assert main([*args, "--captions", str(tmp_path / "c.jsonl"), "--cond"]) == 2
    assert "not both" in capsys.readouterr().err
    plain = tmp_path / "plain"
    assert main(["train", "--data", str(data), "--out", str(plain), "--steps", "1", *TINY]) == 0
    assert main(["sample", "--model", str(plain), "--out", str(tmp_path / "s"), "--prompt", "a blob"]) == 2
    assert "not a text-conditional model" in capsys.readouterr().err
