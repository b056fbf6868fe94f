"""``ambient latents encode``: a dataset folder -> the latent dataset folder of latent diffusion (issue 19)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Encode every image of a dataset folder with an autoencoder and write a latent dataset folder: the same ids,
labels, manifest and provenance, float32 latents scaled per channel to mean 0 and standard deviation 0.5
(sigma_data), and dataset.json['latent'] with the autoencoder's identity (its weights' SHA-256), the shift and
scale and the pixel dataset it came from. `ambient classifier train`, `ambient annotate` and `ambient train`
work on it as on an image folder, with every noise level in these latent units; `ambient sample` on a model
trained on it decodes the samples to images (checking that the autoencoder is still the recorded one), so
`ambient eval` compares images.

  --autoencoder RUN   this project's autoencoder (`ambient autoencoder train`)
  --diffusers FOLDER  a diffusers AutoencoderKL saved locally (optional dependency `diffusers`)"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``latents`` with its ``encode`` action."""
    parser = subparsers.add_parser("latents", help="encode a dataset folder into latents", description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    e = actions.add_parser("encode", help="write the latent dataset folder of a dataset folder",
                           description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--data", required=True, help="dataset folder of images")
    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument("--autoencoder", help="autoencoder run or model folder")
    source.add_argument("--diffusers", help="local folder of a diffusers AutoencoderKL")
    e.add_argument("--out", required=True, help="latent dataset folder to write (must be empty or new)")
    e.add_argument("--batch", type=int, default=256, help="images per encoder call (default 256)")
    e.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    e.set_defaults(func=run_encode)


def run_encode(args: argparse.Namespace) -> int:
    """Encode (:func:`~ambient_omni.latents.dataset.encode_dataset`) and write the folder."""
    from ambient_omni.data.dataset_folder import load_dataset, write_dataset
    from ambient_omni.latents import AutoencoderCodec, DiffusersCodec, encode_dataset

    data = load_dataset(args.data)
    codec = (AutoencoderCodec(args.autoencoder) if args.autoencoder
             else DiffusersCodec(args.diffusers, int(data.images.shape[1])))
    latents = encode_dataset(data, codec, batch=args.batch)
    command = f"ambient latents encode --data {data.path.name} " + (
        f"--autoencoder {args.autoencoder}" if args.autoencoder else f"--diffusers {args.diffusers}")
    info = write_dataset(args.out, latents, command=command, overwrite=args.overwrite)
    c, h, w = info["shape"]
    print(f"wrote {args.out}: {info['n']} latents {c}x{h}x{w} of {data.path.name} "
          f"({'x'.join(str(v) for v in data.images.shape[1:])} images); scale per channel "
          + ", ".join(f"{v:.3g}" for v in latents.latent["scale"]))
    return 0
