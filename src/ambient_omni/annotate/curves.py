"""Pure functions on P(clean)-versus-sigma curves: the sigma grid, EMA smoothing, first crossing,
and the plan of the fast search (PAPER 2.3).

The reference ("dense") procedure of the authors, for one image:

1. a grid of ``G = 2048`` sigmas drawn from the training log-normal
   ``sigma = exp(P_mean + P_std * n)``, ``n ~ N(0, 1)`` with a fixed seed, sorted ascending;
2. ``D = 4`` noise draws per grid point; ``p_j = mean_d sigmoid(f(y + sigma_j * eps_jd, sigma_j))``;
3. exponential moving average along the grid, pandas ``ewm(span=32, adjust=False)``:
   ``alpha = 2 / (span + 1)``, ``S_0 = p_0``, ``S_j = (1 - alpha) * S_{j-1} + alpha * p_j``;
4. ``sigma_min = sigma_{j*}`` with ``j* = min{j : S_j > tau}``; the largest grid sigma if none.

The fast procedure evaluates a SUBSET of the same grid points with the SAME noise draws (common
random numbers; see :mod:`ambient_omni.annotate.noise`), so it approximates exactly the curve the
dense procedure would see, and it runs the dense procedure's own smoothing on an estimate of it:

* the estimate ``p_hat`` is the piecewise-linear interpolation (in grid index, i.e. in quantile
  of the training log-normal) of the points measured so far, constant beyond the ends;
* its crossing ``j_hat`` = first ``EMA_span(p_hat) > tau`` (the dense rule on the estimate: the
  smoothing width in quantile space is therefore the dense one by construction);
* start: every ``stride``-th grid point (block centres) plus both ends;
* round: measure the ``window`` grid points starting ``back`` points before a candidate ``j``
  (the EMA at ``j`` is dominated by the ~``1/alpha`` points before it), re-estimate. Candidates,
  in order: the points before ``j_hat`` whose estimated EMA lies within ``margin`` below ``tau``
  (where a noise blip may make the dense curve cross first: plateaus just under ``tau``), then
  ``j_hat``; a candidate whose window is measured is settled. Stop when every candidate is
  settled (then ``j_hat`` is computed from measured values over the window that carries the
  EMA's weight) or when ``max_points`` points are measured (the last round keeps the new points
  nearest its candidate). ``margin = 0`` looks only at ``j_hat``.

On noise-free monotone curves the answer equals the dense one; with noisy curves the two
differ where the dense smoothed curve crosses tau on a noise blip in an unmeasured region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter
import torch

# Defaults of the authors' reference procedure (PAPER 2.3).
GRID_SIZE = 2048
DRAWS = 4
SPAN = 32.0
TAU = 0.45
P_MEAN = -1.2
P_STD = 1.2


def lognormal_grid(
    size: int = GRID_SIZE, p_mean: float = P_MEAN, p_std: float = P_STD, seed: int = 0
) -> np.ndarray:
    """Sorted ``sigma_j = exp(p_mean + p_std * n_j)`` with ``n_j ~ N(0,1)`` from ``torch.Generator(seed)``.

    Returns a float64 array of shape ``(size,)``, ascending.
    """
    if size < 1:
        raise ValueError(f"grid size must be >= 1, got {size}")
    gen = torch.Generator().manual_seed(seed)
    n = torch.randn(size, generator=gen, dtype=torch.float64)
    return np.sort(np.exp(p_mean + p_std * n.numpy()))


def ema_alpha(span: float) -> float:
    """pandas ``ewm(span=...)`` smoothing factor: ``alpha = 2 / (span + 1)`` (``span >= 1``)."""
    if not span >= 1:  # also NaN
        raise ValueError(f"EMA span must be >= 1, got {span}")
    return 2.0 / (span + 1.0)


def ema(values: np.ndarray, alpha: float, initial: np.ndarray | float | None = None) -> np.ndarray:
    """Exponential moving average along the last axis (pandas ``adjust=False``).

    ``S_0 = x_0`` (or ``S_0 = (1 - alpha) * initial + alpha * x_0`` when a prior state ``initial``
    is given), ``S_j = (1 - alpha) * S_{j-1} + alpha * x_j``.
    """
    x = np.asarray(values, dtype=np.float64)
    if initial is None:
        state = x[..., 0].copy()
    else:
        state = (1.0 - alpha) * np.broadcast_to(np.asarray(initial, dtype=np.float64), x.shape[:-1]) + alpha * x[..., 0]
    if x.shape[-1] == 1:
        return state[..., None].copy()
    # The recursion S_j = (1 - alpha) S_{j-1} + alpha x_j as one IIR filter over j >= 1, started from S_0.
    rest, _ = lfilter([alpha], [1.0, -(1.0 - alpha)], x[..., 1:], axis=-1, zi=((1.0 - alpha) * state)[..., None])
    return np.concatenate([state[..., None], rest], axis=-1)


def first_crossing(smoothed: np.ndarray, tau: float) -> np.ndarray:
    """Index of the first ``smoothed[..., j] > tau`` along the last axis; ``-1`` where none exists."""
    above = np.asarray(smoothed) > tau
    idx = np.argmax(above, axis=-1)
    return np.where(above.any(axis=-1), idx, -1)


def dense_sigma_min(
    p: np.ndarray, sigmas: np.ndarray, tau: float = TAU, span: float = SPAN
) -> np.ndarray:
    """Reference sigma_min from raw curves ``p`` of shape ``(..., G)`` (draws already averaged).

    ``sigma_min = sigmas[first j with EMA_span(p)_j > tau]``, else ``sigmas[-1]``.
    """
    idx = first_crossing(ema(p, ema_alpha(span)), tau)
    return np.where(idx >= 0, np.asarray(sigmas)[np.maximum(idx, 0)], np.asarray(sigmas)[-1])


@dataclass(frozen=True)
class FastPlan:
    """Geometry and budget of the fast search on a grid of ``grid_size`` points.

    Points per image <= ``max_points`` (classifier calls = draws * points); the defaults give at
    most ``4 * 128 = 512 = 8192 / 16`` calls. The default geometry was chosen on the dense curves of
    160 real blurred Fashion-MNIST images (``scripts/annotation_agreement.py``; docs/RESULTS.md).
    """

    grid_size: int = GRID_SIZE
    stride: int = 96
    window: int = 48
    back: int = 32
    max_points: int = 128
    margin: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin < 1.0:
            raise ValueError(f"margin {self.margin} must be in [0, 1)")
        if not 1 <= self.stride <= self.grid_size:
            raise ValueError(f"stride {self.stride} must be in [1, grid size {self.grid_size}]")
        if not 1 <= self.window <= self.grid_size or not 0 <= self.back < self.window:
            raise ValueError(f"need 1 <= window ({self.window}) <= grid size and 0 <= back ({self.back}) < window")
        if self.initial_mask().sum() > self.max_points:
            raise ValueError(f"max_points {self.max_points} is below the {self.initial_mask().sum()} start points")

    def initial_mask(self) -> np.ndarray:
        """Start points: block centres ``stride // 2 + k * stride`` and both ends of the grid."""
        mask = np.zeros(self.grid_size, dtype=bool)
        mask[np.arange(self.stride // 2, self.grid_size, self.stride)] = True
        mask[[0, -1]] = True
        return mask


def estimate_crossing(known: np.ndarray, values: np.ndarray, tau: float, span: float) -> int:
    """Dense rule on the interpolated estimate: first ``j`` with ``EMA(p_hat)_j > tau``, else ``G - 1``.

    ``known`` is a boolean mask over the grid, ``values`` holds the measured values where it is set.
    """
    j = int(first_crossing(estimated_ema(known, values, span), tau))
    return known.size - 1 if j < 0 else j


def estimated_ema(known: np.ndarray, values: np.ndarray, span: float) -> np.ndarray:
    """``EMA_span(p_hat)`` over the whole grid, ``p_hat`` interpolated from the measured points."""
    idx = np.flatnonzero(known)
    return ema(np.interp(np.arange(known.size), idx, values[idx]), ema_alpha(span))


def candidates(plan: FastPlan, smoothed: np.ndarray, tau: float) -> np.ndarray:
    """Where the search looks, in order: every ``j`` before the estimated crossing whose estimated
    EMA is within ``margin`` below ``tau`` (a noise blip there could make the dense curve cross
    first), then the estimated crossing itself (``G - 1`` if none)."""
    j_hat = int(first_crossing(smoothed, tau))
    j_hat = smoothed.size - 1 if j_hat < 0 else j_hat
    near = np.flatnonzero(smoothed[:j_hat] > tau - plan.margin) if plan.margin > 0 else np.empty(0, np.int64)
    return np.append(near, j_hat)


def next_window(plan: FastPlan, known: np.ndarray, values: np.ndarray, tau: float, span: float) -> np.ndarray:
    """Grid indices to measure next for one image (empty when the search is finished): the
    unmeasured points of the window ``[j - back, j - back + window)`` of the first candidate ``j``
    (see :func:`candidates`) whose window is not fully measured yet."""
    room = max(0, plan.max_points - int(known.sum()))
    if room == 0:
        return np.empty(0, dtype=np.int64)
    cands = candidates(plan, estimated_ema(known, values, span), tau)
    starts = np.clip(cands - plan.back, 0, plan.grid_size - plan.window)
    unmeasured = np.concatenate([[0], np.cumsum(~known)])  # unmeasured points in [a, b) = u[b] - u[a]
    open_ = np.flatnonzero(unmeasured[starts + plan.window] > unmeasured[starts])
    if open_.size == 0:
        return np.empty(0, dtype=np.int64)
    j, lo = int(cands[open_[0]]), int(starts[open_[0]])
    new = lo + np.flatnonzero(~known[lo : lo + plan.window])
    if new.size > room:  # out of budget: keep the points nearest the candidate
        new = np.sort(new[np.argsort(np.abs(new - j), kind="stable")[:room]])
    return new


def fast_sigma_min_from_dense(
    p: np.ndarray, sigmas: np.ndarray, plan: FastPlan, tau: float = TAU, span: float = SPAN
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the fast search on full curves ``p`` of shape ``(N, G)``; it reads only the points
    it would measure. Returns ``(sigma_min (N,), points measured (N,))``. Used to test the search
    and to tune ``plan`` offline."""
    p = np.atleast_2d(p)
    out, points = np.empty(p.shape[0]), np.empty(p.shape[0], dtype=np.int64)
    for i, row in enumerate(p):
        known = plan.initial_mask()
        while (new := next_window(plan, known, row, tau, span)).size:
            known[new] = True
        out[i] = sigmas[estimate_crossing(known, np.where(known, row, 0.0), tau, span)]
        points[i] = known.sum()
    return out, points


def log_ratio_stats(sigma_a: np.ndarray, sigma_b: np.ndarray) -> dict[str, float]:
    """Agreement of two annotations: median, 95th percentile and max of ``|log(a / b)|``."""
    d = np.abs(np.log(np.asarray(sigma_a, dtype=np.float64) / np.asarray(sigma_b, dtype=np.float64)))
    return {
        "median_abs_log_ratio": float(np.median(d)),
        "p95_abs_log_ratio": float(np.percentile(d, 95)),
        "max_abs_log_ratio": float(np.max(d)),
        "n": int(d.size),
    }


def smoothing_width_in_log_sigma(span: float = SPAN, grid_size: int = GRID_SIZE, p_std: float = P_STD) -> float:
    """Time constant of the dense EMA in log-sigma units at the grid's median.

    The EMA forgets with ``(1 - alpha) ** n = exp(-n / n0)``, ``n0 = -1 / log(1 - alpha)`` points;
    neighbouring sorted log-normal draws near the median are ``p_std * sqrt(2 pi) / G`` apart.
    """
    n0 = -1.0 / math.log(1.0 - ema_alpha(span))
    return n0 * p_std * math.sqrt(2.0 * math.pi) / grid_size
