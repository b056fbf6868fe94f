"""Diagnostics behind the annotation findings of docs/RESULTS.md (sections 3 and 6) and docs/THEORY.md section 5.

    edges FILE...                    shares and counts of corrupted images at the grid's ends, per annotation file
    floor FILE --data DIR            corrupted images at the grid minimum against the other corrupted ones:
                                     RMSE to their Fashion-MNIST train originals, mean P(clean) at --sigmas
    levels FILE                      clean and corrupted images admitted at sigma_t <= each of --sigmas
    provenance FILE                  per provenance (clean, each corruption): count, median sigma_min and the
                                     share treated as clean (sigma_min <= 0.01)
    crops FILE                       an ood-crops annotation: OOD images per crop size and sigma_max, and the
                                     locality errors (crop against whole image, per sigma) behind it
    pclean --classifier DIR --std S  a noise-check classifier's mean P(clean) at --sigmas on the held-out
                                     clean and noisy test images of that check (experiments/noise_sanity.py)
    black-pixels                     exactly-black pixels per Fashion-MNIST train image (median, 5-95%)

Examples (what the documents quote):
    .venv/bin/python scripts/annotation_diagnostics.py edges runs/jpeg/annotations/*classifier*.jsonl
    .venv/bin/python scripts/annotation_diagnostics.py floor runs/jpeg/annotations/126f43b41e6c-classifier-4c50e88fb34c.jsonl \\
        --data runs/jpeg/datasets/126f43b41e6c
    .venv/bin/python scripts/annotation_diagnostics.py pclean --classifier runs/ns-default-lr5e-4/std0.1/classifier/model --std 0.1
    .venv/bin/python scripts/annotation_diagnostics.py black-pixels --images 5000
    .venv/bin/python scripts/annotation_diagnostics.py provenance runs/unknown/annotations/132bed8e2b8f-classifier-a54d2625f925.jsonl
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ambient_omni.annotate.curves import lognormal_grid
from ambient_omni.annotate.noise import at_floor_mask, classifier_prob_fn, edge_shares
from ambient_omni.data.annotations import read_annotations
from ambient_omni.data.readers import read_fashion_mnist
from ambient_omni.training.checkpoint import load_model


def _grid(table) -> np.ndarray:  # noqa: ANN001 - an AnnotationTable
    made = table.created_by
    return lognormal_grid(made["grid_size"], made["p_mean"], made["p_std"], made["grid_seed"])


def _mean_p(prob, images: torch.Tensor, sigma: float) -> float:  # noqa: ANN001 - a ProbFn
    noisy = images + sigma * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    return float(prob(noisy, torch.full((len(images),), sigma)).mean())


def edges(args: argparse.Namespace) -> None:
    for path in args.files:
        table = read_annotations(path)
        grid = _grid(table)
        corrupted = np.array([e["provenance"] != "clean" for e in table.extra])
        floor = at_floor_mask(table.sigma_min, [e["provenance"] for e in table.extra], corrupted, grid)
        shares = edge_shares(table.sigma_min[corrupted & np.isfinite(table.sigma_min)], grid)
        print(f"{path}: {corrupted.sum()} corrupted, {int(floor.sum())} at the grid minimum "
              f"(share {shares['at_grid_min']:.4f}), never crossed share {shares['never_crossed']:.4f}")


def floor(args: argparse.Namespace) -> None:
    from ambient_omni.data.dataset_folder import load_dataset

    table, data = read_annotations(args.file), load_dataset(args.data)
    corrupted = np.array([p != "clean" for p in data.provenance])
    at_min = at_floor_mask(table.sigma_min, data.provenance, corrupted, _grid(table))
    originals = read_fashion_mnist("train").images[torch.as_tensor(np.asarray(data.source_index))]
    rmse = ((data.images - originals) ** 2).flatten(1).mean(1).sqrt().numpy()
    print(f"{int(at_min.sum())} of {corrupted.sum()} corrupted images at the grid minimum; RMSE to the original: "
          f"median {np.median(rmse[at_min]):.4f} (others {np.median(rmse[corrupted & ~at_min]):.4f})")
    prob = classifier_prob_fn(load_model(table.created_by["classifier"]), torch.device("cpu"))
    groups = {"at the minimum": np.where(at_min)[0][:200], "other corrupted": np.where(corrupted & ~at_min)[0][:200]}
    for sigma in args.sigmas:
        means = ", ".join(f"{name} {_mean_p(prob, data.images[ids], sigma):.3f}" for name, ids in groups.items())
        print(f"sigma {sigma:g}: mean P(clean): {means}")


def levels(args: argparse.Namespace) -> None:
    """Images a sigma_min annotation admits at noise levels sigma_t <= s (sigma_min <= s, buffer ignored)."""
    table = read_annotations(args.file)
    prov = [e["provenance"] for e in table.extra]
    corrupted = np.array([p != "clean" for p in prov])
    floor_mask = at_floor_mask(table.sigma_min, prov, corrupted, _grid(table)) if "grid_size" in table.created_by \
        else np.zeros(len(prov), bool)
    for s in args.sigmas:
        admitted = table.sigma_min <= s
        print(f"sigma_t <= {s:g}: {int((admitted & ~corrupted).sum())} clean, {int((admitted & corrupted).sum())} "
              f"corrupted ({int((admitted & floor_mask).sum())} of them at the grid minimum)")


def provenance(args: argparse.Namespace) -> None:
    """Per provenance: image count, median sigma_min and the share with sigma_min <= 0.01 (used as clean)."""
    table = read_annotations(args.file)
    prov = np.array([e["provenance"] for e in table.extra])
    for name in sorted(set(prov)):
        sigma = table.sigma_min[prov == name]
        print(f"{name:28s} n={len(sigma):5d} median sigma_min {np.median(sigma):.3g}, "
              f"share at sigma_min <= 0.01: {np.mean(sigma <= 0.01):.2f}")


def crops(args: argparse.Namespace) -> None:
    """An ood-crops annotation: OOD images per chosen crop size and per sigma_max, and the locality map it
    used (its error at each crop size against the whole image's, per sigma)."""
    from collections import Counter

    from ambient_omni.files import read_json

    table = read_annotations(args.file)
    ood = [i for i, e in enumerate(table.extra) if e["provenance"].startswith("ood:")]
    sizes = Counter(table.extra[i].get("crop_size") for i in ood)
    maxima = Counter(float(table.sigma_max[i]) for i in ood)
    print(f"{len(ood)} OOD images; by largest admitted crop size: {dict(sorted(sizes.items(), key=str))}; "
          f"by sigma_max: {dict(sorted(maxima.items()))}")
    loc = read_json(table.created_by["locality"])
    print(f"locality {table.created_by['locality']}: crop size -> sigma_max {loc['crop_to_sigma_max']}")
    for sigma, errors, full in zip(loc["sigmas"], loc["errors"], loc["full_errors"]):
        row = ", ".join(f"{c}: {e:.3g}" for c, e in zip(loc["crop_sizes"], errors))
        print(f"sigma {sigma:g}: whole image {full:.3g}; crops {row}")


def pclean(args: argparse.Namespace) -> None:
    from ambient_omni.experiments.noise_sanity import NoiseCheckConfig, noisy_split

    _, _, held, held_noisy = noisy_split(NoiseCheckConfig(std=args.std))
    prob = classifier_prob_fn(load_model(args.classifier), torch.device("cpu"))
    for sigma in args.sigmas:
        print(f"sigma {sigma:g}: mean P(clean) noisy {_mean_p(prob, held_noisy, sigma):.3f}, "
              f"clean {_mean_p(prob, held, sigma):.3f} ({len(held)} held-out test images each)")


def black_pixels(args: argparse.Namespace) -> None:
    images = read_fashion_mnist("train").images[: args.images]
    counts = (images <= -1 + 1e-6).flatten(1).sum(1).float()
    q05, q50, q95 = (float(counts.quantile(q)) for q in (0.05, 0.5, 0.95))
    print(f"exactly black pixels per image over {len(images)} train images: median {q50:g}, 5-95% {q05:g}-{q95:g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    sigmas = {"type": lambda t: [float(v) for v in t.split(",")], "default": [0.002, 0.005, 0.01, 0.03, 0.1, 0.3]}
    p = sub.add_parser("edges")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("floor")
    p.add_argument("file")
    p.add_argument("--data", required=True)
    p.add_argument("--sigmas", **sigmas)
    p = sub.add_parser("levels")
    p.add_argument("file")
    p.add_argument("--sigmas", **{**sigmas, "default": [0.1, 0.5, 1.0, 1.5]})
    p = sub.add_parser("provenance")
    p.add_argument("file")
    p = sub.add_parser("crops")
    p.add_argument("file")
    p = sub.add_parser("pclean")
    p.add_argument("--classifier", required=True)
    p.add_argument("--std", type=float, required=True)
    p.add_argument("--sigmas", **{**sigmas, "default": [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 1.0, 3.0]})
    p = sub.add_parser("black-pixels")
    p.add_argument("--images", type=int, default=5000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"edges": edges, "floor": floor, "levels": levels, "provenance": provenance, "crops": crops, "pclean": pclean, "black-pixels": black_pixels}[args.action](args)


if __name__ == "__main__":
    main()
