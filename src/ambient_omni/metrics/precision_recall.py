"""Improved precision and recall with k-NN manifolds (Kynkaanniemi et al. 2019).

The real manifold is the union of balls ``B(r_i, rho_k(r_i))`` where ``rho_k`` is the distance
from real feature ``r_i`` to its k-th nearest other real feature. Precision is the share of
generated features inside the real manifold; recall is the share of real features inside the
generated manifold (built the same way from the generated features). Default ``k = 3``.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from ambient_omni.errors import AmbientError


def pairwise_distances(x: np.ndarray, y: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Euclidean distances ``(len(x), len(y))`` in float64, computed in row chunks."""
    xt, yt = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    return torch.cat([torch.cdist(xt[i:i + chunk], yt) for i in range(0, xt.shape[0], chunk)]).numpy()


def check_k(k: int) -> None:
    """Raise :class:`AmbientError` unless ``k`` is a positive int (``k = 0`` gives every radius 0, so
    precision and recall 0 whatever the samples)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise AmbientError(f"--k (k of the k-NN precision/recall) must be a positive int, got {k!r}")


def knn_radii(features: np.ndarray, k: int = 3) -> np.ndarray:
    """Distance from each feature to its k-th nearest neighbour among the others (``k >= 1``)."""
    check_k(k)
    if features.shape[0] <= k:
        raise ValueError(f"k-NN radii need more than k={k} features, got {features.shape[0]}")
    dist = pairwise_distances(features, features)
    return np.partition(dist, k, axis=1)[:, k]  # index 0 is the point itself (distance 0)


def coverage_share(queries: np.ndarray, support: np.ndarray, radii: np.ndarray) -> float:
    """Share of ``queries`` within ``radii[j]`` of at least one ``support[j]``."""
    dist = pairwise_distances(queries, support)
    return float(np.mean((dist <= radii[None, :]).any(axis=1)))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """``(precision, recall)`` of generated features ``fake`` against ``real``."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    precision = coverage_share(fake, real, knn_radii(real, k))
    recall = coverage_share(real, fake, knn_radii(fake, k))
    return precision, recall
