"""Load a trained denoiser (model folder, run folder or checkpoint) and draw seeded samples from it.

Images depend only on their seed (the sampler seeds each image's noise by its seed), never on
the batch size. Labels of a class-conditional model: ``class_label`` for every image if given,
else ``seed mod num_classes`` (so a seed always gets the same class); unconditional: ``-1``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ambient_omni.errors import AmbientError
from ambient_omni.training import checkpoint as ckpt

_RANGE = re.compile(r"^(\d+)-(\d+)$")


def parse_seeds(text: str) -> list[int]:
    """``"0-63"`` -> 0..63 (inclusive), ``"0,1,5"`` -> [0, 1, 5]; parts may be mixed: ``"0-3,10"``."""
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        match = _RANGE.match(part)
        if match:
            lo, hi = int(match[1]), int(match[2])
            if hi < lo:
                raise AmbientError(f"--seeds {text!r}: range {part} runs backwards")
            seeds.extend(range(lo, hi + 1))
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise AmbientError(f"--seeds {text!r}: expected ranges like 0-63 or lists like 0,1,5")
    return seeds


def load_denoiser(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any], str]:
    """``(model in eval mode, its config, where it came from)`` for a model folder or a run folder.

    A run folder gives its ``model/`` (final EMA weights) or, while still training, the EMA
    weights of its latest complete checkpoint.
    """
    path = Path(path)
    if (path / "model.safetensors").is_file():
        return ckpt.load_model(path, device), ckpt.read_model_config(path), str(path)
    if (path / "model" / "model.safetensors").is_file():
        folder = path / "model"
        return ckpt.load_model(folder, device), ckpt.read_model_config(folder), str(folder)
    ref = ckpt.find_latest_checkpoint(path)
    if ref is None:
        raise AmbientError(f"--model {path}: neither a model folder nor a run folder with model/ or checkpoints")
    tensors, meta = ckpt.load_checkpoint(ref)
    config = meta["task_config"]
    model = ckpt.build_model(config)
    model.load_state_dict(ckpt.unprefixed("ema", tensors))
    return model.to(device).eval(), config, f"{ref.json_path} (EMA)"


def sample_labels(seeds: list[int], num_classes: int, class_label: int | None) -> torch.Tensor:
    """Labels for ``seeds`` (see module doc); validates ``class_label``."""
    if class_label is not None:
        if not 0 <= class_label < max(num_classes, 0):
            raise AmbientError(f"--class {class_label}: the model has {num_classes} classes "
                               + ("(it is unconditional)" if num_classes <= 0 else f"(0..{num_classes - 1})"))
        return torch.full((len(seeds),), class_label, dtype=torch.int64)
    if num_classes > 0:
        return torch.tensor([s % num_classes for s in seeds], dtype=torch.int64)
    return torch.full((len(seeds),), -1, dtype=torch.int64)


@torch.no_grad()
def generate(model: nn.Module, seeds: list[int], shape: tuple[int, int, int], steps: int = 18,
             batch_size: int = 64, labels: torch.Tensor | None = None, progress: bool = False,
             clamp: bool = True, **sampler_options: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples ``(N, C, H, W)`` in [-1, 1] (float32, CPU; ``clamp=False`` leaves them unclamped, as latents
    must be) for ``seeds`` and the labels used.

    ``sampler_options`` (``solver``, ``s_churn``, ``guidance``, ...) go to
    ``diffusion.samplers.edm_sampler``; all-``-1`` labels mean unconditional sampling.
    """
    from ambient_omni.diffusion.samplers import sample_images

    if labels is None:
        labels = torch.full((len(seeds),), -1, dtype=torch.int64)
    was_training = model.training
    model.eval()
    try:
        images = sample_images(model, len(seeds), seeds=list(seeds), shape=tuple(shape), batch_size=batch_size,
                               labels=None if bool((labels < 0).all()) else labels, progress=progress,
                               steps=steps, **sampler_options)
    finally:
        model.train(was_training)
    images = images.float().cpu()
    return (images.clamp(-1, 1) if clamp else images), labels


def is_latent(config: dict[str, Any]) -> bool:
    """Whether a denoiser's model config says it was trained on a latent dataset."""
    return config.get("latent") is not None


def decode_samples(samples: torch.Tensor, config: dict[str, Any]) -> torch.Tensor:
    """Images of a denoiser's samples: decoded by the recorded autoencoder for a latent model, else as they are."""
    if not is_latent(config):
        return samples
    from ambient_omni.latents import decode_latents

    return decode_latents(samples, config["latent"])
