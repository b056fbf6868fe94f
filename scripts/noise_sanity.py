"""Sanity check of the noise-conditional classifier annotations (paper Table 7), plus the fast-vs-dense
agreement study on the same real classifiers.

For each std s: Fashion-MNIST train images, half kept clean, half corrupted with additive Gaussian
noise ``noise:std=s`` (clip=false, in memory: no uint8 clipping); a small classifier is trained with
the shared Trainer; held-out TEST images corrupted the same way are annotated with the fast method
(``--annotate`` images) and the dense reference (the first ``--dense`` of them). Prints, per s:
mean sigma_min (fast, dense), agreement of fast with dense, classifier calls per image; writes
``results.json`` and the raw dense curves (``curves-std<s>.npz``) to ``--out``.

Example (what the report quotes):
    .venv/bin/python scripts/noise_sanity.py --out runs/noise_sanity5 --stds 0.05 --steps 1000 --annotate 100 --dense 20
    .venv/bin/python scripts/noise_sanity.py --out runs/noise_sanity2 --stds 0.1,0.2 --p-mean -2.5 --lr 2e-3 \
        --steps 1000 --annotate 100 --dense 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ambient_omni.annotate import curves, noise
from ambient_omni.annotate.classifier_task import accuracy_at, train_classifier
from ambient_omni.data.corruptions import parse_corruption
from ambient_omni.data.readers import read_fashion_mnist
from ambient_omni.networks.registry import preset_config
from ambient_omni.training.checkpoint import load_model


def run_level(std: float, args: argparse.Namespace, train: torch.Tensor, test: torch.Tensor) -> dict:
    """Train a classifier for noise ``std`` and annotate held-out noisy test images."""
    gen = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(len(train), generator=gen)[: 2 * args.train_images]
    clean, to_corrupt = train[perm[: args.train_images]], train[perm[args.train_images :]]
    corrupt = parse_corruption(f"noise:std={std}")
    corrupted = corrupt(to_corrupt, torch.arange(len(to_corrupt)), args.seed)
    t0 = time.time()
    model_dir = train_classifier(preset_config(args.preset), clean, corrupted, args.out / f"clf-std{std}",
                                 steps=args.steps, batch_size=args.batch, lr=args.lr, lr_rampup_images=1000,
                                 p_mean=args.p_mean, p_std=args.p_std,
                                 ema_halflife_images=2000, checkpoint_every=200, log_every=50, seed=args.seed,
                                 device="cpu", progress=False, info={"noise_std": std})
    train_s = time.time() - t0
    clf = load_model(model_dir)
    held = test[: args.annotate]
    held_noisy = corrupt(held, torch.arange(len(held)) + 10**6, args.seed)
    acc = {s: accuracy_at(clf, held[:200], held_noisy[:200], s, torch.Generator().manual_seed(1))
           for s in (0.01, std / 2, std, 2 * std, 4 * std)}
    prob = noise.classifier_prob_fn(clf, torch.device("cpu"))
    ids = np.arange(len(held))
    t0 = time.time()
    fast_cfg = noise.NoiseAnnotationConfig(method="fast", seed=args.seed)
    fast, calls = noise.annotate_images(prob, held_noisy, ids, fast_cfg, args.eval_batch)
    fast_s = time.time() - t0
    t0 = time.time()
    p, sigmas = noise.dense_curves(prob, held_noisy[: args.dense], ids[: args.dense], fast_cfg, args.eval_batch)
    dense_s = time.time() - t0
    dense = curves.dense_sigma_min(p, sigmas)
    np.savez_compressed(args.out / f"curves-std{std}.npz", p=p, sigmas=sigmas, fast=fast, dense=dense)
    return {
        "std": std, "train_seconds": train_s, "accuracy_at_sigma": acc,
        "fast_mean_sigma_min": float(fast.mean()), "fast_median_sigma_min": float(np.median(fast)),
        "dense_mean_sigma_min": float(dense.mean()), "n_fast": len(fast), "n_dense": len(dense),
        "fast_calls_per_image_mean": float(calls.mean()), "fast_calls_per_image_max": int(calls.max()),
        "dense_calls_per_image": fast_cfg.grid_size * fast_cfg.draws,
        "fast_seconds": fast_s, "dense_seconds": dense_s,
        "agreement": curves.log_ratio_stats(fast[: args.dense], dense),
        "fast_rel_error_of_mean": float(fast.mean() / std - 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stds", default="0.05,0.1,0.2")
    parser.add_argument("--train-images", type=int, default=5000, help="clean images (and as many corrupted)")
    parser.add_argument("--preset", default="fmnist-classifier-small", help="classifier network preset")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--p-mean", type=float, default=-3.5,
                        help="log-normal mean of the classifier's training sigmas (docs/RESULTS.md section 3: "
                             "which settings left the classifier at chance)")
    parser.add_argument("--p-std", type=float, default=1.0, help="log-normal std of the training sigmas")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4,
                        help="learning rate (at 2e-3 the std 0.05 classifier stayed at chance)")
    parser.add_argument("--annotate", type=int, default=200)
    parser.add_argument("--dense", type=int, default=60)
    parser.add_argument("--eval-batch", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    train, test = read_fashion_mnist("train").images, read_fashion_mnist("test").images
    results = []
    for std in (float(s) for s in args.stds.split(",")):
        results.append(run_level(std, args, train, test))
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
        r = results[-1]
        print(f"std {std}: mean sigma_min fast {r['fast_mean_sigma_min']:.4f} (n={r['n_fast']}), "
              f"dense {r['dense_mean_sigma_min']:.4f} (n={r['n_dense']}); fast vs dense median |log ratio| "
              f"{r['agreement']['median_abs_log_ratio']:.4f}, p95 {r['agreement']['p95_abs_log_ratio']:.4f}; "
              f"calls/image fast {r['fast_calls_per_image_mean']:.0f} (max {r['fast_calls_per_image_max']}) "
              f"vs dense {r['dense_calls_per_image']}; acc {r['accuracy_at_sigma']}", flush=True)
    pooled_fast = np.concatenate([np.load(args.out / f"curves-std{r['std']}.npz")["fast"][: r["n_dense"]] for r in results])
    pooled_dense = np.concatenate([np.load(args.out / f"curves-std{r['std']}.npz")["dense"] for r in results])
    print("pooled fast vs dense:", curves.log_ratio_stats(pooled_fast, pooled_dense), flush=True)


if __name__ == "__main__":
    main()
