"""Numerical verification of Theorems 4.1, 4.2 and the bias-variance comparison.

Examples: densities on [0, 1] (uniform, triangle, a bimodal bump mixture and its blurred version),
point masses, and 2-D isotropic Gaussian mixtures. "True" distances are computed by quadrature
on regular grids (:mod:`ambient_omni.theory.tv`); KDE distances use explicit ``numpy`` generators.
Every ``check_*`` function returns plain arrays (tested in ``tests/test_theory_checks.py``);
:func:`write_check_figures` draws them.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ambient_omni.files import atomic_write_bytes
from ambient_omni.theory.bounds import (
    DEFAULT_DELTA,
    contraction_bound,
    contraction_bound_sharp,
    kde_tv_bound,
    kde_tv_bound_rate,
)
from ambient_omni.theory.tv import (
    discrete_tv,
    gaussian_shift_tv,
    mixture_density_1d,
    mixture_density_2d,
    tv_from_densities,
)

_GRID_1D = 3000
_SOURCE_1D = 1000


@dataclass(frozen=True)
class Measure1D:
    """A probability measure on the line as weighted atoms (a fine midpoint grid for a density)."""

    name: str
    atoms: np.ndarray
    weights: np.ndarray
    lipschitz: float
    is_density: bool = True

    def noised(self, y: np.ndarray, sigma: float) -> np.ndarray:
        """Density of ``X + sigma * eps`` on the points ``y``."""
        return mixture_density_1d(y, self.atoms, self.weights, sigma)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` exact samples of the piecewise-constant approximation (atom + uniform jitter)."""
        idx = rng.choice(len(self.atoms), size=n, p=self.weights)
        if not self.is_density:
            return self.atoms[idx]
        half = 0.5 / len(self.atoms)
        return self.atoms[idx] + rng.uniform(-half, half, size=n)


def density_on_unit_interval(name: str, pdf: Callable[[np.ndarray], np.ndarray]) -> Measure1D:
    """Discretize ``pdf`` on [0, 1] (midpoints); its Lipschitz constant is measured on the grid."""
    x = (np.arange(_SOURCE_1D) + 0.5) / _SOURCE_1D
    values = np.maximum(pdf(x), 0.0)
    values = values / values.mean()
    lipschitz = float(np.max(np.abs(np.diff(values))) * _SOURCE_1D)
    return Measure1D(name, x, values / values.sum(), lipschitz)


def point_mass(position: float) -> Measure1D:
    """The Dirac measure at ``position``."""
    return Measure1D(f"delta({position:g})", np.array([float(position)]), np.array([1.0]), np.inf, False)


def blurred(measure: Measure1D, width: float) -> Measure1D:
    """``measure`` convolved with N(0, width^2), restricted to [0, 1] and renormalized (a 'corruption')."""
    values = measure.noised(measure.atoms, width)
    return density_on_unit_interval(f"{measure.name} blurred {width:g}", lambda x: np.interp(x, measure.atoms, values))


def example_densities() -> dict[str, Measure1D]:
    """The 1-D examples on [0, 1]: uniform, triangle, bimodal, and the bimodal one blurred by 0.08."""
    bimodal = density_on_unit_interval(
        "bimodal", lambda x: np.exp(-0.5 * ((x - 0.25) / 0.07) ** 2) + 0.8 * np.exp(-0.5 * ((x - 0.7) / 0.1) ** 2)
    )
    return {
        "uniform": density_on_unit_interval("uniform", np.ones_like),
        "triangle": density_on_unit_interval("triangle", lambda x: np.minimum(x, 1 - x)),
        "bimodal": bimodal,
        "bimodal_blurred": blurred(bimodal, 0.08),
    }


def _grid_1d(measures: Sequence[Measure1D], sigma: float) -> np.ndarray:
    lo = min(float(m.atoms.min()) for m in measures) - 8.0 * sigma
    hi = max(float(m.atoms.max()) for m in measures) + 8.0 * sigma
    return np.linspace(lo, hi, _GRID_1D)


def noised_tv_1d(p: Measure1D, q: Measure1D, sigma: float) -> float:
    """``d_TV(p_sigma, q_sigma)`` by quadrature (exact formula when both are point masses)."""
    if not p.is_density and not q.is_density:
        return float(gaussian_shift_tv(abs(p.atoms[0] - q.atoms[0]), sigma))
    y = _grid_1d([p, q], sigma)
    return tv_from_densities(p.noised(y, sigma), q.noised(y, sigma), y[1] - y[0])


def tv_at_zero_1d(p: Measure1D, q: Measure1D) -> float:
    """``d_TV(p0, q0)`` for two densities on the same midpoint grid, or two point masses."""
    if not p.is_density and not q.is_density:
        return 0.0 if p.atoms[0] == q.atoms[0] else 1.0
    return discrete_tv(p.weights, q.weights)


def check_contraction_1d(p: Measure1D, q: Measure1D, sigmas: Sequence[float], diameter: float = 1.0) -> dict[str, np.ndarray]:
    """True ``d_TV(p_sigma, q_sigma)`` against Theorem 4.2 and its sharp version."""
    sig = np.asarray(sigmas, dtype=float)
    tv0 = tv_at_zero_1d(p, q)
    return {
        "sigma": sig,
        "tv0": np.asarray(tv0),
        "true": np.array([noised_tv_1d(p, q, s) for s in sig]),
        "bound": contraction_bound(sig, tv0, diameter),
        "sharp": contraction_bound_sharp(sig, tv0, diameter),
    }


@dataclass(frozen=True)
class Mixture2D:
    """Isotropic 2-D Gaussian mixture ``sum_k w_k N(c_k, std^2 I)`` = (atoms on centers) * N(0, std^2 I)."""

    centers: np.ndarray
    weights: np.ndarray
    std: float

    def density(self, points: np.ndarray, sigma: float) -> np.ndarray:
        """Density of ``X + sigma * eps``: the same mixture with std ``sqrt(std^2 + sigma^2)``."""
        return mixture_density_2d(points, self.centers, self.weights, float(np.hypot(self.std, sigma)))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` samples of the mixture."""
        idx = rng.choice(len(self.centers), size=n, p=self.weights)
        return self.centers[idx] + self.std * rng.standard_normal((n, 2))


def example_mixtures() -> dict[str, Mixture2D]:
    """``p``: four equal components on the unit square's corners (std 0.15); ``q_weights``: the same
    components reweighted; ``q_shrunk``: centers pulled 30% toward the mean (a mean-preserving,
    blur-like corruption)."""
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    equal = np.full(4, 0.25)
    return {
        "p": Mixture2D(corners, equal, 0.15),
        "q_weights": Mixture2D(corners, np.array([0.55, 0.15, 0.15, 0.15]), 0.15),
        "q_shrunk": Mixture2D(0.5 + 0.7 * (corners - 0.5), equal, 0.15),
    }


def _grid_2d(centers: np.ndarray, spread: float, size: int) -> tuple[np.ndarray, float]:
    lo, hi = centers.min() - 7.0 * spread, centers.max() + 7.0 * spread
    axis = np.linspace(lo, hi, size)
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1), float((axis[1] - axis[0]) ** 2)


def _grid_size(spread: float, extent: float) -> int:
    return int(np.clip(np.ceil(6.0 * extent / spread), 200, 400))


def noised_tv_2d(p: Mixture2D, q: Mixture2D, sigma: float) -> float:
    """``d_TV(p_sigma, q_sigma)`` for two 2-D mixtures with the same component std, by quadrature."""
    centers = np.concatenate([p.centers, q.centers])
    spread = float(np.hypot(p.std, sigma))
    points, cell = _grid_2d(centers, spread, _grid_size(spread, float(np.ptp(centers)) + 14 * spread))
    return tv_from_densities(p.density(points, sigma), q.density(points, sigma), cell)


def check_contraction_2d(p: Mixture2D, q: Mixture2D, sigmas: Sequence[float]) -> dict[str, np.ndarray]:
    """Theorem 4.2 for Gaussian mixtures (unbounded support) via their centers.

    ``p = mu_p * N(0, tau^2 I)`` and likewise ``q``, so ``p_sigma = mu_p * N(0, (tau^2 + sigma^2) I)``
    and Theorem 4.2 applies to the center measures with noise ``sqrt(tau^2 + sigma^2)`` and ``D`` the
    diameter of all centers: ``d_TV(p_sigma, q_sigma) <= d_TV(mu_p, mu_q) D / (2 sqrt(tau^2 + sigma^2))``.
    """
    if p.std != q.std:
        raise ValueError("the center argument needs one common component std")
    sig = np.asarray(sigmas, dtype=float)
    centers = np.concatenate([p.centers, q.centers])
    diameter = float(np.max(np.linalg.norm(centers[:, None] - centers[None], axis=-1)))
    same = p.centers.shape == q.centers.shape and np.allclose(p.centers, q.centers)
    tv_centers = discrete_tv(p.weights, q.weights) if same else 1.0
    effective = np.hypot(p.std, sig)
    return {
        "sigma": sig,
        "tv0": np.asarray(noised_tv_2d(p, q, 0.0)),
        "tv_centers": np.asarray(tv_centers),
        "true": np.array([noised_tv_2d(p, q, s) for s in sig]),
        "bound": contraction_bound(effective, tv_centers, diameter),
        "sharp": contraction_bound_sharp(effective, tv_centers, diameter),
    }


def _variance_bound(mean: np.ndarray, second: np.ndarray, cell: float, n: int, diff: float, delta: float) -> float:
    """``(1/(2 sqrt n)) int sqrt(Var phi_sigma(y - X)) dy + diff * sqrt(log(1/delta) / (2 n))``, clipped at 1.

    The density-aware version of :func:`ambient_omni.theory.bounds.kde_tv_bound` (Jensen + McDiarmid;
    ``diff`` = the bounded difference of one sample times ``n``)."""
    std = np.sqrt(np.maximum(second - mean**2, 0.0))
    return float(min(1.0, 0.5 * std.sum() * cell / np.sqrt(n) + diff * np.sqrt(np.log(1.0 / delta) / (2.0 * n))))


def check_kde_1d(
    p: Measure1D, sigmas: Sequence[float], ns: Sequence[int], reps: int, seed: int = 0, delta: float = DEFAULT_DELTA
) -> dict[str, np.ndarray]:
    """Theorem 4.1 on a density on [0, 1]: ``d_TV(p_sigma, KDE_sigma(n samples))`` over ``reps`` draws.

    Returns arrays of shape ``(len(ns), len(sigmas))``: ``mean``/``max`` of the true distance, the
    explicit bound (:func:`kde_tv_bound`), the paper's rate with constant 1, and the density-aware
    variance bound (uses ``E phi_sigma(y-X)^2 = p_{sigma/sqrt 2}(y) / (2 sigma sqrt pi)``).
    """
    sig = np.asarray(sigmas, dtype=float)
    rng = np.random.default_rng(seed)
    shape = (len(ns), len(sig))
    out = {k: np.zeros(shape) for k in ("mean", "max", "explicit", "paper", "density_aware")}
    for j, s in enumerate(sig):
        y = _grid_1d([p], s)
        dy = y[1] - y[0]
        truth = p.noised(y, s)
        second = p.noised(y, s / np.sqrt(2.0)) / (2.0 * s * np.sqrt(np.pi))
        for i, n in enumerate(ns):
            dists = [tv_from_densities(truth, mixture_density_1d(y, p.sample(n, rng), np.full(n, 1.0 / n), s), dy) for _ in range(reps)]
            out["mean"][i, j], out["max"][i, j] = np.mean(dists), np.max(dists)
            out["explicit"][i, j] = kde_tv_bound(s, n, delta)
            out["paper"][i, j] = kde_tv_bound_rate(s, n, lipschitz=p.lipschitz, delta=delta)
            out["density_aware"][i, j] = _variance_bound(truth, second, dy, n, float(gaussian_shift_tv(1.0, s)), delta)
    out.update(sigma=sig, n=np.asarray(ns))
    return out


def check_kde_2d(
    p: Mixture2D, sigmas: Sequence[float], ns: Sequence[int], reps: int, seed: int = 0, delta: float = DEFAULT_DELTA
) -> dict[str, np.ndarray]:
    """The 2-D analogue: the density-aware variance bound (bounded difference ``1/n``, since the
    support is unbounded) against the true ``d_TV(p_sigma, KDE_sigma)``; shapes ``(len(ns), len(sigmas))``.
    In 2-D ``E phi_sigma(y-X)^2 = p_{sigma/sqrt 2}(y) / (4 pi sigma^2)``."""
    sig = np.asarray(sigmas, dtype=float)
    rng = np.random.default_rng(seed)
    shape = (len(ns), len(sig))
    out = {k: np.zeros(shape) for k in ("mean", "max", "density_aware")}
    for j, s in enumerate(sig):
        smooth = float(np.hypot(p.std, s))
        points, cell = _grid_2d(p.centers, smooth, _grid_size(s, float(np.ptp(p.centers)) + 14 * smooth))
        truth = p.density(points, s)
        second = p.density(points, s / np.sqrt(2.0)) / (4.0 * np.pi * s**2)
        for i, n in enumerate(ns):
            dists = []
            for _ in range(reps):
                kde = mixture_density_2d(points, p.sample(n, rng), np.full(n, 1.0 / n), s)
                dists.append(tv_from_densities(truth, kde, cell))
            out["mean"][i, j], out["max"][i, j] = np.mean(dists), np.max(dists)
            out["density_aware"][i, j] = _variance_bound(truth, second, cell, n, 1.0, delta)
    out.update(sigma=sig, n=np.asarray(ns))
    return out


def check_bias_variance_1d(
    p: Measure1D,
    q: Measure1D,
    n_clean: int,
    n_corrupted: int,
    sigmas: Sequence[float],
    reps: int,
    seed: int = 0,
    delta: float = DEFAULT_DELTA,
) -> dict[str, np.ndarray]:
    """True errors of Algorithm 1 (KDE of n1 clean) and Algorithm 2 (KDE of n1 clean + n2 corrupted)
    against ``p_sigma``, averaged over ``reps`` draws, next to both bounds (explicit KDE bound,
    sharp and plain contraction with ``D = 1``) and the exact bias ``(n2/N) d_TV(p_sigma, q_sigma)``."""
    sig = np.asarray(sigmas, dtype=float)
    rng = np.random.default_rng(seed)
    n_total = n_clean + n_corrupted
    frac = n_corrupted / n_total
    tv0 = tv_at_zero_1d(p, q)
    err1, err2, bias = np.zeros(len(sig)), np.zeros(len(sig)), np.zeros(len(sig))
    for j, s in enumerate(sig):
        y = _grid_1d([p, q], s)
        dy = y[1] - y[0]
        truth = p.noised(y, s)
        bias[j] = frac * tv_from_densities(truth, q.noised(y, s), dy)
        e1, e2 = [], []
        for _ in range(reps):
            clean = p.sample(n_clean, rng)
            mixed = np.concatenate([clean, q.sample(n_corrupted, rng)])
            e1.append(tv_from_densities(truth, mixture_density_1d(y, clean, np.full(n_clean, 1.0 / n_clean), s), dy))
            e2.append(tv_from_densities(truth, mixture_density_1d(y, mixed, np.full(n_total, 1.0 / n_total), s), dy))
        err1[j], err2[j] = np.mean(e1), np.mean(e2)
    return {
        "sigma": sig,
        "tv0": np.asarray(tv0),
        "true_clean": err1,
        "true_mixed": err2,
        "true_bias": bias,
        "bound_clean": kde_tv_bound(sig, n_clean, delta),
        "bound_mixed": np.minimum(1.0, frac * contraction_bound(sig, tv0, 1.0) + kde_tv_bound(sig, n_total, delta)),
        "bound_mixed_sharp": np.minimum(1.0, frac * contraction_bound_sharp(sig, tv0, 1.0) + kde_tv_bound(sig, n_total, delta)),
    }


def first_win(sigma: np.ndarray, clean: np.ndarray, mixed: np.ndarray) -> float:
    """Smallest grid sigma from which ``mixed < clean`` at every larger grid point (``inf`` if none)."""
    wins = mixed < clean
    if not wins[-1]:
        return float("inf")
    losing = np.flatnonzero(~wins)
    return float(sigma[0] if len(losing) == 0 else sigma[losing[-1] + 1])


def _save(fig: object, path: Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    atomic_write_bytes(path, buffer.getvalue())


def _loglog_panel(ax: object, title: str) -> None:
    ax.set_xscale("log")  # type: ignore[attr-defined]
    ax.set_yscale("log")  # type: ignore[attr-defined]
    ax.set_xlabel("sigma")  # type: ignore[attr-defined]
    ax.set_title(title, fontsize=9)  # type: ignore[attr-defined]
    ax.grid(True, which="both", alpha=0.3)  # type: ignore[attr-defined]
    ax.legend(fontsize=6)  # type: ignore[attr-defined]


def figure_contraction(path: Path, sigmas: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Theorem 4.2: point masses (D = 1), 1-D density pairs, 2-D mixtures, and true/bound ratios."""
    import matplotlib.pyplot as plt

    dens, mix = example_densities(), example_mixtures()
    results = {
        "point masses 0 vs 1": check_contraction_1d(point_mass(0.0), point_mass(1.0), sigmas),
        "triangle vs uniform": check_contraction_1d(dens["triangle"], dens["uniform"], sigmas),
        "bimodal vs blurred": check_contraction_1d(dens["bimodal"], dens["bimodal_blurred"], sigmas),
        "2-D mixture reweighted": check_contraction_2d(mix["p"], mix["q_weights"], sigmas),
        "2-D mixture shrunk": check_contraction_2d(mix["p"], mix["q_shrunk"], sigmas),
    }
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    groups = [list(results)[:1], list(results)[1:3], list(results)[3:]]
    titles = ["point masses at distance 1", "densities on [0, 1] (D = 1)", "2-D Gaussian mixtures (via centers)"]
    for ax, names, title in zip(axes[:3], groups, titles):
        for name in names:
            r = results[name]
            (line,) = ax.plot(r["sigma"], r["true"], "o-", ms=3, label=f"true: {name}")
            ax.plot(r["sigma"], r["bound"], "--", color=line.get_color(), label="Thm 4.2 bound")
            ax.plot(r["sigma"], r["sharp"], ":", color=line.get_color(), label="sharp (2 Phi - 1)")
        _loglog_panel(ax, title)
    for name, r in results.items():
        ok = r["true"] > 1e-12
        axes[3].loglog(r["sigma"][ok], r["true"][ok] / r["bound"][ok], "o-", ms=3, label=name)
    axes[3].axhline(np.sqrt(2 / np.pi), color="k", ls="--", lw=0.8, label="sqrt(2/pi)")
    axes[3].set_xlabel("sigma")
    axes[3].set_ylabel("true / bound")
    axes[3].set_title("looseness of Theorem 4.2", fontsize=9)
    axes[3].legend(fontsize=6)
    axes[3].grid(True, which="both", alpha=0.3)
    _save(fig, path)
    return results


def figure_kde(path: Path, sigmas_1d: np.ndarray, sigmas_2d: np.ndarray, ns_1d: Sequence[int], ns_2d: Sequence[int], reps: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Theorem 4.1: true KDE distances (mean over draws) and the bounds, 1-D bimodal and 2-D mixture."""
    import matplotlib.pyplot as plt

    one = check_kde_1d(example_densities()["bimodal"], sigmas_1d, ns_1d, reps, seed)
    two = check_kde_2d(example_mixtures()["p"], sigmas_2d, ns_2d, reps, seed)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for i, n in enumerate(ns_1d):
        (line,) = axes[0].plot(one["sigma"], one["mean"][i], "o-", ms=3, label=f"true, n={n}")
        axes[0].plot(one["sigma"], one["explicit"][i], "--", color=line.get_color(), label="explicit bound")
        axes[0].plot(one["sigma"], one["density_aware"][i], "-.", color=line.get_color(), lw=0.8, label="density-aware bound")
        axes[0].plot(one["sigma"], one["paper"][i], ":", color=line.get_color(), label="paper rate, C = 1")
    _loglog_panel(axes[0], "Thm 4.1, bimodal density on [0, 1] (delta = 0.05)")
    for i, n in enumerate(ns_2d):
        (line,) = axes[1].plot(two["sigma"], two["mean"][i], "o-", ms=3, label=f"true, n={n}")
        axes[1].plot(two["sigma"], two["density_aware"][i], "-.", color=line.get_color(), label="density-aware bound")
    _loglog_panel(axes[1], "KDE vs truth, 2-D Gaussian mixture")
    _save(fig, path)
    return {"1d": one, "2d": two}


def figure_bias_variance(path: Path, sigmas: np.ndarray, n_clean: int, n_corrupted: int, reps: int, seed: int) -> dict[str, np.ndarray]:
    """Bias-variance: true errors of both algorithms and their bounds on the bimodal example."""
    import matplotlib.pyplot as plt

    dens = example_densities()
    r = check_bias_variance_1d(dens["bimodal"], dens["bimodal_blurred"], n_clean, n_corrupted, sigmas, reps, seed)
    r["true_crossing"] = np.asarray(first_win(r["sigma"], r["true_clean"], r["true_mixed"]))
    r["bound_crossing"] = np.asarray(first_win(r["sigma"], r["bound_clean"], r["bound_mixed"]))
    fig, ax = plt.subplots(figsize=(6.8, 4.5))
    ax.plot(r["sigma"], r["true_clean"], "o-", ms=3, color="C0", label=f"true, clean only (n1={n_clean})")
    ax.plot(r["sigma"], r["true_mixed"], "o-", ms=3, color="C1", label=f"true, clean + blurred (n2={n_corrupted})")
    ax.plot(r["sigma"], r["true_bias"], "x:", ms=3, color="C2", label="true bias (n2/N) d_TV(p_s, q_s)")
    ax.plot(r["sigma"], r["bound_clean"], "--", color="C0", label="bound, clean only")
    ax.plot(r["sigma"], r["bound_mixed"], "--", color="C1", label="bound, mixed (Thm 4.2)")
    for key, style in (("true_crossing", "-"), ("bound_crossing", "--")):
        if np.isfinite(r[key]):
            ax.axvline(float(r[key]), color="k", ls=style, lw=0.7, label=f"{key.replace('_', ' ')} = {float(r[key]):.3g}")
    _loglog_panel(ax, "bias-variance, bimodal p0 vs blurred q0 (tv0 = %.3f)" % float(r["tv0"]))
    _save(fig, path)
    return r


def write_check_figures(out_dir: str | Path, quick: bool = False, seed: int = 0) -> dict[str, object]:
    """Run all checks and write ``theory_contraction.png``, ``theory_kde.png``,
    ``theory_bias_variance.png`` into ``out_dir``; return the numbers (for a JSON summary).
    ``quick`` uses coarse grids (seconds instead of minutes)."""
    out = Path(out_dir)
    num = 6 if quick else 13
    reps = 2 if quick else 4
    contraction = figure_contraction(out / "theory_contraction.png", np.geomspace(0.01, 100, num))
    kde = figure_kde(
        out / "theory_kde.png",
        np.geomspace(0.01, 10, num),
        np.geomspace(0.05, 5, max(4, num - 4)),
        [10, 100] if quick else [10, 100, 1000],
        [10, 100] if quick else [10, 100, 1000],
        reps,
        seed,
    )
    bias_variance = figure_bias_variance(out / "theory_bias_variance.png", np.geomspace(0.005, 10, num + 4), 500, 4500, reps, seed)
    return {"contraction": contraction, "kde": kde, "bias_variance": bias_variance}
