"""Latent datasets for latent diffusion (issue 19): an autoencoder's codes of a dataset folder, scaled per channel.

:mod:`.codec` is the encoder interface (this project's autoencoder, or a diffusers ``AutoencoderKL`` from a local
folder); :mod:`.dataset` encodes a dataset folder into a latent one and decodes latents back to images.
"""

from ambient_omni.latents.codec import AutoencoderCodec, DiffusersCodec, LatentCodec, load_codec
from ambient_omni.latents.dataset import decode_latents, encode_dataset, latent_scale

__all__ = ["AutoencoderCodec", "DiffusersCodec", "LatentCodec", "decode_latents", "encode_dataset", "latent_scale",
           "load_codec"]
