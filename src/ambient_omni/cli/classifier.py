"""``ambient classifier train``: the noise-conditional quality classifier and the crop classifiers."""

from __future__ import annotations

import argparse
from typing import Any

DESCRIPTION = """\
Train a binary noise-conditional classifier with the shared training loop (resume, logs,
checkpoints; the final EMA weights land in RUN/model).

  --kind noise (default)  clean (positive) vs corrupted and synthetic (negative) images of
                          --data, seen at sigma ~ LogNormal(--p-mean -1.2, --p-std 1.2); used
                          by `ambient annotate noise` to find sigma_min.
  --kind crop             REAL C x C crops (--crop-size) of target images (positive: the clean
                          images of --data, or all of --target) vs crops of OOD images (negative:
                          the ood:* images of --data, or all of --ood), at low noise (default
                          log-normal -2.3 / 1.0 truncated at --sigma-cap 0.5); used by
                          `ambient annotate crops` to find sigma_max.
Batches are balanced (half positive, half negative) unless --unbalanced."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``classifier`` with its ``train`` action."""
    parser = subparsers.add_parser("classifier", help="train quality / crop classifiers", description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("train", help="train a classifier into a run folder", description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="dataset folder (clean vs corrupted/synthetic, or clean vs ood:* for --kind crop)")
    p.add_argument("--target", help="--kind crop: dataset folder whose images are all positives")
    p.add_argument("--ood", help="--kind crop: dataset folder whose images are all negatives")
    p.add_argument("--out", required=True, help="run folder (created; reused to resume)")
    p.add_argument("--kind", choices=("noise", "crop"), default="noise", help="classifier kind (default noise)")
    p.add_argument("--crop-size", type=int, help="crop size C for --kind crop")
    p.add_argument("--unbalanced", action="store_true", help="sample batches uniformly instead of half/half")
    p.add_argument("--preset", default="fmnist-classifier", help="network preset (default fmnist-classifier)")
    p.add_argument("--channels", type=int, help="override model_channels")
    p.add_argument("--blocks", type=int, help="override num_blocks")
    p.add_argument("--channel-mult", help="override channel_mult, e.g. 1,2,2")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--kimg", type=float, help="training length in thousands of images (default 50)")
    length.add_argument("--steps", type=int, help="training length in optimizer steps")
    p.add_argument("--batch", type=int, default=64, help="global batch size (default 64)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 2e-3)")
    p.add_argument("--lr-rampup", type=int, default=2000, metavar="IMAGES", help="default 2000")
    p.add_argument("--ema-halflife", type=float, default=2000, metavar="IMAGES", help="default 2000")
    p.add_argument("--p-mean", type=float, help="log-sigma mean (default -1.2 noise, -2.3 crop)")
    p.add_argument("--p-std", type=float, help="log-sigma std (default 1.2 noise, 1.0 crop)")
    p.add_argument("--sigma-cap", type=float, help="truncate sigma at this value (default none noise, 0.5 crop)")
    p.add_argument("--holdout", type=float, metavar="FRACTION",
                   help="--kind noise: train without this share of the clean and of the corrupted images (seeded by "
                        "--seed) and record it, so `ambient annotate crossing` can measure the classifier on them")
    p.add_argument("--folds", type=int, metavar="K",
                   help="--kind noise, cross-fitting: split the clean and the corrupted images into K folds (seeded by "
                        "--seed) and train without fold --fold; train one classifier per fold and give them all to "
                        "`ambient annotate crossing`, which then measures every image once")
    p.add_argument("--fold", type=int, metavar="k", help="with --folds: the fold left out (0 .. K-1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=500, metavar="STEPS")
    p.add_argument("--log-every", type=int, default=50, metavar="STEPS")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: $AMBIENT_DEVICE, else CUDA if available)")
    p.add_argument("--no-bf16", action="store_true",
                   help="train in float32 (default: bf16 autocast on CUDA and on CPUs with native bf16; "
                        "AMBIENT_CPU_BF16=0|1 forces the CPU choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)


def _classes(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """Positive and negative image tensors and a description of where they came from."""
    import torch

    from ambient_omni.data.dataset_folder import load_dataset
    from ambient_omni.data.mixed import LOW_QUALITY_KINDS
    from ambient_omni.errors import AmbientError

    if args.kind == "crop" and (args.target or args.ood):
        if not (args.target and args.ood) or args.data:
            raise AmbientError("--kind crop takes either --data DIR or both --target DIR and --ood DIR")
        return load_dataset(args.target).images, load_dataset(args.ood).images, {"target": args.target, "ood": args.ood}
    if not args.data:
        raise AmbientError("--data DIR is required")
    data = load_dataset(args.data)
    kinds = [p.split(":", 1)[0] for p in data.provenance]
    neg_kinds = LOW_QUALITY_KINDS if args.kind == "noise" else ("ood",)
    neg_name = " or ".join(f"{k}:*" for k in neg_kinds)
    pos = torch.tensor([k == "clean" for k in kinds])
    neg = torch.tensor([k in neg_kinds for k in kinds])
    if not pos.any() or not neg.any():
        raise AmbientError(f"{args.data}: needs clean and {neg_name} images for a {args.kind} classifier "
                           f"(has {int(pos.sum())} clean, {int(neg.sum())} {neg_name})")
    info: dict[str, Any] = {"data": args.data}
    if args.holdout is not None or args.folds is not None:
        from ambient_omni.annotate.crossing_rule import training_split

        used, info["holdout"] = training_split(data.provenance, data.sha256, args.seed, args.holdout, args.folds,
                                               args.fold)
        pos, neg = pos & torch.from_numpy(used), neg & torch.from_numpy(used)
    return data.images[pos], data.images[neg], info


def _network(args: argparse.Namespace, channels: int) -> dict[str, Any]:
    from ambient_omni.cli._options import preset_network

    return preset_network(args.preset, "classifier", channels,
                          {"model_channels": args.channels, "num_blocks": args.blocks}, args.channel_mult)


def run_train(args: argparse.Namespace) -> int:
    """Train with :func:`~ambient_omni.annotate.classifier_task.train_classifier`."""
    import os
    from pathlib import Path

    from ambient_omni.annotate.classifier_task import train_classifier
    from ambient_omni.errors import AmbientError
    from ambient_omni.files import read_json

    crop = args.kind == "crop"
    if crop and not args.crop_size:
        raise AmbientError("--kind crop needs --crop-size C")
    if args.crop_size is not None and (not crop or args.crop_size < 1):
        raise AmbientError("--crop-size is a positive size for --kind crop only")
    if (args.holdout is not None or args.folds is not None) and (crop or not args.data):
        raise AmbientError("--holdout and --folds are for noise classifiers on a --data folder")
    if (args.folds is None) != (args.fold is None):
        raise AmbientError("--folds K and --fold k go together (cross-fitting: train once for each k in 0 .. K-1)")
    if args.folds is not None and args.holdout is not None:
        raise AmbientError("give --holdout FRACTION or --folds K --fold k, not both")
    positives, negatives, sources = _classes(args)
    folder = train_classifier(
        _network(args, positives.shape[1]), positives, negatives, args.out, crop_size=args.crop_size if crop else None,
        balanced=not args.unbalanced, p_mean=args.p_mean, p_std=args.p_std, sigma_cap=args.sigma_cap,
        total_images=int((args.kimg if args.kimg is not None else 50.0) * 1000), steps=args.steps,
        batch_size=args.batch, lr=args.lr, lr_rampup_images=args.lr_rampup, ema_halflife_images=args.ema_halflife,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, seed=args.seed, device=args.device,
        bf16=not args.no_bf16, progress=not args.no_progress, info=sources)
    if int(os.environ.get("RANK") or 0) != 0:
        return 0
    check = read_json(Path(args.out) / "check.json")
    print(f"classifier written to {folder}; accuracy {check['accuracy']:.3f} on {check['images']} training images "
          f"per class at sigma {check['sigma']:.3g} (the {check['quantile']:.0%} quantile of its training sigmas)")
    return 0
