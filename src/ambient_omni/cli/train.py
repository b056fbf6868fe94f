"""``ambient train``: train a denoiser on a dataset folder with the ambient loss (DDP via torchrun)."""

from __future__ import annotations

import argparse
import math

from ambient_omni.errors import AmbientError

LOSS_TARGETS = ("ambient", "x0")
"""``AmbientLoss.target`` values (``diffusion.ambient_loss.TARGETS``, written out so ``--help`` needs no torch)."""

DESCRIPTION = """\
Train a diffusion denoiser (EDM preconditioning + U-Net) on a dataset folder with the ambient loss.
Without --annotations every image is treated as clean (plain EDM training). The run folder gets
config.json, log.jsonl, checkpoints/ (safetensors + JSON), samples/ (previews) and, at the end,
model/ (EMA weights; use it with `ambient sample`).

Resuming: running the same command again continues from the latest complete checkpoint in --out
(settings that change the trajectory must match); --resume insists on one. A damaged newest checkpoint
is skipped with a warning; checkpoint files of which none is intact are an error (use a new --out to
start over). Several processes:
  torchrun --nproc_per_node 2 -m ambient_omni.cli.main train --data D --out R ...
(--batch is the global batch, split over the processes; results match one process)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser("train", help="train a denoiser (ambient loss) on a dataset folder",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder (written by `ambient corrupt` / `ambient combine`)")
    p.add_argument("--annotations", help="annotations.jsonl for the dataset (default: every image clean)")
    p.add_argument("--out", required=True, help="run folder (created; reused to resume)")
    p.add_argument("--preset", default="fmnist-small", help="network preset (default: fmnist-small)")
    p.add_argument("--channels", type=int, help="override the preset's base channel count (model_channels)")
    p.add_argument("--blocks", type=int, help="override the preset's residual blocks per level (num_blocks)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--kimg", type=float, help="training length in thousands of images")
    length.add_argument("--images", type=int, help="training length in images (default 100000)")
    length.add_argument("--steps", type=int, help="training length in optimizer steps")
    p.add_argument("--batch", type=int, default=64, help="global batch size (default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--lr-rampup", type=int, default=10_000, metavar="IMAGES",
                   help="linear learning-rate warm-up over this many images (default 10000)")
    p.add_argument("--grad-clip", type=float, help="clip the global gradient norm to this value (default: off)")
    p.add_argument("--ema-halflife", type=float, default=10_000, metavar="IMAGES",
                   help="EMA half-life in images (default 10000, warm-up ratio 0.05)")
    p.add_argument("--ema-decay", type=float, help="fixed EMA decay per step instead of the half-life")
    p.add_argument("--seed", type=int, default=0, help="training seed (init, batches, noise)")
    p.add_argument("--resume", action="store_true", help="require a checkpoint in --out to continue from")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    p.add_argument("--cond", action="store_true", help="class-conditional model (label dropout for guidance)")
    p.add_argument("--captions", help="caption file (JSON Lines id, text; `ambient captions make`): a text-conditional "
                   "model on the captions' all-MiniLM-L6-v2 embeddings, caption dropout --label-dropout")
    p.add_argument("--label-dropout", type=float, default=0.1,
                   help="label (--cond) or caption (--captions) dropout (default 0.1)")
    p.add_argument("--no-ambient-weight", action="store_true", help="drop the ambient weight w_amb (ablation)")
    p.add_argument("--variance-weight", action="store_true",
                   help="weight each ambient sample by the inverse of its target's excess variance, "
                        "a / (1 + sigma_min^2 / sigma_data^2) (not in the paper; docs/RESULTS.md)")
    p.add_argument("--loss-target", choices=LOSS_TARGETS, default="ambient",
                   help="ambient (the paper's loss) or x0: regress on the image itself at the levels its annotation "
                        "admits; same minimizer, less target noise (not in the paper; docs/RESULTS.md section 7)")
    p.add_argument("--buffer-s", type=float, default=4.0, help="buffer s: sigma_t > sqrt(s/(s-1)) sigma_min (default 4)")
    p.add_argument("--p-mean", type=float, default=-1.2, help="training log-sigma mean (default -1.2)")
    p.add_argument("--p-std", type=float, default=1.2, help="training log-sigma std (default 1.2)")
    p.add_argument("--checkpoint-every", type=int, default=500, metavar="STEPS", help="default 500")
    p.add_argument("--keep", type=int, default=3, help="checkpoints to keep (default 3)")
    p.add_argument("--log-every", type=int, default=50, metavar="STEPS", help="default 50")
    p.add_argument("--preview-every", type=int, default=0, metavar="STEPS",
                   help="write an EMA sample grid to samples/ every N steps (default 0: off; always at the end if > 0)")
    p.add_argument("--preview-n", type=int, default=64, help="images in each preview grid (default 64)")
    p.add_argument("--preview-steps", type=int, default=12, help="sampler steps of the previews (default 12)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: $AMBIENT_DEVICE, else CUDA if available)")
    p.add_argument("--compile", action="store_true", help="run the training step through torch.compile (falls "
                   "back to eager with a warning if compiling fails; on this CPU it was not faster: RESULTS section 4)")
    p.add_argument("--no-bf16", action="store_true",
                   help="train in float32 (default: bf16 autocast on CUDA and on CPUs with native bf16; "
                        "AMBIENT_CPU_BF16=0|1 forces the CPU choice)")
    p.add_argument("--tensorboard", action="store_true", help="also log to RUN/tensorboard (needs tensorboard)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _total_images(args: argparse.Namespace) -> int:
    """The run length in images from --kimg / --images (default 100000)."""
    if args.kimg is not None:
        if not (math.isfinite(args.kimg) and args.kimg > 0):
            raise AmbientError(f"--kimg must be a positive finite number, got {args.kimg}")
        return int(round(args.kimg * 1000))
    return args.images if args.images is not None else 100_000


def _overrides(args: argparse.Namespace) -> dict[str, int]:
    pairs = (("model_channels", args.channels), ("num_blocks", args.blocks))
    return {name: value for name, value in pairs if value is not None}


def run(args: argparse.Namespace) -> int:
    """Build the denoiser task and the trainer from ``args`` and train."""
    from ambient_omni.training.distributed import init_distributed, shutdown_distributed
    from ambient_omni.training.loop import Trainer, TrainConfig
    from ambient_omni.training.tasks import DenoiserSettings, DenoiserTask

    config = TrainConfig(
        total_images=_total_images(args), steps=args.steps, batch_size=args.batch, lr=args.lr,
        lr_rampup_images=args.lr_rampup, grad_clip=args.grad_clip, ema_halflife_images=args.ema_halflife,
        ema_decay=args.ema_decay, checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep,
        log_every=args.log_every, preview_every=args.preview_every, seed=args.seed, device=args.device,
        bf16=not args.no_bf16, compile=args.compile, progress=not args.no_progress, tensorboard=args.tensorboard,
        resume="require" if args.resume else "auto")
    config.validate()
    settings = DenoiserSettings(
        data=args.data, annotations=args.annotations, preset=args.preset, network_overrides=_overrides(args),
        conditional=args.cond, captions=args.captions,
        label_dropout=args.label_dropout, p_mean=args.p_mean, p_std=args.p_std, buffer_s=args.buffer_s,
        ambient_weight=not args.no_ambient_weight, variance_weight=args.variance_weight, loss_target=args.loss_target, batch_size=args.batch,
        seed=args.seed, workers=args.workers,
        preview_n=args.preview_n, preview_steps=args.preview_steps)
    dist_info = init_distributed(args.device)
    try:
        task = DenoiserTask(settings)
        if dist_info.is_main:
            print(task.describe())
        folder = Trainer(task, config, args.out, dist_info=dist_info).run()
        if dist_info.is_main:
            print(f"model written to {folder}")
    finally:
        shutdown_distributed()
    return 0
