"""Seeds syntax, labels per seed, and loading a denoiser from model, run and checkpoint folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _training_helpers import write_tiny_dataset
from ambient_omni.errors import AmbientError
from ambient_omni.training.loop import Trainer, TrainConfig
from ambient_omni.training.sampling import generate, load_denoiser, parse_seeds, sample_labels
from ambient_omni.training.tasks import DenoiserSettings, DenoiserTask


def test_parse_seeds() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0,1,5") == [0, 1, 5]
    assert parse_seeds("2-3, 9") == [2, 3, 9]
    for bad in ("3-1", "a", "1;2", ""):
        with pytest.raises(AmbientError, match="--seeds"):
            parse_seeds(bad)


def test_sample_labels() -> None:
    assert sample_labels([0, 1, 2, 3], 3, None).tolist() == [0, 1, 2, 0]
    assert sample_labels([5, 6], 3, 2).tolist() == [2, 2]
    assert sample_labels([5], 0, None).tolist() == [-1]
    with pytest.raises(AmbientError, match="unconditional"):
        sample_labels([5], 0, 1)


def test_load_from_checkpoint_then_model_folder(tmp_path: Path) -> None:
    write_tiny_dataset(tmp_path / "ds")
    task = DenoiserTask(DenoiserSettings(data=str(tmp_path / "ds"), batch_size=4,
                                         network_overrides={"model_channels": 8, "num_blocks": 1}))
    cfg = TrainConfig(steps=2, batch_size=4, checkpoint_every=1, progress=False, device="cpu")
    trainer = Trainer(task, cfg, tmp_path / "run")
    trainer.run()
    from_run, _, where = load_denoiser(tmp_path / "run")
    assert where.endswith("model")
    (tmp_path / "run" / "model" / "model.safetensors").unlink()
    from_ckpt, config, where = load_denoiser(tmp_path / "run")
    assert "ckpt-00000002.json" in where and config["kind"] == "denoiser"
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(from_run(x, 1.0), from_ckpt(x, 1.0), atol=0.0, rtol=0.0)
    images, labels = generate(from_run, [3, 4], (1, 8, 8), steps=2, batch_size=1)
    again, _ = generate(from_run, [4], (1, 8, 8), steps=2, batch_size=2)
    assert images.shape == (2, 1, 8, 8) and labels.tolist() == [-1, -1]
    torch.testing.assert_close(images[1:], again, atol=1e-6, rtol=0.0)  # image depends only on its seed
    with pytest.raises(AmbientError, match="neither a model folder"):
        load_denoiser(tmp_path / "ds")
