"""Empirical counterpart of Theorem 4.2 on images: how distinguishable clean and blurred images stay
as noise grows.

A classifier's held-out accuracy on balanced classes lower-bounds the distance:
``d_TV(p_sigma, q_sigma) >= 2 acc - 1`` (:func:`ambient_omni.theory.bounds.accuracy_to_tv`).
:func:`compare_with_contraction` turns ANY accuracy-vs-sigma curve (for instance the project's
``NoiseClassifier``) into that lower bound and puts it next to Theorem 4.2:
``min(1, tv0 * D / (2 sigma))`` with ``tv0 = 1`` and the image-set diameter ``D``, and the
``1/sigma`` shape anchored at the smallest measured sigma (a heuristic, not a bound).
:func:`measure_blur_distinguishability` is a classifier-free estimate computed here: one small CNN
per sigma trained on noisy clean vs noisy blurred Fashion-MNIST images.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ambient_omni.errors import AmbientError
from ambient_omni.files import atomic_write_bytes
from ambient_omni.theory.bounds import accuracy_to_tv, contraction_bound


def compare_with_contraction(
    sigmas: Sequence[float], accuracies: Sequence[float], diameter: float | None = None, n_test: int | None = None
) -> dict[str, np.ndarray]:
    """Accuracy curve -> ``tv_lower = max(0, 2 acc - 1)``, next to Theorem 4.2's predictions.

    ``anchored = tv_lower[0] * sigma[0] / sigma`` (the bound's ``1/sigma`` shape through the first
    point); ``bound = min(1, D / (2 sigma))`` when ``diameter`` is given (``tv0 <= 1``);
    ``slope`` = least-squares log-log slope of ``tv_lower`` over the points with
    ``0.02 < tv_lower < 0.98`` (Theorem 4.2 only bounds from above, so the slope must end up
    ``<= -1``; ``-1`` would mean the bound's shape is attained). ``stderr`` = binomial standard error
    of ``2 acc - 1`` when ``n_test`` is given.
    """
    sig = np.asarray(sigmas, dtype=float)
    acc = np.asarray(accuracies, dtype=float)
    if sig.shape != acc.shape or sig.ndim != 1 or len(sig) < 2 or np.any(np.diff(sig) <= 0):
        raise AmbientError("need increasing sigmas and one accuracy per sigma (at least two points)")
    tv = accuracy_to_tv(acc)
    out = {"sigma": sig, "accuracy": acc, "tv_lower": tv, "anchored": tv[0] * sig[0] / sig}
    if diameter is not None:
        out["bound"] = contraction_bound(sig, 1.0, diameter)
        out["diameter"] = np.asarray(diameter)
    if n_test is not None:
        out["stderr"] = 2.0 * np.sqrt(acc * (1.0 - acc) / n_test)
    mid = (tv > 0.02) & (tv < 0.98)
    out["slope"] = np.asarray(np.polyfit(np.log(sig[mid]), np.log(tv[mid]), 1)[0] if mid.sum() >= 2 else np.nan)
    return out


@dataclass(frozen=True)
class EmpiricalConfig:
    """Sizes of the classifier-free experiment. Defaults run in a few minutes on 2 CPU cores."""

    sigmas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
    n_train: int = 4000
    n_test: int = 2000
    blur: float = 1.0
    epochs: int = 2
    batch: int = 32
    lr: float = 3e-3
    channels: int = 8
    seed: int = 0

    @classmethod
    def quick(cls) -> "EmpiricalConfig":
        """Tiny sizes for smoke tests."""
        return cls(sigmas=(0.1, 1.0, 4.0), n_train=256, n_test=256, epochs=1, channels=4)

    def with_options(self, **changes: object) -> "EmpiricalConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


def _blur(images: "torch.Tensor", sigma_b: float) -> "torch.Tensor":  # noqa: F821
    """Gaussian blur with std ``sigma_b`` pixels (kernel size ``2 ceil(3 sigma_b) + 1``, reflect padding)."""
    import kornia

    size = 2 * int(np.ceil(3.0 * sigma_b)) + 1
    return kornia.filters.gaussian_blur2d(images, (size, size), (sigma_b, sigma_b), border_type="reflect")


def _make_classifier(channels: int) -> "torch.nn.Module":  # noqa: F821
    """Two 3x3 convolutions + ReLU, global average pooling, one logit (a local high-frequency detector)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * channels, 1),
    )


def _split(images: np.ndarray, config: EmpiricalConfig) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor", "torch.Tensor"]:  # noqa: F821
    """Disjoint images for each class and split: clean and blurred never share a source image."""
    import torch

    from ambient_omni.data.imageset import from_uint8

    half_train, half_test = config.n_train // 2, config.n_test // 2
    need = 2 * (half_train + half_test)
    if len(images) < need:
        raise AmbientError(f"the image file holds {len(images)} images; this configuration needs {need}")
    x = from_uint8(images[:need].copy()).unsqueeze(1)
    parts = torch.split(x, [half_train, half_train, half_test, half_test])
    clean_train, blur_train, clean_test, blur_test = parts
    x_train = torch.cat([clean_train, _blur(blur_train, config.blur)])
    x_test = torch.cat([clean_test, _blur(blur_test, config.blur)])
    y_train = torch.cat([torch.ones(half_train), torch.zeros(half_train)])
    y_test = torch.cat([torch.ones(half_test), torch.zeros(half_test)])
    return x_train, y_train, x_test, y_test


def _train_and_test(data: tuple, sigma: float, index: int, config: EmpiricalConfig) -> float:
    """Train one classifier on ``x + sigma * eps`` (fresh noise each epoch); return held-out accuracy
    on fixed noise. Inputs are scaled by ``1 / sqrt(sigma^2 + 0.25)`` (EDM's c_in, sigma_data = 0.5)."""
    import torch

    x_train, y_train, x_test, y_test = data
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + index)
    model = _make_classifier(config.channels)
    for param in model.parameters():  # initialised from ``gen``, never from the global RNG
        if param.ndim > 1:
            torch.nn.init.kaiming_normal_(param, nonlinearity="relu", generator=gen)
        else:
            torch.nn.init.zeros_(param)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    scale = 1.0 / float(np.sqrt(sigma**2 + 0.25))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(config.epochs):
        order = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(order), config.batch):
            idx = order[start : start + config.batch]
            noisy = (x_train[idx] + sigma * torch.randn(x_train[idx].shape, generator=gen)) * scale
            loss = loss_fn(model(noisy).squeeze(1), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        noisy = (x_test + sigma * torch.randn(x_test.shape, generator=gen)) * scale
        predictions = (model(noisy).squeeze(1) > 0).float()
    return float((predictions == y_test).float().mean())


def measure_blur_distinguishability(images_path: str | Path, config: EmpiricalConfig = EmpiricalConfig()) -> dict[str, np.ndarray]:
    """Held-out accuracy of a fresh small CNN per sigma (clean vs blurred, balanced), then
    :func:`compare_with_contraction` with ``D`` = the largest pairwise distance among the test images
    (an estimate from below of the support's diameter)."""
    import torch
    from tqdm import tqdm

    from ambient_omni.data.readers import read_idx

    data = _split(read_idx(images_path, 3), config)
    x_test = data[2].flatten(1)
    diameter = float(torch.cdist(x_test, x_test).max())
    accuracies = [
        _train_and_test(data, s, i, config) for i, s in enumerate(tqdm(config.sigmas, desc="sigma", unit="classifier"))
    ]
    out = compare_with_contraction(config.sigmas, accuracies, diameter=diameter, n_test=config.n_test)
    out["blur"] = np.asarray(config.blur)
    return out


def plot_empirical(curve: dict[str, np.ndarray], path: str | Path) -> None:
    """Log-log plot of the measured ``2 acc - 1`` against the Theorem 4.2 curves; PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sig, tv = curve["sigma"], curve["tv_lower"]
    fig, ax = plt.subplots(figsize=(6.4, 4.3))
    err = curve.get("stderr")
    ax.errorbar(sig, np.maximum(tv, 1e-4), yerr=err, fmt="o-", ms=4, capsize=2, label="measured 2 acc - 1 (lower bound on d_TV)")
    ax.plot(sig, curve["anchored"], "--", label="Thm 4.2 shape, anchored at smallest sigma")
    if "bound" in curve:
        ax.plot(sig, curve["bound"], ":", label=f"Thm 4.2 bound, tv0 <= 1, D = {float(curve['diameter']):.1f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 1.5)
    ax.set_xlabel("sigma (images in [-1, 1])")
    ax.set_ylabel("d_TV(clean_sigma, blurred_sigma)")
    title = "clean vs blurred Fashion-MNIST"
    if "blur" in curve:
        title += f" (sigma_B = {float(curve['blur']):g})"
    ax.set_title(f"{title}; fitted slope {float(curve['slope']):.2f}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
