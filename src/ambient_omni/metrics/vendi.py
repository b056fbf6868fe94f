"""Vendi score (Friedman & Dieng 2023): the effective number of distinct items in a set.

For ``n`` items with a similarity kernel ``k`` (``k(x, x) = 1``) and kernel matrix
``K_ij = k(x_i, x_j)``, let ``lambda_1..lambda_n`` be the eigenvalues of ``K / n`` (they are
non-negative and sum to ``tr(K) / n = 1``). Then

    VS(X) = exp(-sum_i lambda_i log lambda_i)      (with 0 log 0 = 0),

the exponential of the Shannon entropy of the spectrum: 1 for ``n`` identical items, ``n`` for
``n`` mutually dissimilar (orthogonal) ones, ``m`` for ``m`` equal-sized clusters of identical items.

Here ``k`` is the cosine similarity of feature vectors: with ``X`` the ``(n, d)`` features whose rows
are scaled to unit length, ``K = X X^T``. ``X X^T / n`` and the ``d x d`` Gram matrix ``X^T X / n``
have the same nonzero eigenvalues (``X = U S V^T`` gives ``U S^2 U^T`` and ``V S^2 V^T``), so when
``d < n`` the score is computed from the smaller matrix. A zero feature vector has no direction;
it is given a direction of its own (an extra coordinate ``e_{d+1}``), so that zero vectors are
identical to each other (``k = 1``) and dissimilar to every other vector (``k = 0``), which keeps
``K`` positive semi-definite with unit diagonal.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ambient_omni.errors import AmbientError

Route = Literal["auto", "kernel", "gram"]


def unit_rows(features: np.ndarray) -> np.ndarray:
    """``(n, d)`` features -> rows of unit Euclidean length, float64, so that ``X X^T`` holds cosine similarities.

    If any row is the zero vector, one column is appended: zero rows become ``e_{d+1}``, the others get 0 there.
    """
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 1 or feats.shape[1] < 1:
        raise AmbientError(f"Vendi score needs (n >= 1, d >= 1) features, got shape {feats.shape}")
    if not np.isfinite(feats).all():
        raise AmbientError("Vendi score: the features hold NaN or Inf values")
    norms = np.linalg.norm(feats, axis=1)
    zero = norms == 0
    unit = feats / np.where(zero, 1.0, norms)[:, None]
    if zero.any():
        unit = np.concatenate([unit, zero[:, None].astype(np.float64)], axis=1)
    return unit


def spectrum_entropy(eigenvalues: np.ndarray) -> float:
    """``-sum_i lambda_i log lambda_i`` of a spectrum summing to 1; round-off negatives count as 0."""
    vals = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    vals = vals[vals > 0]
    return float(-(vals * np.log(vals)).sum())


def vendi_score(features: np.ndarray, route: Route = "auto") -> float:
    """Vendi score of ``(n, d)`` features under the cosine-similarity kernel (see the module docstring).

    ``route``: ``"kernel"`` takes the eigenvalues of the ``n x n`` matrix ``X X^T / n``, ``"gram"`` those of
    the ``d x d`` matrix ``X^T X / n`` (same nonzero eigenvalues), ``"auto"`` the smaller one. The result lies
    in ``[1, min(n, rank)]`` up to round-off.
    """
    if route not in ("auto", "kernel", "gram"):
        raise AmbientError(f"Vendi score: route must be 'auto', 'kernel' or 'gram', got {route!r}")
    unit = unit_rows(features)
    n, d = unit.shape
    use_gram = route == "gram" or (route == "auto" and d < n)
    matrix = unit.T @ unit / n if use_gram else unit @ unit.T / n
    eigenvalues = np.linalg.eigvalsh((matrix + matrix.T) / 2)
    return float(np.exp(spectrum_entropy(eigenvalues)))
