"""Latent benchmark cells (ambient_omni.experiments.latent_stage): a tiny cell with mixed corruptions, trained in
latent space with the quality annotation, end to end through the pipeline; the stages are cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ambient_omni.data.annotations import read_annotations
from ambient_omni.data.dataset_folder import load_dataset
from ambient_omni.errors import AmbientError
from ambient_omni.experiments import latent_stage, pipeline

TINY_NET = {"model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1}


def _cell(tmp_path: Path) -> dict:
    """40 smooth 12x12 images, 8 kept clean, the rest blurred or JPEG-compressed in turn; tiny networks."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 12)
    smooth = 128 + 100 * (rng.uniform(-1, 1, (40, 1, 1)) * ramp[:, None] + rng.uniform(-1, 1, (40, 1, 1)) * ramp)
    edges = np.where(rng.uniform(size=(40, 12, 12)) < 0.2, 60.0, 0.0)  # detail that blur removes
    np.save(tmp_path / "images.npy", (smooth + edges).clip(0, 255).astype(np.uint8)[:, None])
    source = f"array:{tmp_path / 'images.npy'}"
    return {"source": source, "clean_count": 8, "corruption": ["blur:sigma=1.0", "jpeg:quality=10"], "data_seed": 0,
            "method": "quality", "seed": 0,
            "quality": {"scorer": "sharpness", "clean_fraction": 0.2, "sigma_min": 0.5},
            "latent": {"network": {"model_channels": 4, "channel_mult": [1, 2], "latent_channels": 2}, "images": 64,
                       "batch": 16, "lr_rampup": 0, "ema_halflife": 32},
            "train": {"images": 64, "batch": 16, "lr_rampup": 16, "ema_halflife": 32, "network": TINY_NET},
            "eval": {"n_samples": 8, "steps": 2, "batch": 8, "features": ["pixels"], "reference": source}}


def test_a_latent_quality_cell_runs_end_to_end(tmp_path: Path) -> None:
    cfg, root = _cell(tmp_path), tmp_path / "root"
    said: list[str] = []
    result = pipeline.run_cell(cfg, root, root / "cells" / "c", log=said.append)
    latent = load_dataset(result["paths"]["dataset"])
    assert latent.latent is not None and latent.images.shape == (40, 2, 6, 6)
    assert latent.info["counts"] == {"clean": 8, "corrupted:blur:sigma=1": 16, "corrupted:jpeg:quality=10": 16}
    table = read_annotations(result["paths"]["annotations"], dataset_sha256=latent.sha256)
    assert np.count_nonzero(table.sigma_min == 0) == 8 and set(table.sigma_min[table.sigma_min > 0]) == {0.5}
    with np.load(root / "cells" / "c" / "samples" / "samples.npz") as npz:
        assert npz["images"].shape == (8, 1, 12, 12)  # decoded to pixels before evaluation
    truly = np.array([p == "clean" for p in latent.provenance])
    assert result["metrics"]["annotation"] == {"trusted_clean_precision": float(truly[table.sigma_min == 0].mean())}
    assert "memorization" in result["metrics"] and any("latent dataset" in line for line in said)
    again = latent_stage.latent_dataset(cfg, pipeline.make_dataset(cfg, root), root)
    assert str(again) == result["paths"]["dataset"]  # cached: the same folder, not retrained
    assert len(list((root / "autoencoders").iterdir())) == 1


def test_unknown_options_are_errors(tmp_path: Path) -> None:
    cfg, root = _cell(tmp_path), tmp_path / "root"
    pixels = pipeline.make_dataset(cfg, root)
    with pytest.raises(AmbientError, match=r"latent: unknown option\(s\) \['kimg'\]"):
        latent_stage.latent_dataset({**cfg, "latent": {"kimg": 3}}, pixels, root)
    with pytest.raises(AmbientError, match=r"quality: unknown option\(s\) \['tau'\]"):
        latent_stage.quality_annotations({"quality": {"tau": 0.4}}, pixels, pixels, root)
