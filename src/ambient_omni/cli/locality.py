"""``ambient locality``: how much context a trained denoiser needs at each sigma -> crop size to sigma_max map."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Measure the locality of a trained denoiser (paper section 2.4, Figures 15-18). For each sigma of
the grid, the centre --patch x --patch of noisy images is denoised by the network seeing only a
C x C crop around it (a real crop: the U-Net takes any input size), for each C of --crop-sizes,
and by the network seeing the whole image. The effective crop size at sigma is the smallest C
whose patch MSE is within --tol (ABSOLUTE, default 1e-3) of the full-context MSE; it is made
non-decreasing in sigma with a running maximum. The map C -> sigma_max (largest sigma where C
suffices; 0 if none) is written with the raw curves to --out (JSON) and plotted to OUT.png."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``locality`` subcommand."""
    p = subparsers.add_parser("locality", help="crop size -> sigma_max map of a denoiser", description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="denoiser run folder (uses RUN/model) or model folder")
    p.add_argument("--data", required=True, help="dataset folder (its clean images are used)")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--images", type=int, default=256, help="clean images to average over (default 256)")
    p.add_argument("--sigmas", default="0.01,0.025,0.05,0.1,0.15,0.2,0.35,0.5,0.7,1.0,1.5",
                   help="comma-separated increasing sigmas")
    p.add_argument("--crop-sizes", help="comma-separated crop sizes (default 4,6,8,...,image size)")
    p.add_argument("--patch", type=int, default=2, help="centre patch size (default 2)")
    p.add_argument("--tol", type=float, default=1e-3, help="absolute MSE tolerance (default 1e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--device", help="cpu, cuda, ...")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure, write the JSON and the plot (:func:`~ambient_omni.annotate.locality.dataset_locality`)."""
    from ambient_omni.annotate import locality
    from ambient_omni.data.dataset_folder import load_dataset
    from ambient_omni.errors import AmbientError

    try:
        sigmas = [float(s) for s in args.sigmas.split(",")]
        sizes = [int(c) for c in args.crop_sizes.split(",")] if args.crop_sizes else None
    except ValueError:
        raise AmbientError("--sigmas and --crop-sizes must be comma-separated numbers") from None
    report = locality.dataset_locality(args.model, load_dataset(args.data), args.out, images=args.images,
                                       sigmas=sigmas, crop_sizes=sizes, patch=args.patch, tol=args.tol,
                                       seed=args.seed, batch_size=args.batch, device=args.device)
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.png')}; "
          f"crop size -> sigma_max: {report['crop_to_sigma_max']}")
    return 0
