"""Figures of a report, each returned as PNG bytes (matplotlib, no display needed).

- training-loss curves (per-sample loss mean versus images seen, one line per run);
- the sigma_min histogram of an annotation table (finite sigma_min > 0, log axis);
- data availability versus sigma (the paper's Figure 14): for each sigma on a log grid, how many
  images are admissible, ``sigma > b sigma_min`` or ``sigma <= sigma_max``, stacked by provenance.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

from ambient_omni.data.admissibility import admissible_mask  # noqa: E402
from ambient_omni.data.annotations import AnnotationTable  # noqa: E402


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (shorter at the start)."""
    if window <= 1 or len(values) == 0:
        return values
    csum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (csum[idx] - csum[lo]) / (idx - lo)


def loss_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], ylabel: str = "loss (per-sample mean)",
                title: str = "") -> bytes:
    """Loss (smoothed over ~5% of the points) versus images seen; one line per named run."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, (images, loss) in curves.items():
        ax.plot(images, smooth(np.asarray(loss, float), max(1, len(loss) // 20)), label=name, lw=1.3)
    ax.set_xlabel("training images seen")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=7)
    return _png(fig)


_MANTISSAS = ((1, 1.5, 2, 3, 5, 7), (1, 2, 3, 5), (1, 2, 5), (1, 3), (1,))


def log_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Tick positions ``m 10^e`` in ``[lo, hi]`` for a log axis: the densest mantissa set of
    :data:`_MANTISSAS` with at most ``most`` ticks (at least the powers of ten)."""
    exponents = range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 1)
    for mantissas in _MANTISSAS:
        ticks = [t for e in exponents for m in mantissas if lo <= (t := float(f"{m:g}e{e}")) <= hi]
        if len(ticks) <= most:
            break
    return ticks


def _plain_log_axis(ax: plt.Axes, lo: float, hi: float) -> None:
    """Log x axis with a few plainly written ticks (``0.5``, ``2``) and unlabelled minor ticks: matplotlib's
    default labels every minor tick when the range spans under a decade, and the labels overlap."""
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(ticker.FixedLocator(log_ticks(lo, hi)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def sigma_min_figure(table: AnnotationTable, title: str = "") -> plt.Figure:
    """The figure of :func:`sigma_min_histogram` (for tests that inspect it)."""
    values = table.sigma_min[np.isfinite(table.sigma_min) & (table.sigma_min > 0)]
    fig, ax = plt.subplots(figsize=(5.4, 3.4))
    if values.size:
        lo, hi = max(values.min() * 0.9, 1e-3), values.max() * 1.1 + 1e-9
        ax.hist(values, bins=np.geomspace(lo, hi, 40), color="#4477aa")
        _plain_log_axis(ax, lo, hi)
        ax.axvline(float(np.mean(values)), color="k", ls="--", lw=1, label=f"mean {np.mean(values):.3f}")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no image with 0 < sigma_min < inf", ha="center", va="center", transform=ax.transAxes)
    n_clean = int((table.sigma_min == 0).sum())
    ax.set_title(title or f"sigma_min of {values.size} images ({n_clean} clean, sigma_min = 0, not shown)", fontsize=9)
    ax.set_xlabel("sigma_min")
    ax.set_ylabel("images")
    return fig


def sigma_min_histogram(table: AnnotationTable, title: str = "") -> bytes:
    """Histogram of the finite, positive sigma_min of ``table`` on log-spaced bins (PNG)."""
    return _png(sigma_min_figure(table, title))


def provenance_kinds(table: AnnotationTable, provenance: Sequence[str] | None = None) -> list[str]:
    """Group label per row: the provenance kind (``clean``/``corrupted``/``synthetic``/``ood``) when known,
    else the kind implied by the annotation (clean: sigma_min = 0; low-quality: finite sigma_min;
    out-of-distribution: sigma_min = inf)."""
    if provenance is None and all("provenance" in e for e in table.extra):
        provenance = [e["provenance"] for e in table.extra]
    if provenance is not None:
        return [str(p).split(":", 1)[0] for p in provenance]
    return ["clean" if lo == 0 else ("corrupted" if np.isfinite(lo) else "ood") for lo in table.sigma_min]


def availability(table: AnnotationTable, sigmas: np.ndarray, buffer_s: float = 4.0,
                 provenance: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Admissible-image counts per sigma, split by provenance kind: ``{kind: counts (len(sigmas),)}``."""
    kinds = np.array(provenance_kinds(table, provenance))
    masks = np.stack([admissible_mask(table, float(s), buffer_s) for s in sigmas])  # (S, N)
    return {kind: masks[:, kinds == kind].sum(axis=1) for kind in sorted(set(kinds.tolist()))}


def availability_plot(table: AnnotationTable, buffer_s: float = 4.0, provenance: Sequence[str] | None = None,
                      sigmas: np.ndarray | None = None) -> bytes:
    """Stacked area plot of :func:`availability` over sigma in [0.002, 80] (log axis)."""
    sigmas = np.geomspace(0.002, 80, 200) if sigmas is None else sigmas
    counts = availability(table, sigmas, buffer_s, provenance)
    colors = {"clean": "#228833", "corrupted": "#ee6677", "synthetic": "#ccbb44", "ood": "#4477aa"}
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.stackplot(sigmas, *counts.values(), labels=list(counts), colors=[colors.get(k, "#bbbbbb") for k in counts])
    ax.set_xscale("log")
    ax.set_xlabel("sigma")
    ax.set_ylabel("admissible images")
    ax.set_title(f"data availability versus noise level (buffer s = {buffer_s:g})", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)
