"""Reference numbers for docs/PROTOCOL.md: FD between real image sets, with and without blur.

For each feature set, with disjoint fixed subsets (seed 0) of the Fashion-MNIST train and
test splits of ``--n`` images each:
  FD(train A, test A)             real vs real (the floor at this sample size)
  FD(train B, test A)             a second train subset   -> noise between sample sets
  FD(train A, test B)             a second test subset    -> noise between reference subsets
  FD(train A, blur(test A, s))    for each --blur sigma   -> sensitivity to blur
Usage: python scripts/metric_baselines.py --n 1000 --features fmnist-classifier,effnet-lite0
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ambient_omni.data.corruptions import parse_corruption
from ambient_omni.data.readers import read_fashion_mnist
from ambient_omni.metrics.features import get_extractor
from ambient_omni.metrics.frechet import frechet_distance_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--features", default="fmnist-classifier,effnet-lite0")
    parser.add_argument("--blur", default="1.0", help="comma-separated blur sigmas")
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    train, test = read_fashion_mnist("train").images, read_fashion_mnist("test").images
    tr, te = rng.permutation(train.shape[0])[:2 * args.n], rng.permutation(test.shape[0])[:2 * args.n]
    sets = {"train_A": train[tr[:args.n]], "train_B": train[tr[args.n:]],
            "test_A": test[te[:args.n]], "test_B": test[te[args.n:]]}
    ids = torch.arange(args.n)
    for sigma in args.blur.split(","):
        sets[f"test_A_blur{sigma}"] = parse_corruption(f"blur:sigma={sigma}")(sets["test_A"], ids, 0)
    results: dict[str, dict[str, float]] = {}
    for name in args.features.split(","):
        start = time.time()
        ext = get_extractor(name)
        feats = {key: ext(images) for key, images in sets.items()}
        fd = {f"{a} vs {b}": frechet_distance_features(feats[a], feats[b])
              for a, b in [("train_A", "test_A"), ("train_B", "test_A"), ("train_A", "test_B")]
              + [("train_A", key) for key in sets if "blur" in key]}
        results[name] = {**fd, "seconds": time.time() - start}
        for key, value in fd.items():
            print(f"{name:18s} FD({key}) = {value:.2f}", flush=True)
    if args.out:
        from ambient_omni.files import write_json

        write_json(args.out, {"n": args.n, "results": results})
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
