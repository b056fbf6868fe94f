"""How well do the built-in quality scorers find the clean images of a set with unknown, mixed corruptions?

Takes N Fashion-MNIST test images (seeded subset), keeps a share clean and corrupts the rest, in equal parts,
with each corruption of --corruptions; scores every image with each built-in pixel scorer
(ambient_omni.annotate.quality_scores) and prints, per scorer: the share of the top-ranked images (as many as
there are clean ones) that really are clean, and per corruption the AUC of telling its images from the clean ones
(1 = every clean image scores higher, 0.5 = chance). The paper's latent recipe trusts the top 10% by CLIP-IQA
as clean; this says what our offline stand-ins would trust.

    .venv/bin/python scripts/quality_scorer_check.py --n 3000 --clean 0.1
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ambient_omni.annotate.quality import best_mask
from ambient_omni.annotate.quality_scores import SCORERS
from ambient_omni.data.corruptions import parse_corruption
from ambient_omni.data.readers import read_source

DEFAULT_CORRUPTIONS = "blur:sigma=0.6;blur:sigma=1.0;jpeg:quality=10;jpeg:quality=25;motion:length=5"


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting one half (the Mann-Whitney statistic)."""
    diff = positive[:, None] - negative[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="images (default 3000)")
    parser.add_argument("--clean", type=float, default=0.1, help="clean share (default 0.1)")
    parser.add_argument("--corruptions", default=DEFAULT_CORRUPTIONS, help="';'-separated corruption specs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    source = read_source("fashion-mnist:test").images
    pick = torch.randperm(len(source), generator=torch.Generator().manual_seed(args.seed))[: args.n]
    images, ids = source[pick].clone(), torch.arange(args.n)
    n_clean = int(np.floor(args.clean * args.n + 0.5))
    specs = [s for s in args.corruptions.split(";") if s.strip()]
    kind = np.array(["clean"] * n_clean + [specs[k % len(specs)] for k in range(args.n - n_clean)], dtype=object)
    for spec in specs:
        rows = torch.from_numpy(np.flatnonzero(kind == spec))
        images[rows] = parse_corruption(spec)(images[rows], ids[rows], args.seed)
    print(f"{args.n} Fashion-MNIST test images: {n_clean} clean, the rest split evenly over {', '.join(specs)}")
    print(f"| scorer | clean share of the top {n_clean} | " + " | ".join(f"AUC {s}" for s in specs) + " |")
    print("|---|---|" + "---|" * len(specs))
    clean = kind == "clean"
    for name, scorer in sorted(SCORERS.items()):
        scores = scorer(images)
        top = best_mask(scores, n_clean / args.n)
        aucs = [auc(scores[clean], scores[kind == spec]) for spec in specs]
        print(f"| {name} | {clean[top].mean():.3f} | " + " | ".join(f"{a:.3f}" for a in aucs) + " |")


if __name__ == "__main__":
    main()
