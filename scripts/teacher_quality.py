"""How good the synthetic data is: the teacher's samples of a synthetic-data bench folder, scored like a cell's.

For every synthetic dataset under ``BENCH/datasets`` (the `synthetic` recipe's, issue 20), the synthetic images
drawn with seeds ``0..n-1`` (class ``seed mod 10``; the same count and conditioning the student cells are
evaluated with) are evaluated against the Fashion-MNIST test images as a cell's samples are: FD, precision and
recall, Vendi, per-class coverage, and the memorized share against the teacher's own training images.

    .venv/bin/python scripts/teacher_quality.py runs/synthetic --n 2000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ambient_omni.data.dataset_folder import load_dataset
from ambient_omni.metrics.evaluate import evaluate, format_table


def synthetic_part(folder: Path, n: int) -> tuple[torch.Tensor, np.ndarray]:
    """The dataset's synthetic images with source index (sample seed) ``< n``, in seed order, and their labels."""
    data = load_dataset(folder)
    synthetic = np.array([p.startswith("synthetic:") for p in data.provenance])
    ids = np.flatnonzero(synthetic & (data.source_index < n))
    ids = torch.as_tensor(ids[np.argsort(data.source_index[ids], kind="stable")])
    if len(ids) < n:
        raise SystemExit(f"{folder}: {len(ids)} synthetic images with seed < {n}")
    return data.images[ids], data.labels[ids].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", type=Path, help="bench folder of the synthetic recipe (e.g. runs/synthetic)")
    parser.add_argument("--n", type=int, default=2000, help="synthetic images to score (default 2000)")
    parser.add_argument("--features", default="fmnist-classifier")
    args = parser.parse_args()
    folders = sorted(p.parent for p in (args.bench / "datasets").glob("*/dataset.json")
                     if (args.bench / "teachers" / p.parent.name).is_dir())
    if not folders:
        raise SystemExit(f"{args.bench}: no synthetic dataset with its teacher under datasets/ and teachers/")
    for folder in folders:
        images, labels = synthetic_part(folder, args.n)
        teacher_data = args.bench / "teachers" / folder.name / "data"
        metrics = evaluate(images, features=args.features.split(","), train_set=str(teacher_data),
                           sample_labels=labels)
        out = folder / f"teacher-quality-{args.n}.json"
        out.write_text(json.dumps(metrics, indent=2))
        print(f"teacher of dataset {folder.name} ({args.n} of its samples; written to {out}):")
        print(format_table(metrics))


if __name__ == "__main__":
    main()
