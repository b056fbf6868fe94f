"""Memorization: exact (and slightly perturbed) training copies are flagged, test images are not."""

import numpy as np
import torch

from _metrics_data import fashion
from ambient_omni.metrics.memorization import memorization, two_nearest


def test_two_nearest_on_points():
    train = torch.tensor([[0.0], [1.0], [5.0]])
    d1, d2, idx = two_nearest(torch.tensor([[0.9], [4.0]]), train)
    assert np.allclose(d1, [0.1, 1.0]) and np.allclose(d2, [0.9, 3.0]) and list(idx) == [1, 2]


def test_copies_flagged_test_images_not():
    train, _ = fashion("train", 3000)
    test, _ = fashion("test", 200)
    gen = torch.Generator().manual_seed(0)
    picks = torch.randperm(3000, generator=gen)[:50]
    copies = train[picks]
    near_copies = (train[picks] + 0.02 * torch.randn(copies.shape, generator=gen)).clamp(-1, 1)
    result = memorization(torch.cat([copies, near_copies]), train)
    assert result.copies.all()
    assert np.array_equal(result.nearest, torch.cat([picks, picks]).numpy())
    fresh = memorization(test, train)
    assert fresh.share <= 0.02
    assert np.median(fresh.ratio) > 0.6
