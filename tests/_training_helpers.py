"""Shared fixtures of the training tests: a toy task and its trainer settings, and a tiny dataset folder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from ambient_omni.seeding import generator
from ambient_omni.training.distributed import DistInfo
from ambient_omni.training.loop import Trainer, TrainConfig

CPU1 = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


class ToyNet(nn.Sequential):
    """A tiny MLP plus a parameter the loss never uses (DDP must cope with it)."""

    def __init__(self, dropout: float) -> None:
        super().__init__(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 4))
        self.unused = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)


class ToyTask:
    """Regress a fixed linear map of noisy inputs with a tiny MLP.

    Batch ``k`` is a pure function of ``(seed, k)``; rank ``r`` of ``W`` gets rows ``r*B/W ...``.
    ``use_generator`` draws the input noise from the trainer's per-step generator (rank-dependent)
    instead of the batch; ``dropout`` uses the global RNG (so resume must restore it);
    ``nan_at`` poisons that step's loss; ``hang_at`` blocks forever before yielding that batch.
    """

    def __init__(self, batch_size: int = 8, seed: int = 0, use_generator: bool = True, dropout: float = 0.0,
                 nan_at: int | None = None, hang_at: int | None = None) -> None:
        self.batch_size, self.seed = batch_size, seed
        self.use_generator, self.dropout = use_generator, dropout
        self.nan_at, self.hang_at = nan_at, hang_at
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = ToyNet(dropout)

    def batches(self, start_step: int, rank: int, world_size: int) -> Iterator[dict[str, Any]]:
        share = self.batch_size // world_size
        step = start_step
        while True:
            if step == self.hang_at:
                time.sleep(3600)
            g = generator(self.seed, 7, step)
            x = torch.randn(self.batch_size, 4, generator=g)
            noise = torch.randn(self.batch_size, 4, generator=g)
            rows = slice(rank * share, (rank + 1) * share)
            yield {"x": x[rows], "noise": noise[rows], "step": torch.full((share,), step)}
            step += 1

    def loss(self, model: nn.Module, batch: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
        x = batch["x"]
        noise = torch.randn(x.shape, generator=generator) if self.use_generator else batch["noise"]
        target = x.flip(1) * 2.0
        per_sample = (model(x + 0.3 * noise) - target).square().mean(1)
        if self.nan_at is not None and int(batch["step"][0]) == self.nan_at:
            per_sample = per_sample * float("nan")
        return per_sample

    def config(self) -> dict[str, Any]:
        return {"kind": "toy", "network": {"dropout": self.dropout}, "seed": self.seed}


def toy_config(**kw: Any) -> TrainConfig:
    base = dict(steps=8, batch_size=8, lr=1e-2, lr_rampup_images=32, checkpoint_every=3, keep_checkpoints=5,
                log_every=2, ema_halflife_images=16.0, progress=False, bf16=False, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def train(run: Path, task: ToyTask | None = None, **kw: Any) -> dict[str, torch.Tensor]:
    Trainer(task or ToyTask(), toy_config(**kw), run, dist_info=CPU1).run()
    return weights(run)


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0.0, msg=k)


def write_tiny_dataset(folder: Path, n: int = 48, shape: tuple[int, int, int] = (1, 8, 8), classes: int = 3,
                       seed: int = 0, corrupted: int = 0) -> Path:
    """Smooth random blobs as a dataset folder; the last ``corrupted`` images are marked corrupted."""
    from ambient_omni.data.imageset import ImageSet
    from ambient_omni.data.dataset_folder import write_dataset
    from ambient_omni.data.mixed import MixedData, from_image_set

    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, shape[0], 2, 2))
    up = np.kron(base, np.ones((shape[1] // 2, shape[2] // 2)))
    codes = np.clip(127.5 + 60 * up, 0, 255).astype(np.uint8)
    images = ImageSet.from_uint8(codes, labels=rng.integers(0, classes, size=n))
    data = from_image_set(images, "clean", "synthetic", seed=seed)
    if corrupted:
        data = MixedData(data.images, data.labels, data.sources, data.source_index,
                         ["clean"] * (n - corrupted) + ["corrupted:blur"] * corrupted, data.seed, data.recipe,
                         data.class_names)
    write_dataset(folder, data)
    return folder
