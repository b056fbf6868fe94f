"""Patch-level Frechet distance: FD between the distributions of random p x p pixel patches.

From each image ``n_per_image`` patches of size ``p x p`` are cut at uniformly random
positions (drawn from ``numpy.random.default_rng(seed)``); each patch is flattened to a
``C * p * p`` raw-pixel vector in ``[-1, 1]``, and the Frechet distance is computed between the
Gaussians fitted to the two patch sets. Raw pixels (not network features) make the number
independent of any feature network and meaningful at every patch size; this is the quantity
the paper's locality argument is about (small patches of different distributions look alike).
"""

from __future__ import annotations

import numpy as np
import torch

from ambient_omni.metrics.frechet import frechet_distance_features


def random_patches(images: torch.Tensor, patch: int, n_per_image: int, seed: int = 0) -> np.ndarray:
    """``(N * n_per_image, C * patch * patch)`` flattened random patches of ``(N, C, H, W)`` images."""
    images = torch.as_tensor(images, dtype=torch.float32)
    n, c, h, w = images.shape
    if patch > min(h, w) or patch < 1:
        raise ValueError(f"patch size {patch} does not fit images of size {h}x{w}")
    rng = np.random.default_rng(seed)
    tops = torch.as_tensor(rng.integers(0, h - patch + 1, size=(n, n_per_image)))
    lefts = torch.as_tensor(rng.integers(0, w - patch + 1, size=(n, n_per_image)))
    offs = torch.arange(patch)
    rows = (tops[..., None] + offs)[..., :, None].expand(n, n_per_image, patch, patch)
    cols = (lefts[..., None] + offs)[..., None, :].expand(n, n_per_image, patch, patch)
    batch = torch.arange(n)[:, None, None, None].expand_as(rows)
    cut = images.permute(0, 2, 3, 1)[batch, rows, cols]  # (N, n_per_image, p, p, C)
    return cut.permute(0, 1, 4, 2, 3).reshape(n * n_per_image, -1).double().numpy()


def patch_frechet_distance(images1: torch.Tensor, images2: torch.Tensor, patch: int = 8,
                           n_per_image: int = 8, seed: int = 0) -> float:
    """FD between random ``patch x patch`` pixel patches of two image sets."""
    return frechet_distance_features(random_patches(images1, patch, n_per_image, seed),
                                     random_patches(images2, patch, n_per_image, seed + 1))
