"""The denoiser task: batches carry their sigmas, split over ranks exactly, resume mid-stream; loss and config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _training_helpers import write_tiny_dataset
from ambient_omni.errors import AmbientError
from ambient_omni.training.checkpoint import build_model
from ambient_omni.training.tasks import DenoiserSettings, DenoiserTask

TINY = {"model_channels": 8, "num_blocks": 1}


def make_task(tmp_path: Path, **kw) -> DenoiserTask:  # noqa: ANN003
    data = tmp_path / "ds"
    if not data.exists():
        write_tiny_dataset(data, corrupted=kw.pop("corrupted", 0))
    kw.pop("corrupted", None)
    return DenoiserTask(DenoiserSettings(data=str(data), batch_size=8, network_overrides=TINY, **kw))


def first(task: DenoiserTask, start: int, rank: int = 0, world: int = 1) -> dict:
    return next(task.batches(start, rank, world))


def test_batches_carry_sigmas_and_two_ranks_split_one_global_batch(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    whole = first(task, 2)
    assert whole["image"].shape == (8, 1, 8, 8) and whole["sigma_t"].shape == (8,)
    assert torch.equal(whole["sigma_tn"], torch.zeros(8))  # no annotations: all clean
    halves = [first(task, 2, r, 2) for r in (0, 1)]
    for key in ("id", "sigma_t", "image"):
        assert torch.equal(torch.cat([h[key] for h in halves]), whole[key]), key


def test_batches_resume_mid_stream(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    stream = task.batches(0, 0, 1)
    fourth = [next(stream) for _ in range(4)][-1]
    assert torch.equal(first(task, 3)["id"], fourth["id"])


def test_annotations_route_corrupted_images_to_high_noise(tmp_path: Path) -> None:
    from ambient_omni.data.annotations import AnnotationTable, write_annotations
    from ambient_omni.data.dataset_folder import load_dataset

    write_tiny_dataset(tmp_path / "ds", corrupted=24)
    ds = load_dataset(tmp_path / "ds")
    table = AnnotationTable.fixed(ds.ids.numpy(), ds.provenance, sigma_min=1.0, dataset_sha256=ds.sha256)
    write_annotations(tmp_path / "ann.jsonl", table)
    task = make_task(tmp_path, annotations=str(tmp_path / "ann.jsonl"))
    assert task.config()["annotation_counts"]["high_noise"] == 24
    batches = [first(task, k) for k in range(30)]
    ids = torch.cat([b["id"] for b in batches])
    sigma_t, sigma_tn = torch.cat([b["sigma_t"] for b in batches]), torch.cat([b["sigma_tn"] for b in batches])
    corrupted = ids >= 24
    assert corrupted.any() and torch.all(sigma_tn[corrupted] == 1.0) and torch.all(sigma_tn[~corrupted] == 0.0)
    assert torch.all(sigma_t[corrupted] > 1.0 * np.sqrt(4 / 3) * (1 - 1e-6))


def test_loss_is_per_sample_and_config_rebuilds_the_model(tmp_path: Path) -> None:
    task = make_task(tmp_path, conditional=True)
    losses = task.loss(task.model, first(task, 0), torch.Generator().manual_seed(0))
    assert losses.shape == (8,) and torch.isfinite(losses).all()
    config = json.loads(json.dumps(task.config()))
    assert config["kind"] == "denoiser" and config["network"]["label_dim"] == 3
    assert config["image_shape"] == [1, 8, 8] and "every image clean" in config["annotations"]
    rebuilt = build_model(config)
    rebuilt.load_state_dict(task.model.state_dict())
    assert "every image treated as clean" in task.describe()


def test_same_seed_same_init_different_seed_different(tmp_path: Path) -> None:
    a, b, c = make_task(tmp_path), make_task(tmp_path), make_task(tmp_path, seed=1)
    pa, pb, pc = (next(t.model.parameters()) for t in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_conditional_needs_labels(tmp_path: Path) -> None:
    from ambient_omni.data.imageset import ImageSet
    from ambient_omni.data.dataset_folder import write_dataset
    from ambient_omni.data.mixed import from_image_set

    codes = np.zeros((4, 1, 8, 8), dtype=np.uint8)
    write_dataset(tmp_path / "ds", from_image_set(ImageSet.from_uint8(codes), "clean", "x"))
    with pytest.raises(AmbientError, match="--cond"):
        make_task(tmp_path, conditional=True)


def test_preview_writes_a_png(tmp_path: Path) -> None:
    task = make_task(tmp_path, preview_n=4, preview_steps=2)
    path = task.make_preview(task.model, 7, tmp_path / "samples")
    assert path.name == "preview-00000007.png" and path.stat().st_size > 0


def test_loss_switches_reach_the_ambient_loss_and_the_config(tmp_path: Path) -> None:
    task = make_task(tmp_path, variance_weight=True, ambient_weight=False, buffer_s=2.0)
    assert task.loss_fn.variance_weight and not task.loss_fn.ambient_weight and task.loss_fn.buffer_s == 2.0
    assert task.config()["settings"]["variance_weight"] is True
    default = make_task(tmp_path)
    assert default.loss_fn.variance_weight is False
    # at its default the later-added setting is left out, so configs of older runs still match (resume)
    assert "variance_weight" not in default.config()["settings"]
    assert default.loss_fn.target == "ambient" and "loss_target" not in default.config()["settings"]
    x0 = make_task(tmp_path, loss_target="x0")
    assert x0.loss_fn.target == "x0" and x0.config()["settings"]["loss_target"] == "x0"


def test_a_huge_label_is_an_error_not_a_giant_embedding(tmp_path: Path) -> None:
    from ambient_omni.data.imageset import ImageSet
    from ambient_omni.data.dataset_folder import write_dataset
    from ambient_omni.data.mixed import from_image_set

    codes = np.zeros((3, 1, 8, 8), dtype=np.uint8)
    labels = np.array([0, 1, 10**12])
    write_dataset(tmp_path / "ds", from_image_set(ImageSet.from_uint8(codes, labels=labels), "clean", "x"))
    with pytest.raises(AmbientError, match=r"largest label is 1000000000000 \(3 distinct"):
        make_task(tmp_path, conditional=True)
    make_task(tmp_path)  # unconditional training ignores the labels
