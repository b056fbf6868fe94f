"""Patch FD: patches are the right pixels; same distribution ~0; blur moves the patch distribution."""

import numpy as np
import torch

from _metrics_data import blur, fashion
from ambient_omni.metrics.patches import patch_frechet_distance, random_patches


def test_patches_are_image_windows():
    images = torch.arange(2 * 3 * 6 * 7, dtype=torch.float32).reshape(2, 3, 6, 7)
    patches = random_patches(images, 3, 5, seed=4)
    assert patches.shape == (10, 27)
    windows = {tuple(images[n, :, i:i + 3, j:j + 3].flatten().tolist())
               for n in range(2) for i in range(4) for j in range(5)}
    assert all(tuple(p) in windows for p in patches.tolist())
    assert np.array_equal(patches, random_patches(images, 3, 5, seed=4))


def test_patch_fd_orders_blur():
    test, _ = fashion("test", 400)
    a, b = test[:200], test[200:]
    same = patch_frechet_distance(a, b, patch=6, n_per_image=8)
    blurred = [patch_frechet_distance(a, blur(b, s), patch=6, n_per_image=8) for s in (0.5, 1.0, 2.0)]
    assert same < blurred[0] < blurred[1] < blurred[2]
