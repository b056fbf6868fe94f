"""Latent dataset folders: encode a dataset folder with an autoencoder, decode latents back to images.

With ``mu_i`` the autoencoder's posterior mean of image ``i`` and per channel ``c`` the mean ``m_c`` and standard
deviation ``s_c`` of ``mu`` over the whole set (all images and positions), the stored latents are

    z_i = (mu_i - m_c) * (sigma_data / s_c)          so every channel has mean 0 and std sigma_data (0.5),

which is what the denoiser's EDM preconditioning assumes. ``dataset.json['latent']`` records the autoencoder's
identity, ``shift = m``, ``scale = sigma_data / s``, ``sigma_data``, the image shape and the pixel dataset it came
from; ids, labels, sources and provenance are the pixel folder's. Noise levels on a latent folder (annotation,
training, sampling) are in these scaled latent units. Decoding inverts the map: ``mu = z / scale + shift``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ambient_omni.data.mixed import MixedData
from ambient_omni.errors import AmbientError
from ambient_omni.latents.codec import LatentCodec, load_codec

SIGMA_DATA = 0.5


def latent_scale(latents: torch.Tensor, sigma_data: float = SIGMA_DATA) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(shift, scale) = (mean, sigma_data / std)`` of ``latents`` (N, C, h, w)."""
    if latents.ndim != 4 or len(latents) == 0:
        raise AmbientError(f"latent scale: need latents (N, C, h, w) with N >= 1, got shape {tuple(latents.shape)}")
    flat = latents.double().transpose(0, 1).flatten(1)
    std = flat.std(1, unbiased=False)
    if not bool((std > 0).all()):
        raise AmbientError(f"latent scale: channel(s) {torch.nonzero(std == 0).flatten().tolist()} are constant over the "
                           "dataset; the autoencoder does not use them")
    return flat.mean(1).float(), (sigma_data / std).float()


def _batched(fn: Any, x: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


def encode_dataset(data: Any, codec: LatentCodec, batch: int = 256, sigma_data: float = SIGMA_DATA) -> MixedData:
    """The latent dataset of ``data`` (a pixel :class:`~ambient_omni.data.dataset_folder.MixedDataset`), scaled as
    in the module doc; write it with :func:`~ambient_omni.data.dataset_folder.write_dataset`."""
    if getattr(data, "latent", None) is not None:
        raise AmbientError(f"{data.path}: already a latent dataset")
    if batch < 1:
        raise AmbientError(f"--batch must be a positive int, got {batch}")
    mu = _batched(codec.encode, data.images, batch)
    shift, scale = latent_scale(mu, sigma_data)
    z = (mu - shift[None, :, None, None]) * scale[None, :, None, None]
    latent = {"autoencoder": codec.identity(), "shift": shift.tolist(), "scale": scale.tolist(),
              "sigma_data": float(sigma_data), "image_shape": [int(v) for v in data.images.shape[1:]],
              "pixels": {"dataset": data.path.name, "sha256": data.sha256}}
    return MixedData(z.numpy().astype(np.float32), data.labels.numpy(), list(data.sources), data.source_index.copy(),
                     list(data.provenance), int(data.info["seed"]),
                     [{"encoded_from": data.path.name, "recipe": data.info.get("recipe", [])}],
                     list(data.info.get("class_names", [])), latent)


def decode_latents(latents: torch.Tensor, latent: dict[str, Any], codec: LatentCodec | None = None,
                   batch: int = 256) -> torch.Tensor:
    """Images in [-1, 1] of scaled ``latents`` (N, C, h, w) of a latent folder whose ``dataset.json['latent']`` is
    ``latent``; the codec is rebuilt (and checked) from the recorded identity unless given."""
    shift = torch.tensor(latent["shift"], dtype=torch.float32)
    scale = torch.tensor(latent["scale"], dtype=torch.float32)
    if latents.ndim != 4 or latents.shape[1] != len(shift):
        raise AmbientError(f"decode: need latents (N, {len(shift)}, h, w), got shape {tuple(latents.shape)}")
    codec = codec or load_codec(latent["autoencoder"])
    mu = latents.float() / scale[None, :, None, None] + shift[None, :, None, None]
    return _batched(codec.decode, mu, batch)


__all__ = ["SIGMA_DATA", "decode_latents", "encode_dataset", "latent_scale"]
