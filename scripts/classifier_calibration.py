"""Does a bench cell's noise classifier generalise, and how much do its annotations depend on its training seed?

It annotates held-out Fashion-MNIST TEST images, clean (ideal sigma_min: the smallest grid sigma) and corrupted
like the training set, with a given annotation search at one or more thresholds tau, and prints the classifier's
accuracy at a few sigmas. A classifier that memorised its few clean training images would give clean test images
a high sigma_min.

The classifier is either a trained model folder (``--model``), or a recipe cell's classifier trained here at
each of ``--train-seeds`` (``--recipe NAME --cell CELL --out DIR``: the cell's dataset and classifier settings,
exactly as ``ambient bench`` trains them, with the classifier seed replaced), which shows how much the
annotation depends on the classifier's training seed.

Examples (what docs/RESULTS.md section 6 quotes):
    .venv/bin/python scripts/classifier_calibration.py --model "runs/blur/classifiers/*/model" \\
        --corruption blur:sigma=1.0 --draws 2 --max-points 32 --stride 128 --window 16 --back 12
    .venv/bin/python scripts/classifier_calibration.py --recipe blur --cell blur-1.0__classifier__seed0 \\
        --out runs/clfseeds --train-seeds 0,1,2,3 --taus 0.45,0.40 --draws 2 --max-points 32 --stride 128 \\
        --window 16 --back 12
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
import torch

from ambient_omni.annotate import noise
from ambient_omni.annotate.classifier_task import accuracy_at
from ambient_omni.data.corruptions import parse_corruption
from ambient_omni.data.readers import read_fashion_mnist
from ambient_omni.experiments import classifier_stage, pipeline
from ambient_omni.experiments.recipes import load_recipe
from ambient_omni.training.checkpoint import load_model


def recipe_classifiers(recipe: str, cell_name: str, out: Path, seeds: list[int]) -> tuple[dict[str, Path], str]:
    """Train (once each) the cell's noise classifier at every seed; ``({label: model folder}, corruption)``."""
    cell = load_recipe(recipe).cell(cell_name).config
    if "corruption" not in cell:
        raise SystemExit(f"cell {cell_name!r} has no corruption: not a clean-versus-corrupted cell")
    data = pipeline.make_dataset(cell, out)
    ccfg = classifier_stage.classifier_settings(cell)
    models = {f"seed {seed}": classifier_stage.noise_classifier({**ccfg, "seed": seed}, data, out)[0] for seed in seeds}
    return models, cell["corruption"]


def calibrate(model_dir: Path, corruption: str, args: argparse.Namespace) -> list[dict]:
    """Print the accuracy at ``--sigmas`` and the annotation figures at every tau; return the latter."""
    clf = load_model(model_dir)
    p_mean, p_std = noise.training_lognormal(model_dir)  # the grid of `ambient annotate noise`
    clean = read_fashion_mnist("test").images[: args.images]
    corrupted = parse_corruption(corruption)(clean, torch.arange(len(clean)), 0)
    for s in (float(v) for v in args.sigmas.split(",")):
        acc = accuracy_at(clf, clean, corrupted, s, torch.Generator().manual_seed(1))
        print(f"sigma {s:g}: accuracy clean vs corrupted test images {acc:.3f}")
    prob = noise.classifier_prob_fn(clf, torch.device("cpu"))
    rows = []
    for tau in (float(t) for t in args.taus.split(",")):
        cfg = noise.NoiseAnnotationConfig(method="fast", tau=tau, draws=args.draws, max_points=args.max_points,
                                          p_mean=p_mean, p_std=p_std,
                                          stride=args.stride, window=args.window, back=args.back)
        grid = cfg.grid()
        for name, x in (("clean test", clean), ("corrupted test", corrupted)):
            sig, _ = noise.annotate_images(prob, x, np.arange(len(x)), cfg)
            row = {"tau": tau, "images": name, "mean": float(sig.mean()), "median": float(np.median(sig)),
                   "p10": float(np.percentile(sig, 10)), "never": float((sig >= grid[-1]).mean())}
            rows.append(row)
            print(f"tau {tau:g}, {name}: sigma_min mean {row['mean']:.3f}, median {row['median']:.3f}, 10th "
                  f"percentile {row['p10']:.3f}, never crossing tau {row['never']:.3f} "
                  f"(grid {grid[0]:.4f}..{grid[-1]:.2f})", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="classifier model folder (a glob matching one folder)")
    parser.add_argument("--corruption", help="the training set's corruption spec (with --model)")
    parser.add_argument("--recipe", help="train the classifier of this recipe's --cell instead of --model")
    parser.add_argument("--cell", help="cell of --recipe, e.g. blur-1.0__classifier__seed0")
    parser.add_argument("--out", type=Path, help="where --recipe's dataset and classifiers go")
    parser.add_argument("--train-seeds", default="0", help="classifier training seeds with --recipe (default 0)")
    parser.add_argument("--images", type=int, default=256, help="test images (each clean and corrupted)")
    parser.add_argument("--sigmas", default="0.2,0.5,1,2,4", help="where to print the accuracy")
    parser.add_argument("--taus", "--tau", default="0.45", help="threshold(s), comma-separated (default 0.45)")
    for name, default in (("draws", 4), ("max-points", 128), ("stride", 96), ("window", 48), ("back", 32)):
        parser.add_argument(f"--{name}", type=int, default=default, help="annotation search setting")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.recipe:
        if not (args.cell and args.out):
            parser.error("--recipe needs --cell and --out")
        models, corruption = recipe_classifiers(args.recipe, args.cell, args.out,
                                                [int(s) for s in args.train_seeds.split(",")])
    elif args.model and args.corruption:
        (model_dir,) = glob.glob(args.model)
        models, corruption = {"model": Path(model_dir)}, args.corruption
    else:
        parser.error("give --model and --corruption, or --recipe, --cell and --out")
    summary = {}
    for label, model_dir in models.items():
        print(f"== classifier {label} ({model_dir})")
        summary[label] = calibrate(model_dir, corruption, args)
    print("\n| classifier | tau | corrupted test: mean sigma_min | median | never crossing | clean test: mean |")
    print("|---|---|---|---|---|---|")
    for label, rows in summary.items():
        for bad, good in zip(rows[1::2], rows[0::2]):
            print(f"| {label} | {bad['tau']:g} | {bad['mean']:.2f} | {bad['median']:.2f} | {bad['never']:.1%} | "
                  f"{good['mean']:.3f} |")


if __name__ == "__main__":
    main()
