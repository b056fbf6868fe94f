"""Sanity check of the whole sigma_min chain on a corruption whose right answer is known (paper Table 7).

Additive Gaussian noise of std ``s`` is the one corruption where the ideal sigma_min is known: a noisy
image ``y = x + s z`` can stand in for a clean one at every level ``sigma_t >= s``. One check, for one
``s``:

1. ``train_images`` Fashion-MNIST train images stay clean and as many others get ``noise:std=s``
   (``clip = false``, kept in float: a uint8 dataset folder would clip the noise on the black
   background, std 0.05 / 0.1 / 0.2 becoming 0.041 / 0.082 / 0.161);
2. a noise-conditional classifier learns clean versus noisy (balanced batches, the shared Trainer);
3. ``annotate`` held-out TEST images, noised the same way, get sigma_min by the fast search, and the
   first ``dense`` of them by the authors' dense procedure too, on a grid drawn from the classifier's
   own training log-normal ``(p_mean, p_std)`` (the classifier says nothing reliable elsewhere);
4. reported: mean and median sigma_min against ``s`` (the paper: 0.058 / 0.102 / 0.179 for
   0.05 / 0.1 / 0.2), fast-versus-dense agreement, classifier calls per image, and the classifier's
   accuracy at ``sigma = s/2, s, 2s, 4s``.

The image split and the noise come from ``data_seed``; the classifier's training from ``seed``.
Used by the ``noise-check`` bench method (recipe ``noise-sanity``) and ``scripts/noise_sanity.py``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ambient_omni.annotate import curves, noise
from ambient_omni.annotate.classifier_task import accuracy_at, train_classifier
from ambient_omni.data.corruptions import parse_corruption
from ambient_omni.data.readers import read_fashion_mnist
from ambient_omni.files import read_json
from ambient_omni.networks.registry import preset_config
from ambient_omni.training.checkpoint import load_model

HELD_OUT_ID_OFFSET = 10**6
"""Corruption ids of the held-out test images, apart from the training images' ids ``0..n-1``."""


@dataclass(frozen=True)
class NoiseCheckConfig:
    """One noise level's check. ``p_mean``/``p_std``: the log-normal of the classifier's training sigmas."""

    std: float
    train_images: int = 5000
    preset: str = "fmnist-classifier-small"
    steps: int = 1000
    batch: int = 64
    lr: float = 5e-4
    p_mean: float = -3.5
    p_std: float = 1.0
    annotate: int = 100
    dense: int = 20
    eval_batch: int = 2048
    seed: int = 0
    data_seed: int = 0

    @classmethod
    def from_cell(cls, cfg: dict[str, Any]) -> "NoiseCheckConfig":
        """From a bench cell: ``noise_std``, ``seed``, ``data_seed`` and the ``[check]`` table."""
        if "noise_std" not in cfg:
            raise ValueError("a noise-check cell needs 'noise_std' (the std of the added Gaussian noise)")
        check = dict(cfg.get("check", {}))
        known = {f.name for f in fields(cls)} - {"std", "seed", "data_seed"}
        if unknown := sorted(set(check) - known):
            raise ValueError(f"[check] option(s) {', '.join(unknown)} unknown; known: {', '.join(sorted(known))}")
        return cls(std=float(cfg["noise_std"]), seed=int(cfg.get("seed", 0)), data_seed=int(cfg.get("data_seed") or 0),
                   **check)


def noisy_split(cfg: NoiseCheckConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(clean train, noisy train, held-out test, the same test images noised)`` as float tensors: the clean
    ones in [-1, 1], the noisy ones unclamped (``y = x + std * z`` may leave [-1, 1])."""
    train, test = read_fashion_mnist("train").images, read_fashion_mnist("test").images
    if 2 * cfg.train_images > len(train):
        raise ValueError(f"train_images {cfg.train_images}: at most {len(train) // 2} (half clean, half noisy)")
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.data_seed))[: 2 * cfg.train_images]
    clean, to_corrupt = train[perm[: cfg.train_images]], train[perm[cfg.train_images :]]
    corrupt = parse_corruption(f"noise:std={cfg.std},clip=false")
    held = test[: cfg.annotate]
    return (clean, corrupt(to_corrupt, torch.arange(len(to_corrupt)), cfg.data_seed), held,
            corrupt(held, torch.arange(len(held)) + HELD_OUT_ID_OFFSET, cfg.data_seed))


def run_noise_check(cfg: NoiseCheckConfig, out: str | Path) -> dict[str, Any]:
    """Train the classifier of one noise level into ``out/classifier`` (resumable), annotate, and return
    the figures; the raw dense curves go to ``out/curves.npz`` (``dense = 0``: no dense reference)."""
    out = Path(out)
    clean, noisy, held, held_noisy = noisy_split(cfg)
    t0 = time.time()
    model_dir = train_classifier(preset_config(cfg.preset), clean, noisy, out / "classifier", steps=cfg.steps,
                                 batch_size=cfg.batch, lr=cfg.lr, lr_rampup_images=1000, p_mean=cfg.p_mean,
                                 p_std=cfg.p_std, ema_halflife_images=2000, checkpoint_every=200, log_every=50,
                                 seed=cfg.seed, device="cpu", progress=False, info={"noise_std": cfg.std})
    train_s = time.time() - t0
    clf = load_model(model_dir)
    acc = {f"{k:g}": accuracy_at(clf, held[:200], held_noisy[:200], k * cfg.std, torch.Generator().manual_seed(1))
           for k in (0.5, 1.0, 2.0, 4.0)}
    prob = noise.classifier_prob_fn(clf, torch.device("cpu"))
    ids = np.arange(len(held))
    acfg = noise.NoiseAnnotationConfig(method="fast", seed=cfg.seed, p_mean=cfg.p_mean, p_std=cfg.p_std)
    t0 = time.time()
    fast, calls = noise.annotate_images(prob, held_noisy, ids, acfg, cfg.eval_batch)
    fast_s = time.time() - t0
    result = {
        "true_std": cfg.std, "mean_sigma_min": float(fast.mean()), "median_sigma_min": float(np.median(fast)),
        "mean_over_std": float(fast.mean() / cfg.std), "calls_per_image": float(calls.mean()),
        "max_calls_per_image": int(calls.max()),
        "dense_calls_per_image": acfg.grid_size * acfg.draws, "accuracy_at_std_multiple": acc,
        "classifier_accuracy": read_json(out / "classifier" / "check.json")["accuracy"],
        **{f"{k}_share": v for k, v in noise.edge_shares(fast, acfg.grid()).items()},
        "n_fast": len(fast), "train_seconds": train_s, "annotate_seconds": fast_s,
        "config": asdict(cfg),
    }
    if cfg.dense > 0:
        p, sigmas = noise.dense_curves(prob, held_noisy[: cfg.dense], ids[: cfg.dense], acfg, cfg.eval_batch)
        dense = curves.dense_sigma_min(p, sigmas, acfg.tau, acfg.span)
        np.savez_compressed(out / "curves.npz", p=p, sigmas=sigmas, fast=fast, dense=dense)
        agreement = curves.log_ratio_stats(fast[: cfg.dense], dense)
        result.update({"dense_mean_sigma_min": float(dense.mean()), "n_dense": len(dense),
                       "fast_vs_dense_median": agreement["median_abs_log_ratio"],
                       "fast_vs_dense_p95": agreement["p95_abs_log_ratio"]})
    return result


def summary_line(r: dict[str, Any]) -> str:
    """One printed line per noise level: the pair the paper's Table 7 reports, then the rest."""
    dense = (f"dense {r['dense_mean_sigma_min']:.4f} (n={r['n_dense']}); fast vs dense median |log ratio| "
             f"{r['fast_vs_dense_median']:.4f}, p95 {r['fast_vs_dense_p95']:.4f}; " if "n_dense" in r else "")
    return (f"std {r['true_std']:g}: mean sigma_min {r['mean_sigma_min']:.4f} ({r['mean_over_std']:.2f} x std; "
            f"median {r['median_sigma_min']:.4f}, n={r['n_fast']}); {dense}calls/image {r['calls_per_image']:.0f} "
            f"(max {r['max_calls_per_image']}) vs dense {r['dense_calls_per_image']}; "
            f"accuracy at k x std {r['accuracy_at_std_multiple']}")
