"""``ambient benchmark-annotate``: classifier calls/s and images/s of noise annotation, by inference path.

Each path annotates the same images with the same search (:func:`ambient_omni.annotate.noise.annotate_images`,
the code ``ambient annotate noise`` runs) and the same noise draws; the paths differ only in how the classifier
runs: ``fp32`` (today's reference: float32, eager), ``bf16`` (bf16 autocast where the CPU has native bf16),
``bf16+compile`` (also ``torch.compile``, static batch). Paths run interleaved, chunk by chunk, so they see the
same machine state. Printed per path: classifier calls/s, images/s, the time for 10,000 images at this rate,
and the share of images whose sigma_min equals the fp32 path's (with the largest ratio between them).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

PATHS = {"fp32": (False, False), "bf16": (True, False), "bf16+compile": (True, True)}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``benchmark-annotate`` subcommand."""
    p = subparsers.add_parser("benchmark-annotate", help="measure noise-annotation speed (calls/s, images/s)",
                              description=__doc__.split("\n\n", 1)[1].replace("\n", " "))
    p.add_argument("--classifier", help="noise classifier run or model folder (default: --preset, randomly "
                                        "initialised: speed only, its sigma_min mean nothing)")
    p.add_argument("--preset", default="fmnist-classifier-small", help="classifier preset without --classifier")
    p.add_argument("--images", type=int, default=128, help="images to annotate per path (default 128)")
    p.add_argument("--chunk", type=int, default=32, help="images per interleaved chunk (default 32)")
    p.add_argument("--batch", type=int, default=256, help="classifier inputs per call of the fast paths "
                                                          "(the fp32 path keeps today's 2048)")
    p.add_argument("--max-points", type=int, default=256, help="fast-search grid points per image (default 256 "
                                                               "= at most 512 calls with 2 draws)")
    p.add_argument("--draws", type=int, default=2, help="noise draws per grid point (default 2)")
    p.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--device", help="cpu, cuda, ... (default: $AMBIENT_DEVICE, else CUDA if available)")
    p.add_argument("--corruption", default="blur:sigma=1.0", help="corruption of the Fashion-MNIST test images "
                                                                  "to annotate (default blur:sigma=1.0)")
    p.set_defaults(func=run)


def _classifier(args: argparse.Namespace) -> torch.nn.Module:
    from ambient_omni.networks.registry import build_network, preset_config
    from ambient_omni.training.checkpoint import load_model, model_folder

    if args.classifier:
        return load_model(model_folder(args.classifier))
    return build_network(preset_config(args.preset), init_seed=0)


def _images(args: argparse.Namespace) -> torch.Tensor:
    """Corrupted Fashion-MNIST test images (random images when the files are not installed)."""
    from ambient_omni.data.corruptions import parse_corruption
    from ambient_omni.data.readers import read_fashion_mnist
    from ambient_omni.errors import AmbientError

    try:
        clean = read_fashion_mnist("test").images[: args.images]
    except (AmbientError, FileNotFoundError):
        clean = torch.rand(args.images, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return parse_corruption(args.corruption)(clean, torch.arange(len(clean)), 0)


def run(args: argparse.Namespace) -> int:
    """Annotate ``--images`` images along every path, interleaved; print the rates and the agreement."""
    from ambient_omni.annotate.noise import NoiseAnnotationConfig, annotate_images, classifier_prob_fn
    from ambient_omni.errors import AmbientError

    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not paths or any(p not in PATHS for p in paths):
        raise AmbientError(f"--paths {args.paths!r}: choose from {', '.join(PATHS)}")
    if min(args.images, args.chunk, args.batch, args.threads, args.max_points, args.draws) < 1:
        raise AmbientError("--images, --chunk, --batch, --threads, --max-points and --draws must be positive")
    torch.set_num_threads(args.threads)
    from ambient_omni.device import pick_device

    model, images, cpu = _classifier(args), _images(args), pick_device(args.device)
    cfg = NoiseAnnotationConfig(max_points=args.max_points, draws=args.draws)
    probs = {p: classifier_prob_fn(model, cpu, bf16=PATHS[p][0], compile=PATHS[p][1],
                                   batch=2048 if p == "fp32" else args.batch) for p in paths}
    for p in paths:  # warm-up (and compile every padded size) outside the timing
        probs[p].warm_up(images[:1], torch.ones(1))
        annotate_images(probs[p], images[:2], np.arange(2), cfg, batch_size=2048)
    seconds, calls, sigma = dict.fromkeys(paths, 0.0), dict.fromkeys(paths, 0), {p: [] for p in paths}
    for start in range(0, len(images), args.chunk):
        ids = np.arange(start, min(start + args.chunk, len(images)))
        for p in paths if (start // args.chunk) % 2 == 0 else paths[::-1]:
            began = time.perf_counter()
            s, c = annotate_images(probs[p], images[ids], ids, cfg, batch_size=2048)
            seconds[p] += time.perf_counter() - began
            calls[p] += int(c.sum())
            sigma[p].append(s)
    print(f"{len(images)} images ({args.corruption}), {args.threads} threads, device {cpu}, classifier "
          f"{args.classifier or args.preset + ' (random init)'}, fast search <= {args.max_points} points x "
          f"{args.draws} draws")
    ref = np.concatenate(sigma[paths[0]])
    for p in paths:
        rate, s = calls[p] / seconds[p], np.concatenate(sigma[p])
        ratio = np.max(np.maximum(s / ref, ref / s)) if np.all(np.isfinite(s) & np.isfinite(ref)) else float("nan")
        print(f"{p:13s}: {rate:8.0f} calls/s, {len(images) / seconds[p]:7.2f} images/s, 10,000 images in "
              f"{10_000 / (len(images) / seconds[p]) / 60:6.1f} min; sigma_min equal to {paths[0]}'s for "
              f"{np.mean(s == ref):.1%} (largest ratio {ratio:.3f})")
    if "fp32" in paths:
        base = calls["fp32"] / seconds["fp32"]
        print("speed ratio against fp32: " + ", ".join(f"{p} {calls[p] / seconds[p] / base:.2f}x"
                                                        for p in paths if p != "fp32"))
    return 0
