"""The crossing: from which sigma does training on clean + corrupted data have the better bound?

Algorithm 1 (clean only) has error bound ``B1(sigma) = K(sigma, n1)``; Algorithm 2 (n1 clean + n2
corrupted) has ``B2(sigma) = (n2/N) b(sigma) + K(sigma, N)`` where ``b(sigma)`` bounds (or estimates)
``d_TV(p_sigma, q_sigma)`` (see :mod:`ambient_omni.theory.bounds`). The paper gives no closed form
for the crossing; we compute ``sigma* = inf {sigma : B2 < B1 on [sigma, sigma_hi]}`` numerically
(log grid, then Brent's method on the last sign change).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

from ambient_omni.errors import AmbientError
from ambient_omni.files import atomic_write_bytes
from ambient_omni.theory.bounds import (
    DEFAULT_DELTA,
    accuracy_to_tv,
    clean_only_error_bound,
    contraction_bound,
    contraction_bound_sharp,
    mixed_error_bound,
)


def measured_tv_curve(sigmas: Sequence[float], tvs: Sequence[float]) -> Callable[[np.ndarray], np.ndarray]:
    """Turn a measured ``d_TV``-vs-sigma curve into a function of sigma.

    Inside the measured range: linear interpolation in ``log sigma``. Below it: the first value.
    Above it: ``tv_last * sigma_last / sigma`` (the Theorem 4.2 shape; a CHOICE of extrapolation).
    """
    s = np.asarray(sigmas, dtype=float)
    t = np.asarray(tvs, dtype=float)
    if s.ndim != 1 or len(s) < 2 or len(s) != len(t):
        raise AmbientError("a measured curve needs at least two (sigma, value) pairs of equal length")
    if np.any(s <= 0) or np.any(np.diff(s) <= 0):
        raise AmbientError("the sigmas of a measured curve must be positive and strictly increasing")
    if np.any(t < 0) or np.any(t > 1):
        raise AmbientError("the values of a measured d_TV curve must lie in [0, 1]")

    def curve(sigma: np.ndarray) -> np.ndarray:
        sigma = np.asarray(sigma, dtype=float)
        inside = np.interp(np.log(sigma), np.log(s), t)
        return np.where(sigma > s[-1], t[-1] * s[-1] / sigma, inside)

    return curve


@dataclass(frozen=True)
class CrossingSetup:
    """Everything the two bounds need.

    ``tv0`` = ``d_TV(p0, q0)`` (clean vs corrupted at sigma = 0) with ``diameter`` D, contracted by
    Theorem 4.2 (``sharp=True``: the exact-Gaussian version); or ``tv_curve`` = a measured
    ``d_TV(p_sigma, q_sigma)`` curve (e.g. ``2 acc - 1`` of a noise classifier), which then replaces
    the contraction bound (an estimate, not a bound: it is a lower bound on the true distance).
    ``kde``, ``lipschitz``, ``delta``, ``constant`` select the Theorem 4.1 bound (see ``kde_bound``).
    """

    n_clean: int
    n_corrupted: int
    tv0: float | None = None
    diameter: float = 1.0
    lipschitz: float = 1.0
    delta: float = DEFAULT_DELTA
    kde: str = "paper"
    constant: float = 1.0
    sharp: bool = False
    tv_curve: Callable[[np.ndarray], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.n_clean < 1 or self.n_corrupted < 1:
            raise AmbientError("--n-clean and --n-corrupted must be at least 1")
        if (self.tv0 is None) == (self.tv_curve is None):
            raise AmbientError("give exactly one of d_TV(p0, q0) (--tv) and a measured curve")
        if self.tv0 is not None and not 0 <= self.tv0 <= 1:
            raise AmbientError(f"--tv must lie in [0, 1], got {self.tv0}")

    def _kde_options(self) -> dict[str, object]:
        return {"kind": self.kde, "lipschitz": self.lipschitz, "delta": self.delta, "constant": self.constant}

    def bias_tv(self, sigma: np.ndarray) -> np.ndarray:
        """``b(sigma)``: the contracted distance between clean and corrupted at level sigma."""
        if self.tv_curve is not None:
            return np.clip(self.tv_curve(sigma), 0.0, 1.0)
        contract = contraction_bound_sharp if self.sharp else contraction_bound
        return contract(sigma, self.tv0, self.diameter)

    def clean_bound(self, sigma: np.ndarray) -> np.ndarray:
        """``B1(sigma)``: Algorithm 1's bound."""
        return clean_only_error_bound(sigma, self.n_clean, **self._kde_options())

    def mixed_bound(self, sigma: np.ndarray) -> np.ndarray:
        """``B2(sigma)``: Algorithm 2's bound."""
        return mixed_error_bound(sigma, self.n_clean, self.n_corrupted, self.bias_tv(sigma), **self._kde_options())


def setup_from_accuracy(
    sigmas: Sequence[float], accuracies: Sequence[float], **options: object
) -> CrossingSetup:
    """A :class:`CrossingSetup` whose bias is the classifier-measured ``2 acc - 1`` curve."""
    return CrossingSetup(tv_curve=measured_tv_curve(sigmas, accuracy_to_tv(accuracies)), **options)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CrossingResult:
    """``sigma``: the crossing (``inf`` if mixed never wins up to ``sigma_hi``; ``sigma_lo`` if it
    always wins). ``status``: ``"crossing"``, ``"never"`` or ``"always"``. ``vacuous``: the clean-only
    bound is 1 (trivial) at ``sigma``, so the crossing there only says where the mixed bound stops
    being trivial, not that mixed data is provably better."""

    sigma: float
    status: str
    vacuous: bool = False


def crossing_sigma(setup: CrossingSetup, sigma_lo: float = 1e-3, sigma_hi: float = 1e6, num: int = 4000) -> CrossingResult:
    """Smallest sigma from which ``B2 < B1`` holds on the whole grid up to ``sigma_hi``."""
    grid = np.geomspace(sigma_lo, sigma_hi, num)
    diff = setup.clean_bound(grid) - setup.mixed_bound(grid)
    wins = diff > 0
    if not wins[-1]:
        return CrossingResult(float("inf"), "never")
    losing = np.flatnonzero(~wins)

    def result(sigma: float, status: str) -> CrossingResult:
        return CrossingResult(sigma, status, bool(setup.clean_bound(np.asarray(sigma)) >= 1.0))

    if len(losing) == 0:
        return result(float(sigma_lo), "always")
    k = int(losing[-1])

    def gap(s: float) -> float:
        return float(setup.clean_bound(np.asarray(s)) - setup.mixed_bound(np.asarray(s)))

    if diff[k] == 0:
        return result(float(grid[k]), "crossing")
    return result(float(brentq(gap, grid[k], grid[k + 1], xtol=1e-12, rtol=1e-10)), "crossing")


def informative_from(setup: CrossingSetup, sigma: float, sigma_hi: float = 1e6, num: int = 4000) -> float:
    """The smallest level ``s >= sigma`` where the clean-only bound is informative, ``B1(s) < 1`` (``B1``
    falls with sigma, so this is where it leaves 1; ``inf`` if it never does up to ``sigma_hi``). A crossing
    below it compares the mixed bound with a trivial one, which says nothing about which data is better."""
    if not math.isfinite(sigma) or setup.clean_bound(np.asarray(sigma)) < 1.0:
        return float(sigma)
    grid = np.geomspace(sigma, sigma_hi, num)
    informative = np.flatnonzero(setup.clean_bound(grid) < 1.0)
    if len(informative) == 0:
        return float("inf")
    lo, hi = float(grid[int(informative[0]) - 1]), float(grid[int(informative[0])])
    for _ in range(200):  # bisection that keeps B1(hi) < 1, so the point returned is informative itself
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (lo, mid) if setup.clean_bound(np.asarray(mid)) < 1.0 else (mid, hi)
    return hi


@dataclass(frozen=True)
class WinInterval:
    """A range ``lo < sigma < hi`` on which ``B2 < B1`` (``hi = inf``: up to the grid's top).
    ``vacuous_below``: the clean-only bound is trivial (= 1) for ``lo < sigma < vacuous_below``
    (``None`` if it is non-trivial on the whole range), so there mixed data "wins" only because
    its bound stops being trivial first."""

    lo: float
    hi: float
    vacuous_below: float | None = None


def _edge(setup: CrossingSetup, a: float, b: float) -> float:
    """The sign change of ``B1 - B2`` inside ``[a, b]`` (Brent's method)."""

    def gap(s: float) -> float:
        return float(setup.clean_bound(np.asarray(s)) - setup.mixed_bound(np.asarray(s)))

    if gap(a) == 0:
        return a
    if gap(b) == 0 or np.sign(gap(a)) == np.sign(gap(b)):
        return b
    return float(brentq(gap, a, b, xtol=1e-12, rtol=1e-10))


def mixed_win_intervals(setup: CrossingSetup, sigma_lo: float = 1e-3, sigma_hi: float = 1e6, num: int = 4000) -> list[WinInterval]:
    """Every range of sigma on which mixed data has the better bound, ``{sigma : B2(sigma) < B1(sigma)}``.

    :func:`crossing_sigma` gives only the last one (the range that extends to ``sigma_hi``); with the
    paper-form Thm 4.1 bound there is often a second window at small sigma, where the bias
    ``(n2/N) tv0 min(1, D/(2 sigma))`` is capped at ``(n2/N) tv0`` while ``K(sigma, n1) - K(sigma, N)`` is
    large. Edges: log grid of ``num`` points, refined by Brent's method; a range touching the grid's
    bottom starts at ``sigma_lo``, one touching its top ends at ``inf``.
    """
    grid = np.geomspace(sigma_lo, sigma_hi, num)
    wins = setup.clean_bound(grid) - setup.mixed_bound(grid) > 0
    intervals: list[WinInterval] = []
    changes = np.flatnonzero(np.diff(wins.astype(np.int8)))
    starts = ([0] if wins[0] else []) + [int(k) + 1 for k in changes if not wins[k]]
    for start in starts:
        after = [int(k) for k in changes if k >= start and wins[k]]
        lo = float(sigma_lo) if start == 0 else _edge(setup, float(grid[start - 1]), float(grid[start]))
        hi = float("inf") if not after else _edge(setup, float(grid[after[0]]), float(grid[after[0] + 1]))
        intervals.append(WinInterval(lo, hi, _vacuous_below(setup, lo, hi)))
    return intervals


def _vacuous_below(setup: CrossingSetup, lo: float, hi: float, num: int = 400) -> float | None:
    """The largest sigma in ``(lo, hi)`` up to which the clean-only bound is 1, or ``None``."""
    top = hi if np.isfinite(hi) else lo * 1e3
    grid = np.geomspace(lo, top, num)
    trivial = setup.clean_bound(grid) >= 1.0
    if not trivial[0]:
        return None
    k = int(np.argmin(trivial)) if not trivial.all() else num - 1
    return float(grid[k])


def describe_intervals(intervals: Sequence[WinInterval]) -> str:
    """One line for ``ambient theory``'s headline: every range where mixed data has the better bound."""
    if not intervals:
        return "mixed data never has the better bound (up to sigma = 1e6): train on clean data only"
    parts = []
    for item in intervals:
        text = f"sigma > {item.lo:.6g}" if not np.isfinite(item.hi) else f"{item.lo:.4g} < sigma < {item.hi:.4g}"
        if item.vacuous_below is not None:
            text += f" (clean bound trivial, = 1, below {item.vacuous_below:.3g})"
        parts.append(text)
    return "mixed data has the better bound for " + " and for ".join(parts)


def edm_sigmas(steps: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> np.ndarray:
    """The EDM (Karras et al. 2022) sampling levels, descending:
    ``sigma_i = (sigma_max^(1/rho) + i/(steps-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``."""
    if steps < 2 or not 0 < sigma_min < sigma_max:
        raise AmbientError("need --steps >= 2 and 0 < --sigma-min < --sigma-max")
    ramp = np.linspace(0.0, 1.0, steps)
    inv = 1.0 / rho
    return (sigma_max**inv + ramp * (sigma_min**inv - sigma_max**inv)) ** rho


def step_choices(setup: CrossingSetup, sigmas: Sequence[float]) -> list[dict[str, float | str]]:
    """Per diffusion step: both bounds and the data to train that level on (``clean`` or ``mixed``)."""
    sig = np.asarray(sigmas, dtype=float)
    b1, b2 = setup.clean_bound(sig), setup.mixed_bound(sig)
    return [
        {"step": i, "sigma": float(s), "clean_bound": float(c), "mixed_bound": float(m), "choice": "mixed" if m < c else "clean"}
        for i, (s, c, m) in enumerate(zip(sig, b1, b2))
    ]


def plot_crossing(setup: CrossingSetup, path: str | Path, sigma_lo: float = 1e-3, sigma_hi: float = 1e4) -> CrossingResult:
    """Draw ``B1``, ``B2`` and the bias term versus sigma (log-log) with the crossing; write a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.geomspace(sigma_lo, sigma_hi, 600)
    result = crossing_sigma(setup, sigma_lo=sigma_lo, sigma_hi=max(sigma_hi, 1e6))
    n_total = setup.n_clean + setup.n_corrupted
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.loglog(grid, setup.clean_bound(grid), label=f"clean only (n1={setup.n_clean})")
    ax.loglog(grid, setup.mixed_bound(grid), label=f"clean + corrupted (N={n_total})")
    ax.loglog(grid, setup.n_corrupted / n_total * setup.bias_tv(grid), ":", label="bias term (n2/N) b(sigma)")
    if result.status == "crossing":
        ax.axvline(result.sigma, color="k", ls="--", lw=0.8, label=f"crossing sigma = {result.sigma:.3g}")
    ax.set_xlabel("sigma")
    ax.set_ylabel("bound on d_TV to the clean noised distribution")
    ax.set_title(f"bias-variance bounds ({setup.kde} Thm 4.1 bound); crossing: {result.status}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return result
