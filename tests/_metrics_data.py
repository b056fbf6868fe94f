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
