"""Built-in, offline no-reference quality scores of images (issue 19): higher means better.

These stand in for the CLIP-IQA score of the paper's ImageNet recipe, which needs weights this project does not
ship; a user with a better scorer writes a score file instead (:mod:`ambient_omni.annotate.quality`). Images are
``(N, C, H, W)`` floats in ``[-1, 1]``; channels are averaged to grey first.

- ``sharpness``: the variance of the discrete Laplacian ``L = x[i-1,j] + x[i+1,j] + x[i,j-1] + x[i,j+1] - 4 x[i,j]``
  over the interior pixels. Blur removes high frequencies, so it lowers this variance (Pech-Pacheco et al. 2000).
- ``blockiness``: minus the JPEG blocking measure ``D_edge / D_inside``: the mean absolute difference between
  horizontally and vertically adjacent pixels that straddle an 8 x 8 block boundary, over the same mean for
  pairs inside a block (1 for an image with no grid, larger when the grid shows); ``1e-6`` guards flat images.
- ``classifier``: a noise classifier's ``P(clean | x + sigma eps, sigma)`` at one chosen ``sigma``, averaged over
  ``draws`` noise draws seeded by ``(seed, image id, draw)``.

:func:`best_patch_scores` scores every non-overlapping ``C x C`` tile of an image and keeps the best tile's
score per crop size: the per-patch scores from which the crops variant gives ``sigma_max``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ambient_omni.annotate.crops import tile
from ambient_omni.errors import AmbientError
from ambient_omni.seeding import generators

BLOCK = 8
"""JPEG's block size in pixels."""


def _grey(images: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W) -> (N, H, W)`` float64, the mean over channels; anything else is an error."""
    if images.ndim != 4:
        raise AmbientError(f"quality scores take images (N, C, H, W), got shape {tuple(images.shape)}")
    return images.double().mean(1)


def sharpness(images: torch.Tensor) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian over the interior pixels, per image (needs H, W >= 3)."""
    x = _grey(images)
    if min(x.shape[1:]) < 3:
        raise AmbientError(f"sharpness needs images of at least 3 x 3 pixels, got {tuple(x.shape[1:])}")
    lap = x[:, :-2, 1:-1] + x[:, 2:, 1:-1] + x[:, 1:-1, :-2] + x[:, 1:-1, 2:] - 4 * x[:, 1:-1, 1:-1]
    return lap.flatten(1).var(1, unbiased=False).numpy()


def blockiness(images: torch.Tensor, block: int = BLOCK) -> np.ndarray:
    """``-(D_edge / D_inside)`` per image (module doc); needs at least one block boundary (H or W > block)."""
    x = _grey(images)
    h, w = x.shape[1:]
    if max(h, w) <= block:
        raise AmbientError(f"blockiness needs images larger than its {block}-pixel blocks, got {h} x {w}")
    dh = (x[:, :, 1:] - x[:, :, :-1]).abs()  # pair (j, j+1): an edge pair when (j + 1) % block == 0
    dv = (x[:, 1:, :] - x[:, :-1, :]).abs()
    edge_h = torch.tensor([(j + 1) % block == 0 for j in range(w - 1)])
    edge_v = torch.tensor([(i + 1) % block == 0 for i in range(h - 1)])
    edge_sum = dh[:, :, edge_h].flatten(1).sum(1) + dv[:, edge_v, :].flatten(1).sum(1)
    inside_sum = dh[:, :, ~edge_h].flatten(1).sum(1) + dv[:, ~edge_v, :].flatten(1).sum(1)
    n_edge = h * int(edge_h.sum()) + w * int(edge_v.sum())
    n_inside = h * int((~edge_h).sum()) + w * int((~edge_v).sum())
    ratio = (edge_sum / n_edge) / (inside_sum / n_inside + 1e-6)
    return (-ratio).numpy()


def classifier_scores(model: nn.Module, images: torch.Tensor, ids: Sequence[int], sigma: float, draws: int = 4,
                      seed: int = 0, batch_size: int = 1024) -> np.ndarray:
    """Mean over ``draws`` of ``sigmoid(model(x + sigma eps, sigma))`` per image, noise seeded per image id."""
    if not sigma > 0 or draws < 1:
        raise AmbientError(f"classifier score: need sigma > 0 and draws >= 1, got sigma={sigma}, draws={draws}")
    if len(ids) != len(images):
        raise AmbientError(f"classifier score: {len(ids)} ids for {len(images)} images")
    gens = generators(seed, "quality-score", np.asarray(ids, dtype=np.int64))
    eps = torch.stack([torch.randn((draws, *images.shape[1:]), generator=g) for g in gens])
    x = (images.float()[:, None] + sigma * eps).flatten(0, 1)
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            out.append(torch.sigmoid(model(xb, torch.full((len(xb),), float(sigma))).float()))
    return torch.cat(out).reshape(len(images), draws).mean(1).double().numpy()


SCORERS: dict[str, Callable[[torch.Tensor], np.ndarray]] = {"sharpness": sharpness, "blockiness": blockiness}
"""The scorers that need nothing but the images (``classifier`` needs a model: :func:`classifier_scores`)."""


def score_images(images: torch.Tensor, scorer: str) -> np.ndarray:
    """``SCORERS[scorer](images)``, an error naming the choices for an unknown scorer."""
    if scorer not in SCORERS:
        raise AmbientError(f"unknown quality scorer {scorer!r}; built in: {', '.join(sorted(SCORERS))} "
                           "(and 'classifier', with a noise classifier)")
    return SCORERS[scorer](images)


def best_patch_scores(images: torch.Tensor, sizes: Sequence[int], scorer: str) -> dict[int, np.ndarray]:
    """Per crop size ``C``: the best score among each image's non-overlapping ``C x C`` tiles, shape ``(N,)``."""
    out = {}
    for size in sorted(set(int(s) for s in sizes)):
        tiles = tile(images, size)  # (N, rows, cols, C, size, size)
        n, rows, cols = tiles.shape[:3]
        scores = score_images(tiles.reshape(n * rows * cols, *tiles.shape[3:]), scorer)
        out[size] = scores.reshape(n, rows * cols).max(1)
    return out


__all__ = ["BLOCK", "SCORERS", "best_patch_scores", "blockiness", "classifier_scores", "score_images", "sharpness"]
