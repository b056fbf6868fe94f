"""Test helper for the metrics tests: Fashion-MNIST IDX files read directly (no data/ module)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _idx(path: Path) -> np.ndarray:
    raw = gzip.open(path).read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion(split: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """First ``n`` images ``(n, 1, 28, 28)`` in [-1, 1] and labels of a split; skips if absent."""
    image_file, label_file = FILES[split]
    if not (ROOT / image_file).exists():
        pytest.skip(f"Fashion-MNIST not found in {ROOT}")
    images = _idx(ROOT / image_file)[:n, None].astype(np.float32) / 127.5 - 1
    labels = _idx(ROOT / label_file)[:n].astype(np.int64)
    return torch.from_numpy(images), torch.from_numpy(labels)


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel 2*ceil(3 sigma)+1, reflect)."""
    import kornia

    size = 2 * int(np.ceil(3 * sigma)) + 1
    return kornia.filters.gaussian_blur2d(images, (size, size), (sigma, sigma), border_type="reflect")
