"""Test helper for the metrics tests: Fashion-MNIST through ``ambient_omni.data.readers``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_omni.data.readers import read_fashion_mnist

ROOT = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


def fashion(split: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """First ``n`` images ``(n, 1, 28, 28)`` in [-1, 1] and labels of a split; skips if absent."""
    prefix = "train" if split == "train" else "t10k"
    if not (ROOT / f"{prefix}-images-idx3-ubyte.gz").exists() and not (ROOT / f"{prefix}-images-idx3-ubyte").exists():
        pytest.skip(f"Fashion-MNIST not found in {ROOT}")
    data = read_fashion_mnist(split, root=ROOT)
    return data.images[:n], data.labels[:n]


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel 2*ceil(3 sigma)+1, reflect)."""
    import kornia

    size = 2 * int(np.ceil(3 * sigma)) + 1
    return kornia.filters.gaussian_blur2d(images, (size, size), (sigma, sigma), border_type="reflect")


PR_FIXTURE = Path(__file__).parent / "data" / "fmnist_pr_features.npz"


def degenerate_images(n: int = 500, seed: int = 0) -> dict[str, torch.Tensor]:
    """Sets that must not look like Fashion-MNIST: ``black`` (one all-black image; a set of copies has
    the same precision), ``noise`` (N(0, 0.5^2) per pixel, what an untrained EDM denoiser samples:
    D(x) ~ c_skip x takes x from sigma_max to ~ sigma_data eps) and ``dark-noise`` (-1 + N(0, 0.3^2),
    low-amplitude noise on black), clipped to [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    return {"black": -torch.ones(1, 1, 28, 28),
            "noise": (0.5 * torch.randn(n, 1, 28, 28, generator=gen)).clamp(-1, 1),
            "dark-noise": (-1 + 0.3 * torch.randn(n, 1, 28, 28, generator=gen)).clamp(-1, 1)}


def fmnist_pr_features(extractor: object, n: int = 500) -> dict[str, np.ndarray]:
    """``fmnist-classifier`` features of: ``ref``, the reference rows ``evaluate`` draws for 500 samples
    (permutation seed 0 of the test split, first n), ``held`` (its last n: held-out real images) and the
    :func:`degenerate_images`. ``write_pr_fixture`` stores them as the fast tests' fixture."""
    test, _ = fashion("test")
    perm = torch.as_tensor(np.random.default_rng(0).permutation(test.shape[0]))
    sets = {"ref": test[perm[:n]], "held": test[perm[-n:]], **degenerate_images(n)}
    return {name: extractor(images, batch_size=500, progress=False) for name, images in sets.items()}  # type: ignore[operator]


def write_pr_fixture(path: Path = PR_FIXTURE) -> None:
    """(Re)make the fixture from the cached classifier: ``python -c "import sys; sys.path.insert(0, 'tests');
    import _metrics_data as m; m.write_pr_fixture()"`` (float16, compressed)."""
    from ambient_omni.metrics.features import get_extractor

    feats = fmnist_pr_features(get_extractor("fmnist-classifier", device="cpu", progress=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: v.astype(np.float16) for k, v in feats.items()})
