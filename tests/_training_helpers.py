"""Shared fixtures of the training tests: a tiny dataset folder and, until the real samplers
module exists, a stand-in ``sample_images`` with the agreed interface."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch


def write_tiny_dataset(folder: Path, n: int = 48, shape: tuple[int, int, int] = (1, 8, 8), classes: int = 3,
                       seed: int = 0, corrupted: int = 0) -> Path:
    """Smooth random blobs as a dataset folder; the last ``corrupted`` images are marked corrupted."""
    from ambient_omni.data.imageset import ImageSet
    from ambient_omni.data.mixed import MixedData, from_image_set, write_dataset

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


def _standin_sample_images(net, n, seeds, shape, batch_size, steps=18, labels=None, **_options):  # noqa: ANN001
    """Euler ODE from sigma 5 to 0 with per-seed initial noise (the interface of diffusion.samplers)."""
    sigmas = torch.linspace(5.0, 0.0, steps + 1)
    out = []
    for start in range(0, n, batch_size):
        chunk = list(seeds)[start:start + batch_size]
        x = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in chunk]) * sigmas[0]
        lab = None if labels is None else labels[start:start + batch_size]
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            d = (x - net(x, s.expand(len(chunk)), lab)) / s
            x = x + (s_next - s) * d
        out.append(x)
    return torch.cat(out)


@pytest.fixture
def samplers_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``ambient_omni.diffusion.samplers.sample_images`` importable (real module if present)."""
    if importlib.util.find_spec("ambient_omni.diffusion.samplers") is None:
        module = types.ModuleType("ambient_omni.diffusion.samplers")
        module.sample_images = _standin_sample_images  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "ambient_omni.diffusion.samplers", module)
