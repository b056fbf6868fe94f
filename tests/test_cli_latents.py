"""Latent diffusion from the command line: ``ambient autoencoder train`` -> ``ambient latents encode`` ->
``ambient train`` on the latent folder (resuming exactly) -> ``ambient sample`` (decoded images)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from _training_helpers import write_tiny_dataset
from ambient_omni.cli.main import main
from ambient_omni.data.annotations import read_annotations
from ambient_omni.data.dataset_folder import load_dataset

AE = ["--channels", "4", "--channel-mult", "1,2", "--latent-channels", "2", "--batch", "4", "--no-progress",
      "--device", "cpu"]
TRAIN = ["--channels", "8", "--blocks", "1", "--batch", "8", "--no-progress", "--device", "cpu", "--log-every", "1"]


def test_encode_train_resume_and_sample_decoded_images(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_tiny_dataset(tmp_path / "ds")
    assert main(["autoencoder", "train", "--data", str(data), "--out", str(tmp_path / "ae"), "--steps", "2", *AE]) == 0
    assert main(["latents", "encode", "--data", str(data), "--autoencoder", str(tmp_path / "ae"),
                 "--out", str(tmp_path / "lat")]) == 0
    assert "latents 2x4x4" in capsys.readouterr().out
    latent = load_dataset(tmp_path / "lat")
    assert latent.latent is not None and latent.provenance == load_dataset(data).provenance
    # Training on the latent folder resumes exactly: 2 steps then 2 more = 4 steps at once.
    base = ["train", "--data", str(tmp_path / "lat"), *TRAIN, "--checkpoint-every", "2"]
    assert main([*base, "--out", str(tmp_path / "once"), "--steps", "4"]) == 0
    assert main([*base, "--out", str(tmp_path / "twice"), "--steps", "2"]) == 0
    assert main([*base, "--out", str(tmp_path / "twice"), "--steps", "4"]) == 0
    once, twice = (load_file(tmp_path / name / "model" / "model.safetensors") for name in ("once", "twice"))
    assert all(np.array_equal(once[k].numpy(), twice[k].numpy()) for k in once)
    config = json.loads((tmp_path / "once" / "model" / "config.json").read_text())
    assert config["image_shape"] == [2, 4, 4] and config["latent"]["image_shape"] == [1, 8, 8]
    out = tmp_path / "samples"
    assert main(["sample", "--model", str(tmp_path / "once"), "--seeds", "0-2", "--out", str(out), "--steps", "2"]) == 0
    with np.load(out / "samples.npz") as npz:
        assert npz["images"].shape == (3, 1, 8, 8) and npz["images"].dtype == np.uint8  # decoded to pixels
        assert npz["latents"].shape == (3, 2, 4, 4)
    assert json.loads((out / "sampling.json").read_text())["latent"] is True
    # The autoencoder retrained in place: the recorded one is gone, and sampling says so.
    assert main(["autoencoder", "train", "--data", str(data), "--out", str(tmp_path / "ae"), "--steps", "3", *AE]) == 0
    assert main(["sample", "--model", str(tmp_path / "once"), "--seeds", "0", "--out", str(tmp_path / "s2"),
                 "--steps", "2"]) == 2
    assert "not the autoencoder these latents were made with" in capsys.readouterr().err


def test_quality_scores_of_the_pixel_folder_annotate_the_latent_folder(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    data = write_tiny_dataset(tmp_path / "ds")
    assert main(["autoencoder", "train", "--data", str(data), "--out", str(tmp_path / "ae"), "--steps", "1", *AE]) == 0
    assert main(["latents", "encode", "--data", str(data), "--autoencoder", str(tmp_path / "ae"),
                 "--out", str(tmp_path / "lat")]) == 0
    quality = ["annotate", "quality", "--clean-fraction", "0.25", "--sigma-min", "0.2"]
    assert main([*quality, "--data", str(tmp_path / "lat"), "--scorer", "sharpness", "--out", str(tmp_path / "q")]) == 2
    assert "score its pixel dataset instead" in capsys.readouterr().err
    scores = tmp_path / "scores.jsonl"
    assert main([*quality, "--data", str(data), "--scorer", "sharpness", "--out", str(tmp_path / "px.jsonl"),
                 "--write-scores", str(scores)]) == 0
    assert main([*quality, "--data", str(tmp_path / "lat"), "--scores", str(scores), "--out",
                 str(tmp_path / "lat.jsonl")]) == 0
    latent, pixels = read_annotations(tmp_path / "lat.jsonl"), read_annotations(tmp_path / "px.jsonl")
    assert latent.sigma_min.tolist() == pixels.sigma_min.tolist() and np.count_nonzero(latent.sigma_min == 0) == round(0.25 * len(latent))
