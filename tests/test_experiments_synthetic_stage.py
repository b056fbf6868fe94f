"""Synthetic-data cells (ambient_omni.experiments.synthetic_stage): a tiny teacher's samples join a few real
images, a conditional student trains on both, and its class coverage is measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ambient_omni.data.dataset_folder import load_dataset
from ambient_omni.errors import AmbientError
from ambient_omni.experiments import pipeline, synthetic_stage

TINY_NET = {"model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1}


def _cell(tmp_path: Path) -> dict:
    """60 12x12 images of two classes (dark and bright ramps); a teacher on 40, 8 real for the student."""
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 2
    ramp = np.linspace(0, 1, 12)[None, :, None] * np.ones((60, 12, 12))
    images = 40 + 150 * labels[:, None, None] + 60 * ramp + rng.normal(0, 5, (60, 12, 12))
    np.savez(tmp_path / "src.npz", images=images.clip(0, 255).astype(np.uint8)[:, None], labels=labels)
    source = f"array:{tmp_path / 'src.npz'}"
    return {"source": source, "clean_count": 8, "data_seed": 0, "method": "fixed", "sigma_min": 2.0, "seed": 0,
            "synthetic": {"teacher_n": 40, "teacher_images": 64, "batch": 16, "count": 24, "steps": 2,
                          "preset": "fmnist-small"},
            "train": {"images": 64, "batch": 16, "lr_rampup": 16, "ema_halflife": 32, "network": TINY_NET,
                      "conditional": True},
            "eval": {"n_samples": 16, "steps": 2, "batch": 16, "features": ["pixels"], "reference": source}}


def test_a_conditional_student_on_real_plus_synthetic_images(tmp_path: Path) -> None:
    cfg, root = _cell(tmp_path), tmp_path / "root"
    result = pipeline.run_cell(cfg, root, root / "cells" / "c", log=lambda line: None)
    data = load_dataset(result["paths"]["dataset"])
    kinds = {p.split(":")[0] for p in data.provenance}
    assert kinds == {"clean", "synthetic"} and data.provenance.count("clean") == 8 and len(data) == 32
    synthetic = np.array([p.startswith("synthetic:") for p in data.provenance])
    assert data.labels[synthetic].tolist() == [i % 2 for i in range(24)]  # the classes the teacher was asked for
    coverage = result["metrics"]["features"]["pixels"]["class_coverage"]
    assert set(coverage) == {"0", "1"} and all(0 <= v <= 1 for v in coverage.values())
    assert pipeline.make_dataset(cfg, root) == Path(result["paths"]["dataset"])  # cached
    teachers = list((root / "teachers").iterdir())
    assert len(teachers) == 1
    taught = set(load_dataset(teachers[0] / "data").source_index.tolist())
    real = set(data.source_index[[p == "clean" for p in data.provenance]].tolist())
    assert len(taught) == 40 and len(real) == 8 and not taught & real  # the student's real images are new


def test_teacher_and_real_images_are_disjoint_and_options_checked(tmp_path: Path) -> None:
    cfg = _cell(tmp_path)
    with pytest.raises(AmbientError, match=r"synthetic: unknown option\(s\) \['kimg'\]"):
        synthetic_stage.synthetic_dataset({**cfg, "synthetic": {"kimg": 1}}, tmp_path / "r")
    with pytest.raises(AmbientError, match="need that many images"):
        synthetic_stage.synthetic_dataset({**cfg, "clean_count": 30}, tmp_path / "r")
