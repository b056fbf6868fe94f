"""Pictures of the annotation procedures (PNG): P(clean) vs sigma curves (paper Figure 2), sigma_min
histogram, locality curves (Figures 15-18), per-crop in-distribution probabilities (Figure 5)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ambient_omni.annotate import curves


def _figure(ncols: int = 1, nrows: int = 1, size: tuple[float, float] = (5.0, 3.6)):  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    return plt, fig, axes


def plot_curves(path: str | os.PathLike, sigmas: np.ndarray, raw: np.ndarray, sigma_min: Sequence[float],
                labels: Sequence[str], tau: float, span: float) -> None:
    """Raw (draw-averaged) and EMA-smoothed P(clean) vs sigma per image, tau and the chosen sigma_min."""
    plt, fig, axes = _figure()
    ax = axes[0, 0]
    smooth = curves.ema(raw, curves.ema_alpha(span))
    for k, label in enumerate(labels):
        line = ax.plot(sigmas, smooth[k], lw=1.5, label=f"{label}: sigma_min={sigma_min[k]:.3g}")[0]
        ax.plot(sigmas, raw[k], lw=0.3, alpha=0.4, color=line.get_color())
        ax.axvline(sigma_min[k], color=line.get_color(), ls=":", lw=1)
    ax.axhline(tau, color="k", ls="--", lw=1, label=f"tau = {tau}")
    ax.set(xscale="log", xlabel="sigma", ylabel="P(clean | x_t)", title="Noise-conditional classifier")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_histogram(path: str | os.PathLike, values: np.ndarray, title: str = "sigma_min of annotated images") -> None:
    """Histogram of finite positive values on a log axis."""
    plt, fig, axes = _figure()
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size:
        axes[0, 0].hist(v, bins=np.geomspace(v.min(), v.max() * 1.0001, 30))
        axes[0, 0].set_xscale("log")
    axes[0, 0].set(xlabel="sigma", ylabel="images", title=f"{title} (n={v.size})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def crop_map_points(report: Mapping) -> tuple[list[int], list[float]]:
    """The crop size -> sigma_max map as increasing crop sizes and their sigma_max (JSON keys are text,
    so their own order would put "10" before "4")."""
    pairs = sorted((int(k), float(v)) for k, v in report["crop_to_sigma_max"].items())
    return [c for c, _ in pairs], [v for _, v in pairs]


def plot_locality(path: str | os.PathLike, report: Mapping) -> None:
    """Patch error vs crop size for each sigma (with the full-context level) and the crop -> sigma_max map."""
    plt, fig, axes = _figure(2)
    err = np.asarray(report["errors"])
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.95, len(report["sigmas"])))  # one colour per sigma
    for i, sigma in enumerate(report["sigmas"]):
        axes[0, 0].plot(report["crop_sizes"], err[i], marker="o", ms=3, color=colors[i], label=f"sigma={sigma:.3g}")
        axes[0, 0].axhline(report["full_errors"][i], color=colors[i], ls=":", lw=0.8)
    axes[0, 0].set(xlabel="context (crop) size", ylabel="centre-patch MSE", yscale="log", title="Locality")
    axes[0, 0].legend(fontsize=6)
    axes[0, 1].plot(*crop_map_points(report), marker="o")
    axes[0, 1].set(xlabel="crop size", ylabel="sigma_max", title="crop size -> sigma_max")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_crop_probabilities(path: str | os.PathLike, image: np.ndarray, per_crop: Mapping[int, np.ndarray],
                            threshold: float) -> None:
    """One image and, per crop size, the map of per-crop P(target) (paper Figure 5)."""
    plt, fig, axes = _figure(len(per_crop) + 1, size=(3.0, 3.0))
    img = np.asarray(image)
    axes[0, 0].imshow(img[0] if img.shape[0] == 1 else np.transpose((img + 1) / 2, (1, 2, 0)).clip(0, 1),
                      cmap="gray", vmin=-1, vmax=1)
    axes[0, 0].set_title("image")
    for ax, (size, probs) in zip(axes[0, 1:], sorted(per_crop.items())):
        im = ax.imshow(probs, vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"C={size}: mean {probs.mean():.2f} ({'>' if probs.mean() > threshold else '<='} {threshold})", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
