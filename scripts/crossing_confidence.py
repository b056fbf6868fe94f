"""sigma* of the crossing rule on a trained held-out noise classifier, plain and with the Wilson upper bounds of
``ambient annotate crossing --confidence Q``, from one measurement of the per-class held-out accuracy.

    .venv/bin/python scripts/crossing_confidence.py --classifier runs/blur/classifiers/<run> \\
        --data runs/blur/datasets/<hash> --seed 0 --confidence 0.8,0.9
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ambient_omni.annotate import crossing_rule as cr
from ambient_omni.data.dataset_folder import load_dataset
from ambient_omni.data.mixed import LOW_QUALITY_KINDS
from ambient_omni.training.checkpoint import load_model, model_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classifier", required=True, help="noise classifier trained with --holdout")
    parser.add_argument("--data", required=True, help="its dataset folder")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (a benchmark cell uses its classifier seed)")
    parser.add_argument("--confidence", default="0.8,0.9", help="comma-separated levels Q")
    args = parser.parse_args()
    data = load_dataset(args.data)
    held = torch.from_numpy(cr.recorded_holdout(args.classifier, data))
    kinds = [p.split(":", 1)[0] for p in data.provenance]
    clean = torch.tensor([k == "clean" for k in kinds])
    low = torch.tensor([k in LOW_QUALITY_KINDS for k in kinds])
    per_class = cr.held_out_class_accuracy(load_model(model_folder(args.classifier)), data.images[clean & held],
                                           data.images[low & held], seed=args.seed)
    counts = [min(int((mask & held).sum()), cr.MAX_HELD_OUT) for mask in (clean, low)]
    print(f"held out: {counts[0]} clean, {counts[1]} corrupted images")
    for q in [None] + [float(v) for v in args.confidence.split(",") if v.strip()]:
        acc = per_class if q is None else np.stack([cr.wilson_upper(per_class[:, k], counts[k], q) for k in (0, 1)], 1)
        rule = cr.crossing_rule(int(clean.sum()), int(low.sum()), cr.CURVE_SIGMAS, acc.mean(1))
        print(f"confidence {q}: sigma* {rule.sigma_min:.4g} ({rule.status})")


if __name__ == "__main__":
    main()
