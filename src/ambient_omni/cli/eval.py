"""``ambient eval``: Frechet distances, KID, precision/recall, patch FD and memorization of samples."""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from typing import Any
from pathlib import Path

from ambient_omni.errors import AmbientError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` subcommand."""
    parser = subparsers.add_parser(
        "eval", help="evaluate samples: FD / KID / precision-recall per feature set, memorization",
        description="Evaluate generated samples against a reference image set with the fixed protocol "
        "of docs/PROTOCOL.md: per feature set the Frechet distance, KID and k-NN precision/recall; "
        "in pixel space the patch-level FD and (with --memorization-train) the share of near-copies "
        "of training images. Reference statistics are cached ($AMBIENT_CACHE or ~/.cache/ambient_omni).")
    parser.add_argument("--samples", required=True,
                        help="samples.npz (uint8 'images' N,C,H,W), a folder holding it (ambient sample --out), a "
                        "run folder with one samples.npz below it (RUN/samples/final), or any data source spec "
                        "(fashion-mnist:train, folder:PATH, array:PATH)")
    parser.add_argument("--reference", default="fashion-mnist:test", help="reference source (default: %(default)s)")
    parser.add_argument("--features", default="fmnist-classifier,effnet-lite0",
                        help="comma-separated feature sets: fmnist-classifier, effnet-lite0, inception (FID) "
                        "(default: %(default)s)")
    parser.add_argument("--n-ref", type=int, default=None,
                        help="use a fixed random subset (seed 0) of this many reference images (default: all)")
    parser.add_argument("--memorization-train", default=None,
                        help="training set for the memorization share (fashion-mnist:train or a dataset folder)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="print the results as JSON (no PATH) or write them to PATH")
    parser.add_argument("--no-metrics-file", action="store_true",
                        help="do not write metrics.json next to samples.npz (the file `ambient report` shows)")
    parser.add_argument("--inception-weights", default=None,
                        help="FID Inception weights (pt_inception-2015-12-05-6726825d.pth or .safetensors); "
                        "default $AMBIENT_INCEPTION_WEIGHTS, else the file scripts/setup.sh installed "
                        "(`ambient inception-weights`)")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default $AMBIENT_CACHE or ~/.cache/ambient_omni)")
    parser.add_argument("--device", default=None, help="torch device (default: $AMBIENT_DEVICE, else cuda if present)")
    parser.add_argument("--batch-size", type=int, default=64, help="feature batch size (default: %(default)s)")
    parser.add_argument("--k", type=int, default=5, help="k of the k-NN precision/recall density test (default: "
                        "%(default)s; the union-of-balls columns always use k = 3)")
    parser.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default: %(default)s)")
    parser.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (default: %(default)s)")
    parser.add_argument("--patch-size", type=int, default=8, help="patch FD patch size (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of KID/PR/patch draws (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the evaluation and print a table (and/or JSON)."""
    from ambient_omni.files import write_json
    from ambient_omni.metrics.evaluate import evaluate, format_table

    features = [name.strip() for name in args.features.split(",") if name.strip()]
    if not features:
        raise AmbientError("--features: give at least one feature set")
    if args.batch_size < 1:
        raise AmbientError(f"--batch-size must be positive, got {args.batch_size}")
    result = evaluate(args.samples, args.reference, features, n_ref=args.n_ref,
                      train_set=args.memorization_train, k=args.k, kid_subsets=args.kid_subsets,
                      kid_subset_size=args.kid_subset_size, patch_size=args.patch_size, seed=args.seed, batch_size=args.batch_size,
                      cache_dir=args.cache_dir, device=args.device,
                      extractor_options={"inception_weights": args.inception_weights},
                      progress=not args.no_progress, sample_labels=_sample_labels(args.samples))
    saved = _save_next_to_samples(args, result)
    if args.json == "-":
        json.dump(result, sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    if args.json:
        write_json(args.json, result)
    print(format_table(result))
    if saved is not None:
        print(f"wrote {saved} (shown by `ambient report` on any folder above it)")
    return 0


def _sample_labels(samples: str) -> Any:
    """The classes a conditional model was asked for (``labels`` of its samples.npz), or None."""
    import numpy as np

    from ambient_omni.metrics.evaluate import samples_file

    path = samples_file(samples)
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return npz["labels"] if "labels" in npz.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # a damaged file: evaluate() reads it next and says so


def _save_next_to_samples(args: argparse.Namespace, result: dict) -> Path | None:
    """Write ``metrics.json`` beside the evaluated ``samples.npz`` (the path, or ``None`` for other sources)."""
    from ambient_omni.files import write_json
    from ambient_omni.metrics.evaluate import samples_file

    path = None if args.no_metrics_file else samples_file(args.samples)
    if path is None:
        return None
    write_json(path.parent / "metrics.json", result)
    return path.parent / "metrics.json"
