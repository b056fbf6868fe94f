"""Built-in quality scorers (ambient_omni.annotate.quality_scores) on images with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ambient_omni.annotate.quality_scores import (
    best_patch_scores,
    blockiness,
    classifier_scores,
    score_images,
    sharpness,
)
from ambient_omni.data.corruptions import parse_corruption
from ambient_omni.errors import AmbientError


def _smooth(n: int = 16, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Random smooth-ish grey images in [-1, 1]: upsampled 8 x 8 noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((n, 1, 8, 8), generator=g) * 2 - 1
    return nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def test_sharpness_known_values() -> None:
    assert sharpness(torch.full((2, 3, 6, 6), 0.3)).tolist() == [0.0, 0.0]
    ramp = torch.arange(6.0).repeat(6, 1)[None, None]  # linear in x: the Laplacian is 0
    assert sharpness(ramp)[0] == pytest.approx(0.0)
    checker = (torch.arange(6)[:, None] + torch.arange(6)[None, :]) % 2 * 2.0 - 1  # +-1: Laplacian +-8
    assert sharpness(checker[None, None])[0] == pytest.approx(64.0)


def test_blur_lowers_sharpness_of_every_image() -> None:
    x = torch.rand((16, 1, 28, 28), generator=torch.Generator().manual_seed(1)) * 2 - 1
    blurred = parse_corruption("blur:sigma=1.0")(x, torch.arange(16), 0)
    assert np.all(sharpness(blurred) < sharpness(x))


def test_blockiness_sees_a_block_grid_and_jpeg() -> None:
    ramp = torch.linspace(-1, 1, 24).repeat(24, 1)[None, None]
    assert blockiness(ramp)[0] == pytest.approx(-1.0, abs=1e-4)  # equal steps everywhere: ratio 1
    g = torch.Generator().manual_seed(0)
    blocks = (torch.rand((1, 1, 3, 3), generator=g) * 2 - 1).repeat_interleave(8, 2).repeat_interleave(8, 3)
    assert blockiness(blocks + 0.01 * ramp)[0] < -10  # flat inside each block, steps at the boundaries
    x = _smooth()
    jpeg = parse_corruption("jpeg:quality=10")(x, torch.arange(len(x)), 0)
    assert np.mean(blockiness(jpeg) < blockiness(x)) >= 0.9


def test_scorers_reject_what_they_cannot_score() -> None:
    with pytest.raises(AmbientError, match=r"\(N, C, H, W\)"):
        sharpness(torch.zeros(4, 4))
    with pytest.raises(AmbientError, match="at least 3 x 3"):
        sharpness(torch.zeros(1, 1, 2, 5))
    with pytest.raises(AmbientError, match="larger than its 8-pixel blocks"):
        blockiness(torch.zeros(1, 1, 8, 8))
    with pytest.raises(AmbientError, match="unknown quality scorer 'clip'"):
        score_images(torch.zeros(1, 1, 8, 8), "clip")


def test_best_patch_scores_keep_each_images_best_tile() -> None:
    x = torch.zeros((2, 1, 8, 8))
    x[0, 0, :4, 4:] = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2 * 2.0 - 1  # one sharp tile
    out = best_patch_scores(x, [4, 8], "sharpness")
    assert sorted(out) == [4, 8]
    assert out[4][0] == pytest.approx(64.0) and out[4][1] == 0.0
    assert out[8][0] == pytest.approx(sharpness(x[:1])[0])


class _MeanLogit(nn.Module):
    """A stand-in classifier: logit = 4 * mean pixel, whatever sigma (P(clean) rises with the mean pixel)."""

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return 4 * x.flatten(1).mean(1)


def test_classifier_scores_follow_the_image_id_not_its_position() -> None:
    x = torch.linspace(-1, 1, 5)[:, None, None, None].expand(5, 1, 4, 4).contiguous()
    ids = np.array([10, 11, 12, 13, 14])
    s = classifier_scores(_MeanLogit(), x, ids, sigma=0.5, draws=3, seed=7)
    assert np.all(np.diff(s) > 0) and np.all((s > 0) & (s < 1))
    perm = np.array([3, 0, 4, 1, 2])
    np.testing.assert_allclose(classifier_scores(_MeanLogit(), x[perm], ids[perm], 0.5, 3, 7), s[perm], rtol=1e-6)
    assert not np.allclose(classifier_scores(_MeanLogit(), x, ids, 0.5, 3, 8), s)  # the seed moves the noise
    with pytest.raises(AmbientError, match="sigma > 0"):
        classifier_scores(_MeanLogit(), x, ids, sigma=0.0)
    with pytest.raises(AmbientError, match="4 ids for 5 images"):
        classifier_scores(_MeanLogit(), x, ids[:4], sigma=0.5)
