"""``ambient sample``: draw seeded images from a trained denoiser (grid.png + samples.npz + settings JSON)."""

from __future__ import annotations

import argparse
from typing import Any

DESCRIPTION = """\
Draw images from a trained denoiser. --model is a model folder (config.json + model.safetensors)
or a run folder (uses RUN/model, or the EMA weights of the latest checkpoint while training).
Each image depends only on its seed. Writes OUT/grid.png, OUT/samples.npz (images uint8
N,C,H,W; seeds; labels) and OUT/sampling.json (the settings). Class-conditional models use
--class C for every image, else class = seed mod number of classes."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sample`` subcommand."""
    p = subparsers.add_parser("sample", help="draw seeded images from a trained denoiser",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="run folder or model folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seeds", default=None, help="seeds, e.g. 0-63 or 0,1,5 (default: 0..N-1)")
    p.add_argument("--n", type=int, default=None, help="number of images (default 64; with --seeds: their count)")
    p.add_argument("--steps", type=int, default=18, help="sampler steps (default 18)")
    p.add_argument("--solver", choices=("heun", "euler"), default="heun", help="ODE solver (default heun)")
    p.add_argument("--churn", type=float, default=0.0, help="stochastic churn S_churn (default 0: deterministic ODE)")
    p.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance weight (default 1: off)")
    p.add_argument("--class", dest="class_label", type=int, help="class label for every image (conditional models)")
    p.add_argument("--prompt", help="caption for every image (text-conditional models, `ambient train --captions`); "
                   "without it they sample unconditionally")
    p.add_argument("--batch", type=int, default=64, help="images per forward batch (results do not depend on it)")
    p.add_argument("--bf16", action="store_true", help="run the network under bf16 autocast where the CPU has "
                   "native bf16 or on CUDA (the ODE stays in float64; docs/RESULTS.md section 4: speed and FD)")
    p.add_argument("--device", help="cpu, cuda, ... (default: $AMBIENT_DEVICE, else CUDA if available)")
    p.add_argument("--scale", type=int, default=2, help="pixel enlargement of grid.png (default 2)")
    p.set_defaults(func=run)


def _seeds(args: argparse.Namespace) -> list[int]:
    from ambient_omni.errors import AmbientError
    from ambient_omni.training.sampling import parse_seeds

    seeds = parse_seeds(args.seeds) if args.seeds is not None else list(range(args.n if args.n is not None else 64))
    if args.n is not None and args.seeds is not None and args.n != len(seeds):
        raise AmbientError(f"--n {args.n} disagrees with --seeds {args.seeds} ({len(seeds)} seeds)")
    if not seeds:
        raise AmbientError("--n / --seeds: nothing to sample")
    return seeds


def _require_denoiser(config: dict, model: str) -> None:
    """A one-line error unless ``config`` is a denoiser's (a noise or crop classifier has no image shape to sample)."""
    from ambient_omni.errors import AmbientError

    if config.get("kind", "denoiser") != "denoiser" or "image_shape" not in config:
        raise AmbientError(f"--model {model}: this is a {config.get('kind', 'unknown')} model, not a denoiser; "
                           "`ambient sample` needs a run or model folder from `ambient train`")


def _conditioning(args: argparse.Namespace, config: dict, seeds: list[int]) -> Any:
    """Class labels (conditional models), the prompt's embedding per image (text models), or none."""
    import torch

    from ambient_omni.errors import AmbientError
    from ambient_omni.training.sampling import sample_labels

    text = bool(config["network"].get("text_dim"))
    if args.prompt is not None and not text:
        raise AmbientError(f"--prompt: {args.model} is not a text-conditional model (train one with --captions)")
    if text:
        if args.class_label is not None:
            raise AmbientError("--class: a text-conditional model takes --prompt instead")
        if args.prompt is None:
            return torch.full((len(seeds),), -1, dtype=torch.int64)  # unconditional: the null caption
        from ambient_omni.data.captions import caption_embeddings

        return caption_embeddings([args.prompt]).expand(len(seeds), -1).contiguous()
    return sample_labels(seeds, int(config.get("num_classes", 0)) if config["network"].get("label_dim") else 0,
                         args.class_label)


def run(args: argparse.Namespace) -> int:
    """Load the model, sample, write the grid, the arrays and the settings."""
    import io
    from pathlib import Path

    import numpy as np
    import torch

    from ambient_omni.data.imageset import to_uint8
    from ambient_omni.device import pick_device
    from ambient_omni.files import atomic_write_bytes, write_json
    from ambient_omni.training.preview import save_grid
    from ambient_omni.training.sampling import decode_samples, generate, is_latent, load_denoiser

    seeds = _seeds(args)
    device = pick_device(args.device)
    model, config, source = load_denoiser(args.model, device)
    _require_denoiser(config, args.model)
    shape = tuple(config["image_shape"])
    labels = _conditioning(args, config, seeds)
    options = {"solver": args.solver, "s_churn": args.churn, "guidance": args.guidance, "bf16": args.bf16}
    samples, labels = generate(model, seeds, shape, steps=args.steps, batch_size=args.batch, labels=labels,
                               progress=True, clamp=not is_latent(config), **options)
    images = decode_samples(samples, config)  # a latent model's samples decoded by its recorded autoencoder
    codes = to_uint8(images).numpy()
    class_labels = labels if not labels.is_floating_point() else torch.full((len(seeds),), -1)  # prompt: sampling.json
    out = Path(args.out)
    buffer = io.BytesIO()
    latents = {"latents": samples.numpy()} if is_latent(config) else {}
    np.savez(buffer, images=codes, seeds=np.asarray(seeds, dtype=np.int64), labels=class_labels.numpy(), **latents)
    atomic_write_bytes(out / "samples.npz", buffer.getvalue())
    save_grid(out / "grid.png", codes, scale=args.scale)
    write_json(out / "sampling.json", {"model": source, "n": len(seeds), "seeds": args.seeds or f"0-{len(seeds) - 1}",
                                       "steps": args.steps, "batch": args.batch, "device": str(device),
                                       "class": args.class_label, "prompt": args.prompt, "image_shape": list(shape),
                                       "latent": is_latent(config),
                                       **options})
    print(f"{len(seeds)} samples written to {out} (grid.png, samples.npz, sampling.json)")
    return 0
