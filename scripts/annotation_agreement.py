"""Fast-versus-dense sigma_min agreement on real Fashion-MNIST data (issue 4's acceptance figures).

1. The demo's dataset (100 clean + 2,900 blurred sigma_B = 1 Fashion-MNIST train images) and its noise
   classifier (the demo's settings), both built once under ``--out`` (or ``--classifier RUN``, or another
   recipe cell's dataset and classifier with ``--recipe NAME --cell CELL``).
2. Held-out images: the first ``--images`` Fashion-MNIST TEST images, blurred the same way.
3. The dense reference curves (2048 sigmas x 4 draws) of every held-out image, saved to
   ``--out/dense-curves.npz``; the dense sigma_min from them.
4. The fast search on the same images: simulated on the saved curves (the fast search reads only
   the points it would measure, with the same noise draws), and run for real on the first
   ``--check`` images to confirm the simulation. Prints median and 95th percentile of
   ``|log(sigma_fast / sigma_dense)|`` and the classifier calls per image, for all images and for
   the two halves.
5. Two-fold cross-validation of the search settings (``--cv``): over a grid of stride / window /
   back / margin, pick the settings with the lowest 95th percentile on one half and report them on
   the other half (and vice versa). The defaults of the fast search were picked on all images, so
   their figures above are in-sample; the cross-validated figures are the honest estimate.
6. The fast inference paths (``--paths bf16,bf16+compile``): the real fast search on every image with the
   classifier in bf16 autocast (and ``torch.compile``), scored against the same float32 dense reference, so
   their agreement can be set beside the float32 search's and the reference's own (``--self-check``).

Example (what docs/RESULTS.md quotes):
    .venv/bin/python scripts/annotation_agreement.py --out runs/agreement --images 160 --cv --self-check 40
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from ambient_omni.annotate import curves, noise
from ambient_omni.cli.benchmark_annotate import PATHS
from ambient_omni.data.corruptions import parse_corruption
from ambient_omni.data.readers import read_fashion_mnist
from ambient_omni.experiments import classifier_stage, pipeline
from ambient_omni.experiments.recipes import load_recipe
from ambient_omni.training.checkpoint import load_model, model_folder


def recipe_classifier(out: Path, recipe_name: str = "demo", cell_name: str | None = None) -> Path:
    """Train (once) a recipe cell's noise classifier on that cell's dataset (default: the recipe's first
    cell), as ``ambient bench`` does; its model folder."""
    recipe = load_recipe(recipe_name)
    cell = (recipe.cell(cell_name) if cell_name else recipe.cells[0]).config
    ccfg = classifier_stage.classifier_settings(cell)
    return classifier_stage.noise_classifier(ccfg, pipeline.make_dataset(cell, out), out)[0]


def held_out(n: int, corruption: str, seed: int) -> torch.Tensor:
    """The first ``n`` Fashion-MNIST test images, corrupted (ids offset so no train id repeats)."""
    test = read_fashion_mnist("test").images[:n]
    return parse_corruption(corruption)(test, torch.arange(n) + 10**6, seed)


def report(name: str, fast: np.ndarray, dense: np.ndarray, calls: np.ndarray, dense_calls: int) -> dict:
    """Print and return the agreement figures of one set of images."""
    stats = curves.log_ratio_stats(fast, dense)
    stats.update(calls_per_image=float(calls.mean()), calls_max=int(calls.max()),
                 call_ratio=float(dense_calls / calls.mean()))
    print(f"{name:>12s}: n={stats['n']:4d}  median |log ratio| {stats['median_abs_log_ratio']:.4f}  "
          f"p95 {stats['p95_abs_log_ratio']:.4f}  max {stats['max_abs_log_ratio']:.4f}  "
          f"calls/image {stats['calls_per_image']:.0f} (max {stats['calls_max']}) vs {dense_calls} "
          f"(1/{stats['call_ratio']:.1f})", flush=True)
    return stats


def cross_validate(p: np.ndarray, sigmas: np.ndarray, dense: np.ndarray, tau: float, span: float) -> list[dict]:
    """Pick search settings on one half by (p95, median), report them on the other half."""
    scores = {}
    for stride, window, back, margin in itertools.product((32, 64, 96), (32, 48, 64), (16, 24, 32, 48),
                                                          (0.0, 0.01, 0.02, 0.03)):
        try:
            plan = curves.FastPlan(stride=stride, window=window, back=back, margin=margin)
        except ValueError:
            continue
        fast, _ = curves.fast_sigma_min_from_dense(p, sigmas, plan, tau, span)
        scores[(stride, window, back, margin)] = np.abs(np.log(fast / dense))
    half = len(p) // 2
    folds = []
    for pick, test in ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))):
        best = min(scores, key=lambda k: (np.percentile(scores[k][pick], 95), np.median(scores[k][pick])))
        d = scores[best][test]
        folds.append({"settings": dict(zip(("stride", "window", "back", "margin"), best)),
                      "test_median": float(np.median(d)), "test_p95": float(np.percentile(d, 95))})
        print(f"cross-validation: picked {folds[-1]['settings']} on {len(scores[best][pick])} images; on the other "
              f"{len(d)}: median {folds[-1]['test_median']:.4f}, p95 {folds[-1]['test_p95']:.4f}", flush=True)
    return folds


def self_check(prob: noise.ProbFn, images: torch.Tensor, ids: np.ndarray, cfg: noise.NoiseAnnotationConfig,
               dense: np.ndarray, args: argparse.Namespace) -> dict:
    """Dense sigma_min with independent noise draws (seed + 1) against the saved dense sigma_min."""
    n = args.self_check
    other = dataclasses.replace(cfg, seed=cfg.seed + 1)
    path = args.out / f"dense-curves-seed{other.seed}.npz"
    saved = np.load(path)["p"] if path.is_file() else None
    if saved is not None and saved.shape[0] == n:
        p2 = saved
    else:
        p2, _ = noise.dense_curves(prob, images[:n], ids[:n], other, args.batch)
        np.savez_compressed(path, p=p2, ids=ids[:n])
    again = curves.dense_sigma_min(p2, other.grid(), cfg.tau, cfg.span)
    stats = curves.log_ratio_stats(again, dense[:n])
    print(f"dense vs dense with other noise draws, {n} images: median |log ratio| "
          f"{stats['median_abs_log_ratio']:.4f}, p95 {stats['p95_abs_log_ratio']:.4f}", flush=True)
    return stats


def fast_paths(model: torch.nn.Module, names: list[str], images: torch.Tensor, ids: np.ndarray,
               cfg: noise.NoiseAnnotationConfig, dense: np.ndarray, dense_calls: int) -> dict:
    """The real fast search of every image through each named inference path (``ambient benchmark-annotate``'s
    paths), against the dense sigma_min."""
    out = {}
    for name in names:
        if name not in PATHS:
            raise SystemExit(f"--paths: unknown path {name!r} ({', '.join(PATHS)})")
        bf16, compile = PATHS[name]
        prob = noise.classifier_prob_fn(model, torch.device("cpu"), bf16=bf16, compile=compile, batch=256)
        t0 = time.time()
        fast, calls = noise.annotate_images(prob, images, ids, cfg, 2048)
        print(f"{name}: real fast search of {len(ids)} images in {time.time() - t0:.0f} s", flush=True)
        out[name] = report(name, fast, dense, calls, dense_calls)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--classifier", help="classifier run or model folder (default: train the one of --recipe's "
                                               "--cell)")
    parser.add_argument("--recipe", default="demo", help="recipe whose classifier to train (default demo)")
    parser.add_argument("--cell", help="cell of --recipe whose dataset and classifier settings to use (default: "
                                       "the first); e.g. --recipe blur --cell blur-1.0__classifier__seed0")
    parser.add_argument("--images", type=int, default=160, help="held-out blurred test images (default 160)")
    parser.add_argument("--check", type=int, default=8, help="images also annotated by the real fast search")
    parser.add_argument("--corruption", default="blur:sigma=1.0")
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cv", action="store_true", help="also cross-validate the search settings")
    parser.add_argument("--self-check", type=int, default=0, metavar="N",
                        help="also run dense with other noise draws (seed + 1) on the first N images: how well "
                             "the reference agrees with itself")
    parser.add_argument("--paths", default="", help="also run the real fast search on every image through these "
                                                     "inference paths (comma-separated: bf16, bf16+compile) and "
                                                     "score them against the float32 dense reference")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    model_dir = model_folder(args.classifier) if args.classifier else recipe_classifier(args.out, args.recipe, args.cell)
    model = load_model(model_dir)
    prob = noise.classifier_prob_fn(model, torch.device("cpu"))
    images = held_out(args.images, args.corruption, args.seed)
    ids = np.arange(args.images) + 10**6
    p_mean, p_std = noise.training_lognormal(model_dir)  # the grid of `ambient annotate noise`
    cfg = noise.NoiseAnnotationConfig(method="fast", seed=args.seed, p_mean=p_mean, p_std=p_std)
    curves_file = args.out / "dense-curves.npz"
    saved = np.load(curves_file) if curves_file.is_file() else None
    if saved is not None and saved["p"].shape[0] == args.images:
        p, sigmas = saved["p"], saved["sigmas"]
    else:
        t0 = time.time()
        p, sigmas = noise.dense_curves(prob, images, ids, cfg, args.batch)
        print(f"dense curves: {args.images} images in {time.time() - t0:.0f} s", flush=True)
        np.savez_compressed(curves_file, p=p, sigmas=sigmas, ids=ids)
    dense = curves.dense_sigma_min(p, sigmas, cfg.tau, cfg.span)
    fast, points = curves.fast_sigma_min_from_dense(p, sigmas, cfg.plan(), cfg.tau, cfg.span)
    real, real_calls = noise.annotate_images(prob, images[: args.check], ids[: args.check], cfg, args.batch)
    if not np.array_equal(real, fast[: args.check]) or not np.array_equal(real_calls, points[: args.check] * cfg.draws):
        raise SystemExit(f"the real fast search disagrees with its simulation: {real} vs {fast[: args.check]}")
    print(f"classifier {model_dir}; real fast search == simulation on {args.check} images")
    dense_calls = cfg.grid_size * cfg.draws
    calls = points * cfg.draws
    half = args.images // 2
    results = {
        "classifier": str(model_dir), "settings": cfg.__dict__,
        "all": report("all", fast, dense, calls, dense_calls),
        "first half": report("first half", fast[:half], dense[:half], calls[:half], dense_calls),
        "second half": report("second half", fast[half:], dense[half:], calls[half:], dense_calls),
        "dense_sigma_min_quantiles": np.quantile(dense, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist(),
    }
    if args.self_check:
        results["dense_vs_dense"] = self_check(prob, images, ids, cfg, dense, args)
    if args.paths:
        results["paths"] = fast_paths(model, args.paths.split(","), images, ids, cfg, dense, dense_calls)
    if args.cv:
        results["cross_validation"] = cross_validate(p, sigmas, dense, cfg.tau, cfg.span)
    (args.out / "agreement.json").write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
