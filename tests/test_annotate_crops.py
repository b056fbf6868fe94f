"""Crop annotation: tiling and the choice of the largest fooling crop size."""

import numpy as np
import pytest
import torch

from ambient_omni.annotate import crops
from ambient_omni.errors import AmbientError


def test_tile_drops_the_remainder_and_keeps_pixels() -> None:
    x = torch.arange(2 * 7 * 7, dtype=torch.float32).reshape(2, 1, 7, 7)
    t = crops.tile(x, 3)
    assert t.shape == (2, 2, 2, 1, 3, 3)
    torch.testing.assert_close(t[1, 1, 0], x[1, :, 3:6, 0:3])
    with pytest.raises(AmbientError):
        crops.tile(x, 8)


def test_choose_largest_fooling_size() -> None:
    means = {4: np.array([0.9, 0.1, 0.5]), 8: np.array([0.3, 0.1, 0.2]), 16: np.array([0.1, 0.0, 0.3])}
    best, sigma_max = crops.choose_sigma_max(means, {4: 0.05, 8: 0.15, 16: 0.2}, threshold=0.25)
    assert best.tolist() == [8, 0, 16] and sigma_max.tolist() == [0.15, 0.0, 0.2]
    with pytest.raises(AmbientError):
        crops.choose_sigma_max(means, {4: 0.05}, 0.25)


def test_constant_classifier_probabilities() -> None:
    class Const(torch.nn.Module):
        def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return torch.zeros(len(x))

    p = crops.crop_probabilities(Const(), torch.zeros(3, 1, 8, 8), np.arange(3), 4, 0.05)
    assert p.shape == (3, 2, 2) and np.allclose(p, 0.5)
