"""``ambient autoencoder train``: the image <-> latent autoencoder of latent diffusion (issue 19)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Train a small convolutional VAE on the images of a dataset folder with the shared training loop
(resume, EMA, logs, checkpoints; the final EMA weights land in RUN/model as safetensors + JSON).
Loss per image: mean squared reconstruction error + --beta x KL(q(z|x) || N(0, I)) per latent value.
Afterwards it writes RUN/reconstructions.png (top row: images, bottom row: decode(encode(image)))
and prints the reconstruction error. The preset fmnist-ae maps 28x28x1 images to 4x7x7 latents."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``autoencoder`` with its ``train`` action."""
    parser = subparsers.add_parser("autoencoder", help="train the autoencoder of latent diffusion",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("train", help="train an autoencoder into a run folder", description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder (all its images are used)")
    p.add_argument("--out", required=True, help="run folder (created; reused to resume)")
    p.add_argument("--preset", default="fmnist-ae", help="network preset (default fmnist-ae)")
    p.add_argument("--latent-channels", type=int, help="override latent_channels")
    p.add_argument("--channels", type=int, help="override model_channels")
    p.add_argument("--channel-mult", help="override channel_mult, e.g. 1,2,2 (factor 2^(levels-1))")
    p.add_argument("--blocks", type=int, help="override num_blocks")
    p.add_argument("--beta", type=float, default=1e-4, help="KL weight (default 1e-4)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--kimg", type=float, default=50.0, help="training length in thousands of images (default 50)")
    length.add_argument("--steps", type=int, help="training length in optimizer steps")
    p.add_argument("--batch", type=int, default=64, help="global batch size (default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--lr-rampup", type=int, default=2000, metavar="IMAGES", help="default 2000")
    p.add_argument("--ema-halflife", type=float, default=2000, metavar="IMAGES", help="default 2000")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=500, metavar="STEPS")
    p.add_argument("--log-every", type=int, default=50, metavar="STEPS")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: $AMBIENT_DEVICE, else CUDA if available)")
    p.add_argument("--no-bf16", action="store_true", help="train in float32 (default: bf16 autocast where native)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)


def _network(args: argparse.Namespace, channels: int) -> dict:
    """The preset with the command line's overrides; a preset of another kind is an error."""
    from ambient_omni.cli._options import preset_network

    overrides = {"latent_channels": args.latent_channels, "model_channels": args.channels, "num_blocks": args.blocks}
    return preset_network(args.preset, "autoencoder", channels, overrides, args.channel_mult)


def run_train(args: argparse.Namespace) -> int:
    """Train (:func:`~ambient_omni.training.autoencoder_task.train_autoencoder`), then picture and measure."""
    import os
    from pathlib import Path

    import torch

    from ambient_omni.data.dataset_folder import load_dataset
    from ambient_omni.training.autoencoder_task import train_autoencoder
    from ambient_omni.training.checkpoint import load_model
    from ambient_omni.training.loop import TrainConfig
    from ambient_omni.training.preview import save_grid

    data = load_dataset(args.data)
    config = TrainConfig(total_images=int(args.kimg * 1000), steps=args.steps, batch_size=args.batch, lr=args.lr,
                         lr_rampup_images=args.lr_rampup, ema_halflife_images=args.ema_halflife,
                         checkpoint_every=args.checkpoint_every, log_every=args.log_every, seed=args.seed,
                         device=args.device, bf16=not args.no_bf16, progress=not args.no_progress)
    config.validate()
    folder = train_autoencoder(_network(args, data.images.shape[1]), data.images, args.out, beta=args.beta,
                               config=config, info={"data": args.data})
    if int(os.environ.get("RANK") or 0) != 0:
        return 0
    model = load_model(folder)
    shown = data.images[:16]
    with torch.no_grad():
        recon = model(data.images[:1024]).clamp(-1, 1)
    error = float((recon - data.images[:1024]).square().mean())
    picture = save_grid(Path(args.out) / "reconstructions.png", torch.cat([shown, recon[: len(shown)]]),
                        columns=len(shown), scale=2)
    print(f"autoencoder written to {folder}; mean squared reconstruction error {error:.4g} on "
          f"{min(len(data), 1024)} of its images (pixels in [-1, 1]); picture: {picture}")
    return 0
