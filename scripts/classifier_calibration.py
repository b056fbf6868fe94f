"""Does a bench cell's noise classifier generalise? It annotates held-out Fashion-MNIST TEST images, clean (ideal
sigma_min: the smallest grid sigma) and corrupted like the training set, with a given annotation search, and
prints its accuracy at a few sigmas. A classifier that memorised its few clean training images would give clean
test images a high sigma_min.

Example (what docs/RESULTS.md section 6 quotes):
    .venv/bin/python scripts/classifier_calibration.py --model "runs/blur/classifiers/*/model" \
        --corruption blur:sigma=1.0 --draws 2 --max-points 32 --stride 128 --window 16 --back 12
"""

from __future__ import annotations

import argparse
import glob

import numpy as np
import torch

from ambient_omni.annotate import noise
from ambient_omni.annotate.classifier_task import accuracy_at
from ambient_omni.data.corruptions import parse_corruption
from ambient_omni.data.readers import read_fashion_mnist
from ambient_omni.training.checkpoint import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="classifier model folder (a glob matching one folder)")
    parser.add_argument("--corruption", required=True, help="the training set's corruption spec")
    parser.add_argument("--images", type=int, default=256, help="test images (each clean and corrupted)")
    parser.add_argument("--sigmas", default="0.2,0.5,1,2,4", help="where to print the accuracy")
    parser.add_argument("--tau", type=float, default=0.45)
    for name, default in (("draws", 4), ("max-points", 128), ("stride", 96), ("window", 48), ("back", 32)):
        parser.add_argument(f"--{name}", type=int, default=default, help="annotation search setting")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    (model_dir,) = glob.glob(args.model)
    clf = load_model(model_dir)
    clean = read_fashion_mnist("test").images[: args.images]
    corrupted = parse_corruption(args.corruption)(clean, torch.arange(len(clean)), 0)
    for s in (float(v) for v in args.sigmas.split(",")):
        acc = accuracy_at(clf, clean, corrupted, s, torch.Generator().manual_seed(1))
        print(f"sigma {s:g}: accuracy clean vs corrupted test images {acc:.3f}")
    cfg = noise.NoiseAnnotationConfig(method="fast", tau=args.tau, draws=args.draws, max_points=args.max_points,
                                      stride=args.stride, window=args.window, back=args.back)
    prob = noise.classifier_prob_fn(clf, torch.device("cpu"))
    grid = cfg.grid()
    for name, x in (("clean test", clean), ("corrupted test", corrupted)):
        sig, _ = noise.annotate_images(prob, x, np.arange(len(x)), cfg)
        print(f"{name}: sigma_min mean {sig.mean():.3f}, median {np.median(sig):.3f}, 10th percentile "
              f"{np.percentile(sig, 10):.3f}, never crossing tau {(sig >= grid[-1]).mean():.3f} "
              f"(grid {grid[0]:.4f}..{grid[-1]:.2f})")


if __name__ == "__main__":
    main()
