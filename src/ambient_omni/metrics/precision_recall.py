"""k-NN precision and recall: a per-sample density test (the default) and the union-of-balls manifold.

Default, :func:`precision_recall` (k = 5, quantile q = 0.9). With ``rho_k(x, S)`` the distance from
``x`` to its k-th nearest point of ``S`` (``x`` itself left out when ``x`` is in ``S``):

    precision = mean_j 1[ rho_k(g_j, R) <= Q_q({rho_k(r_i, R)}_i) ]
    recall    = mean_i 1[ rho_k(r_i, G) <= Q_q({rho_k(g_j, G)}_j) ]

for real features ``R``, generated features ``G`` and ``Q_q`` the q-quantile: a sample counts as
realistic when its k-th nearest real feature is no farther than that of 90% of the real features
themselves (a one-sided conformal outlier test at level 1 - q). Samples drawn like the real data
therefore score about q (0.9), not 1, in any feature space and at any sample size (real and generated
features are exchangeable); a sample next to one isolated real feature counts for nothing, because it
needs k real neighbours as close as typical ones. Whether degenerate sets score low still depends on the
feature space separating them from the data (docs/PROTOCOL.md: it does for ``fmnist-classifier``, not
for ``effnet-lite0``).

The union of balls (Kynkaanniemi et al. 2019), :func:`ball_precision_recall` (their k = 3): precision is
the share of ``g_j`` inside ``U_i B(r_i, rho_k(r_i, R))``, recall the same with the roles swapped. It can
be fooled: an isolated real feature has a large ball, and a degenerate set that falls into it scores 1
(docs/PROTOCOL.md: 500 all-black images get precision 1.000 against Fashion-MNIST test features).
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


DEFAULT_K = 5
DEFAULT_QUANTILE = 0.9
BALL_K = 3  # Kynkaanniemi et al.'s k for the union of balls


def kth_neighbour_distances(queries: np.ndarray, support: np.ndarray, k: int) -> np.ndarray:
    """``rho_k(q, S)`` for each query: the distance to its k-th nearest ``support`` point (queries not in S)."""
    check_k(k)
    if support.shape[0] < k:
        raise ValueError(f"k-NN distances need at least k={k} support features, got {support.shape[0]}")
    return np.partition(pairwise_distances(queries, support), k - 1, axis=1)[:, k - 1]


def density_test_share(queries: np.ndarray, support: np.ndarray, k: int = DEFAULT_K,
                       quantile: float = DEFAULT_QUANTILE) -> float:
    """Share of ``queries`` with ``rho_k(q, S) <= Q_quantile({rho_k(s, S \\ s)})`` (module doc)."""
    if not 0 < quantile <= 1:
        raise AmbientError(f"precision/recall quantile must lie in (0, 1], got {quantile}")
    threshold = np.quantile(knn_radii(support, k), quantile)
    return float(np.mean(kth_neighbour_distances(queries, support, k) <= threshold))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = DEFAULT_K,
                     quantile: float = DEFAULT_QUANTILE) -> tuple[float, float]:
    """``(precision, recall)`` of generated features ``fake`` against ``real`` by the density test
    (module doc): both are about ``quantile`` when ``fake`` is drawn like ``real``."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    return density_test_share(fake, real, k, quantile), density_test_share(real, fake, k, quantile)


def ball_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = BALL_K) -> tuple[float, float]:
    """``(precision, recall)`` with union-of-k-NN-ball manifolds (Kynkaanniemi et al. 2019; module doc)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    precision = coverage_share(fake, real, knn_radii(real, k))
    recall = coverage_share(real, fake, knn_radii(fake, k))
    return precision, recall


def class_coverage(real: np.ndarray, real_labels: np.ndarray, fake: np.ndarray, fake_labels: np.ndarray,
                   k: int = DEFAULT_K) -> dict[str, float]:
    """Per class ``c`` of the reference: the share of class-``c`` real features whose k-NN ball (radius to the
    k-th nearest class-``c`` real feature) holds at least one class-``c`` sample: the coverage of Naeem et al.
    (2020) within each class, so a conditional model that ignores a class, or draws it from one mode, scores low
    there. 0 for a class with no samples; classes with at most ``k`` real features are left out."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
    out = {}
    for c in np.unique(real_labels[real_labels >= 0]):
        mine, theirs = real[real_labels == c], fake[fake_labels == c]
        if len(mine) <= k:
            continue
        if not len(theirs):
            out[str(int(c))] = 0.0
            continue
        covered = pairwise_distances(mine, theirs) <= knn_radii(mine, k)[:, None]  # ball of real i holds a sample
        out[str(int(c))] = float(covered.any(axis=1).mean())
    return out
