"""Where an ideal noise classifier annotates Gaussian-noise corruption (paper Table 7).

A corrupted image ``y = x + s z`` noised to level ``sigma`` and a clean image noised to ``sigma`` differ,
on the pixels where the clean image is exactly constant (Fashion-MNIST's black background), only in the
variance of i.i.d. Gaussian noise: ``v0 = sigma^2`` (clean) against ``v1 = sigma^2 + s^2`` (corrupted).
On ``d`` such pixels the likelihood-ratio test depends on ``Q = sum_i x_i^2`` alone. Under the corrupted
hypothesis ``Q = v1 * chi2_d``, and with ``r = v1 / v0 = 1 + (s / sigma)^2`` the log-odds of "clean"
(equal priors, as with balanced training) are

    L(r, d) = (d / 2) ln r - (r - 1) / 2 * chi2_d.

The Bayes classifier reports ``P(clean | y_sigma) = sigmoid(L)``; over corrupted images its mean
``m(r, d) = E[sigmoid(L)]`` rises from 0 (r large, small sigma) to 1/2 (r -> 1, sigma large). The
annotation's first crossing of ``tau`` therefore sits near the ``sigma`` where ``m = tau``:

    sigma* / s = 1 / sqrt(r* - 1),    m(r*, d) = tau,

which depends on ``d`` and ``tau`` only, not on ``s``. Because the other pixels carry evidence too, an ideal
classifier crosses at least this late: ``sigma* / s`` is a LOWER bound on the ideal annotation ratio, and
the paper's ratios near 1 (0.058 / 0.102 / 0.179 for s = 0.05 / 0.1 / 0.2) correspond to a classifier that
uses the evidence of very few pixels (:func:`effective_pixels`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special, stats

QUADRATURE_POINTS = 4096
"""Midpoint rule in the chi-square's quantile space: ``E[f(chi2_d)] ~ mean_k f(F^-1((k + 1/2) / K))``."""


def log_odds_clean(r: float, d: float, chi2: np.ndarray) -> np.ndarray:
    """``L = (d / 2) ln r - (r - 1) / 2 * chi2``: the ideal log-odds of "clean" for a corrupted image whose
    ``d`` constant pixels sum to ``Q = v1 * chi2`` in squares (``r = v1 / v0``)."""
    return 0.5 * d * math.log(r) - 0.5 * (r - 1.0) * chi2


def mean_p_clean(r: float, d: float) -> float:
    """``m(r, d) = E[sigmoid(L(r, d))]`` over corrupted images, ``chi2 ~ chi-square(d)`` (quadrature)."""
    if r < 1 or d <= 0:
        raise ValueError(f"need r >= 1 and d > 0, got r={r}, d={d}")
    u = (np.arange(QUADRATURE_POINTS) + 0.5) / QUADRATURE_POINTS
    return float(special.expit(log_odds_clean(r, d, stats.chi2.ppf(u, d))).mean())


def ideal_crossing_ratio(d: float, tau: float = 0.45) -> float:
    """``sigma* / s`` where the ideal classifier's mean P(clean) on corrupted images reaches ``tau``, from
    ``d`` constant pixels (the solution ``r*`` of ``m(r, d) = tau``, then ``1 / sqrt(r* - 1)``)."""
    if not 0 < tau < 0.5:
        raise ValueError(f"need 0 < tau < 0.5 (P(clean) of corrupted images never exceeds 1/2), got {tau}")
    # m decreases in r; solve on t = ln(r - 1), from r - 1 = 1e-12 (m ~ 1/2) to r - 1 = 1e12 (m ~ 0)
    t = optimize.brentq(lambda t: mean_p_clean(1.0 + math.exp(t), d) - tau, math.log(1e-12), math.log(1e12),
                        xtol=1e-10)
    return math.exp(-0.5 * t)


def effective_pixels(ratio: float, tau: float = 0.45) -> float:
    """The number ``d`` of constant pixels whose ideal classifier would annotate at ``sigma* = ratio * s``:
    the inverse of :func:`ideal_crossing_ratio` in ``d`` (which grows with ``d``)."""
    lo, hi = 0.1, 1e6
    if not ideal_crossing_ratio(lo, tau) < ratio < ideal_crossing_ratio(hi, tau):
        raise ValueError(f"ratio {ratio} is outside what 0.1 to 1e6 pixels give at tau {tau}")
    return math.exp(optimize.brentq(lambda x: ideal_crossing_ratio(math.exp(x), tau) - ratio, math.log(lo),
                                    math.log(hi), xtol=1e-8))
