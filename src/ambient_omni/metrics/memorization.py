"""Memorization: how many samples are near-copies of a training image.

For each sample ``x`` let ``d_1 <= d_2`` be the Euclidean distances to its nearest and second
nearest training image (in pixel space by default, i.e. on the flattened ``[-1, 1]`` images;
any feature space works). ``x`` is flagged as a copy when ``d_1 < ratio * d_2`` (default
``ratio = 1/3``, as in DATA.md), or when ``d_1 = 0``. An exact copy has ``d_1 = 0``; a fresh
image sits about equally far from its two nearest neighbours (``d_1 / d_2`` near 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_RATIO = 1.0 / 3.0


@dataclass
class MemorizationResult:
    """Per-sample nearest training index, ``d_1 / d_2`` and copy flags, plus the copy share."""

    nearest: np.ndarray
    ratio: np.ndarray
    copies: np.ndarray
    threshold: float

    @property
    def share(self) -> float:
        """Share of samples flagged as copies."""
        return float(self.copies.mean())


def two_nearest(samples: torch.Tensor, train: torch.Tensor, chunk: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(d_1, d_2, nearest index)`` of each row of ``samples`` among the rows of ``train``."""
    samples, train = samples.flatten(1).double(), train.flatten(1).double()
    if train.shape[0] < 2:
        raise ValueError("memorization needs at least 2 training images")
    d1, d2, idx = [], [], []
    for start in range(0, samples.shape[0], chunk):
        dist = torch.cdist(samples[start:start + chunk], train)
        vals, ind = dist.topk(2, dim=1, largest=False)
        d1.append(vals[:, 0]), d2.append(vals[:, 1]), idx.append(ind[:, 0])
    return torch.cat(d1).numpy(), torch.cat(d2).numpy(), torch.cat(idx).numpy()


def memorization(samples: torch.Tensor | np.ndarray, train: torch.Tensor | np.ndarray,
                 ratio: float = DEFAULT_RATIO) -> MemorizationResult:
    """Flag samples with ``d_1 < ratio * d_2`` (or ``d_1 = 0``) against the training set."""
    d1, d2, nearest = two_nearest(torch.as_tensor(samples), torch.as_tensor(train))
    rel = np.divide(d1, d2, out=np.zeros_like(d1), where=d2 > 0)
    copies = (d1 == 0) | (d1 < ratio * d2)
    return MemorizationResult(nearest=nearest, ratio=rel, copies=copies, threshold=ratio)
