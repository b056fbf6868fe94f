"""Sanity check of the noise-conditional classifier annotations (paper Table 7), one process, any noise levels.

For each std s (see :mod:`ambient_omni.experiments.noise_sanity`): a classifier learns clean versus
``noise:std=s`` Fashion-MNIST images, held-out noisy test images are annotated (fast search; the first
``--dense`` also by the dense reference), and the mean sigma_min is printed beside s, with the
fast-versus-dense agreement and the classifier calls per image. Writes ``results.json`` and, per level,
``std<s>/curves.npz`` (raw dense curves) to ``--out``. The bench recipe ``noise-sanity`` runs the same
check per (level, seed) with tables.

Example (what docs/RESULTS.md quotes):
    .venv/bin/python scripts/noise_sanity.py --out runs/noise_sanity5 --stds 0.05 --steps 1000 --annotate 100 --dense 20
    .venv/bin/python scripts/noise_sanity.py --out runs/noise_sanity2 --stds 0.1,0.2 --p-mean -2.5 --lr 2e-3 \
        --steps 1000 --annotate 100 --dense 20
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ambient_omni.experiments.noise_sanity import NoiseCheckConfig, run_noise_check, summary_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stds", default="0.05,0.1,0.2")
    parser.add_argument("--train-images", type=int, default=5000, help="clean images (and as many corrupted)")
    parser.add_argument("--preset", default="fmnist-classifier-small", help="classifier network preset")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--p-mean", type=float, default=-3.5,
                        help="log-normal mean of the classifier's training sigmas (docs/RESULTS.md section 3: "
                             "which settings left the classifier at chance)")
    parser.add_argument("--p-std", type=float, default=1.0, help="log-normal std of the training sigmas")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4,
                        help="learning rate (at 2e-3 the std 0.05 classifier stayed at chance)")
    parser.add_argument("--annotate", type=int, default=100)
    parser.add_argument("--dense", type=int, default=20)
    parser.add_argument("--eval-batch", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0, help="classifier training and annotation noise seed")
    parser.add_argument("--data-seed", type=int, default=0, help="which images, and their noise")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for std in (float(s) for s in args.stds.split(",")):
        cfg = NoiseCheckConfig(std=std, train_images=args.train_images, preset=args.preset, steps=args.steps,
                               batch=args.batch, lr=args.lr, p_mean=args.p_mean, p_std=args.p_std,
                               annotate=args.annotate, dense=args.dense, eval_batch=args.eval_batch,
                               seed=args.seed, data_seed=args.data_seed)
        results.append(run_noise_check(cfg, args.out / f"std{std:g}"))
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
        print(summary_line(results[-1]), flush=True)


if __name__ == "__main__":
    main()
