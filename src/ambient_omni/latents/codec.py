"""The encoder interface of latent diffusion: images in [-1, 1] <-> unscaled latents, with an identity to check.

A codec has ``encode(images) -> latents`` (the posterior mean: deterministic), ``decode(latents) -> images`` and
``identity() -> dict``: what a latent folder records so that the same autoencoder decodes it later. The identity
holds the autoencoder's weight file hash; :func:`load_codec` rebuilds the codec from it and refuses another one.

- :class:`AutoencoderCodec`: this project's VAE (``ambient autoencoder train``), from its model folder.
- :class:`DiffusersCodec`: a diffusers ``AutoencoderKL`` saved in a local folder (``diffusers`` is an optional
  dependency, never downloaded from here). Grey images are repeated to its three input channels, and its three
  output channels averaged back, when the autoencoder is an RGB one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from ambient_omni.errors import AmbientError


@runtime_checkable
class LatentCodec(Protocol):
    """What latent datasets need from an autoencoder (module doc)."""

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...

    def identity(self) -> dict[str, Any]: ...


class AutoencoderCodec:
    """This project's :class:`~ambient_omni.networks.autoencoder.Autoencoder`, from a run or model folder."""

    def __init__(self, path: str | os.PathLike) -> None:
        from ambient_omni.training.checkpoint import load_model, model_folder, read_model_config

        self.folder = model_folder(path).resolve()
        config = read_model_config(self.folder)
        if config.get("kind") != "autoencoder":
            raise AmbientError(f"{path}: a model of kind {config.get('kind')!r}, not an autoencoder "
                               "(train one with `ambient autoencoder train`)")
        self.sha256 = str(config.get("sha256"))
        self.model = load_model(self.folder)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The posterior mean ``mu(x)``."""
        with torch.no_grad():
            return self.model.encode(images.float())[0]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``decode(z)`` clamped to [-1, 1]."""
        with torch.no_grad():
            return self.model.decode(latents.float()).clamp(-1, 1)

    def identity(self) -> dict[str, Any]:
        """Kind, model folder and the SHA-256 of its weights."""
        return {"kind": "ambient-autoencoder", "model": str(self.folder), "sha256": self.sha256}


class DiffusersCodec:
    """A diffusers ``AutoencoderKL`` from a local folder (``save_pretrained`` layout), for ``channels``-channel
    images; latents are its ``latent_dist.mean`` (no diffusers scaling factor: the latent folder scales them)."""

    WEIGHTS = "diffusion_pytorch_model.safetensors"

    def __init__(self, folder: str | os.PathLike, channels: int) -> None:
        try:
            from diffusers import AutoencoderKL
        except ImportError:
            raise AmbientError("a diffusers autoencoder needs the optional package diffusers "
                               "(pip install diffusers)") from None
        self.folder = Path(folder).resolve()
        weights = self.folder / self.WEIGHTS
        if not weights.is_file():
            raise AmbientError(f"{folder}: no {self.WEIGHTS} (save the autoencoder with save_pretrained(..., "
                               "safe_serialization=True))")
        self.sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()
        self.vae = AutoencoderKL.from_pretrained(str(self.folder), local_files_only=True).eval()
        self.channels, self.vae_channels = int(channels), int(self.vae.config.in_channels)
        if self.channels not in (1, self.vae_channels):
            raise AmbientError(f"{folder}: an autoencoder for {self.vae_channels}-channel images cannot encode "
                               f"{self.channels}-channel ones")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``latent_dist.mean`` of the images (grey repeated to the autoencoder's channels)."""
        x = images.float()
        if x.shape[1] != self.vae_channels:
            x = x.repeat(1, self.vae_channels, 1, 1)
        with torch.no_grad():
            return self.vae.encode(x).latent_dist.mean

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Decoded images clamped to [-1, 1] (channels averaged back to grey for grey images)."""
        with torch.no_grad():
            x = self.vae.decode(latents.float()).sample
        if self.channels != self.vae_channels:
            x = x.mean(1, keepdim=True)
        return x.clamp(-1, 1)

    def identity(self) -> dict[str, Any]:
        """Kind, folder, image channels and the SHA-256 of the weights."""
        return {"kind": "diffusers-autoencoderkl", "model": str(self.folder), "channels": self.channels,
                "sha256": self.sha256}


def load_codec(identity: dict[str, Any]) -> LatentCodec:
    """The codec a latent folder recorded; an error if its weights are not the recorded ones any more."""
    kind = identity.get("kind")
    if kind == "ambient-autoencoder":
        codec: LatentCodec = AutoencoderCodec(identity["model"])
    elif kind == "diffusers-autoencoderkl":
        codec = DiffusersCodec(identity["model"], int(identity["channels"]))
    else:
        raise AmbientError(f"unknown autoencoder kind {kind!r} in the latent dataset")
    if codec.identity()["sha256"] != identity.get("sha256"):
        raise AmbientError(f"{identity['model']}: not the autoencoder these latents were made with (its weights' "
                           "SHA-256 differs from the one the latent dataset records)")
    return codec


__all__ = ["AutoencoderCodec", "DiffusersCodec", "LatentCodec", "load_codec"]
