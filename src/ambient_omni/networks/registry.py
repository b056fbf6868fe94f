"""Build networks from JSON configs and read configs back from networks (no pickles, no eval).

A network config is a flat JSON object with a ``kind`` and the constructor arguments:

    {"kind": "unet", "in_channels": 1, "out_channels": 1, "model_channels": 32, ...}   -> UNet
    {"kind": "encoder", "in_channels": 1, ...}                                          -> UNetEncoder
    {"kind": "denoiser", "sigma_data": 0.5, <unet arguments>}                           -> EDMPrecond(UNet)
    {"kind": "classifier", "sigma_data": 0.5, <encoder arguments>}                      -> NoiseClassifier
    {"kind": "autoencoder", "in_channels": 1, "latent_channels": 4, ...}                  -> Autoencoder

Kinds come from the fixed table ``_KINDS``; unknown kinds or arguments are errors that name them.
Note for model folders whose top-level ``kind`` is ``"denoiser"`` and whose builder wraps the
network in ``EDMPrecond`` itself: their ``network`` entry must be the backbone (``kind: "unet"``),
i.e. ``network_config(precond.backbone)``.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ambient_omni.diffusion.edm import EDMPrecond
from ambient_omni.errors import AmbientError
from ambient_omni.networks.autoencoder import Autoencoder
from ambient_omni.networks.classifier import NoiseClassifier
from ambient_omni.networks.unet import UNet, UNetEncoder

_TUPLE_ARGS = ("channel_mult", "attn_levels")  # lists in JSON; num_blocks may be an int or a list


def _build_denoiser(sigma_data: float = 0.5, **unet: Any) -> EDMPrecond:
    """``EDMPrecond(UNet(**unet), sigma_data)``."""
    return EDMPrecond(UNet(**unet), sigma_data=sigma_data)


_KINDS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
    "encoder": UNetEncoder,
    "denoiser": _build_denoiser,
    "classifier": NoiseClassifier,
    "autoencoder": Autoencoder,
}

# Parameter counts are for the 28x28x1 (Fashion-MNIST) settings given here.
PRESETS: dict[str, dict[str, Any]] = {
    # 0.63M parameters: one block per level, conv_in's output fed to the last decoder level, the
    # fastest (validation loss after 4096 images 0.838 with the input skip, 0.886 without).
    "fmnist-small": {"kind": "denoiser", "sigma_data": 0.5, "in_channels": 1, "out_channels": 1,
                     "model_channels": 32, "channel_mult": [1, 2, 2], "num_blocks": 1, "input_skip": True},
    # 2.52M parameters: fmnist-small at twice the width (64 base channels, 4x the compute): the
    # capacity check of the 10% clean regime (issue 17 item 3, recipe `capacity`).
    "fmnist-wide": {"kind": "denoiser", "sigma_data": 0.5, "in_channels": 1, "out_channels": 1,
                    "model_channels": 64, "channel_mult": [1, 2, 2], "num_blocks": 1, "input_skip": True},
    # 1.00M parameters: one block at 28x28, two at 14x14 and 7x7, conv_in's output fed to the last
    # decoder level (the benchmark's default; docs/RESULTS.md "Network speed" for the measurements).
    "fmnist-base": {"kind": "denoiser", "sigma_data": 0.5, "in_channels": 1, "out_channels": 1,
                    "model_channels": 32, "channel_mult": [1, 2, 2], "num_blocks": [1, 2, 2],
                    "input_skip": True},
    # 0.51M-parameter encoder classifier for the noise-conditional quality classifier.
    "fmnist-classifier": {"kind": "classifier", "sigma_data": 0.5, "in_channels": 1,
                          "model_channels": 32, "channel_mult": [1, 2, 2], "num_blocks": 2},
    # 77k-parameter classifier, about 4.5x faster per call (1300 vs 285 inputs/s at 28x28 on 2 cores):
    # for annotating many images at hundreds of classifier calls each.
    "fmnist-classifier-small": {"kind": "classifier", "sigma_data": 0.5, "in_channels": 1,
                                "model_channels": 16, "channel_mult": [1, 2, 2], "num_blocks": 1},
    # Autoencoder for latent diffusion: 28x28x1 <-> 4x7x7 latents (factor 4, 196 numbers for 784 pixels).
    "fmnist-ae": {"kind": "autoencoder", "in_channels": 1, "latent_channels": 4, "model_channels": 32,
                  "channel_mult": [1, 2, 2], "num_blocks": 1},
}


def preset_config(name: str, **overrides: Any) -> dict[str, Any]:
    """A copy of ``PRESETS[name]`` with ``overrides`` applied (e.g. ``in_channels=3``)."""
    if name not in PRESETS:
        raise AmbientError(f"unknown network preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return {**copy.deepcopy(PRESETS[name]), **overrides}


def build_network(config: dict[str, Any], init_seed: int | None = None) -> nn.Module:
    """Build the network described by ``config`` (see module doc).

    ``init_seed``: initialise the weights from the global torch RNG seeded with it, inside a fork that
    leaves the caller's RNG state as it was (``None``: draw from the global RNG as it stands). Training
    code passes a seed derived from its run seed, so a run's initial weights depend on that seed only.
    """
    if not isinstance(config, dict) or "kind" not in config:
        raise AmbientError(f"network config must be an object with a 'kind' entry, got {config!r}")
    kind = config["kind"]
    if kind not in _KINDS:
        raise AmbientError(f"unknown network kind {kind!r}; known: {', '.join(sorted(_KINDS))}")
    builder = _KINDS[kind]
    args = {k: v for k, v in config.items() if k != "kind"}
    allowed = _argument_names(builder)
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise AmbientError(f"network config of kind {kind!r}: unknown option(s) {unknown}; "
                           f"allowed: {sorted(allowed)}")
    kwargs = {k: tuple(v) if k in _TUPLE_ARGS else v for k, v in args.items()}
    try:
        if init_seed is None:
            return builder(**kwargs)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            return builder(**kwargs)
    except TypeError as err:
        raise AmbientError(f"network config of kind {kind!r}: {err}") from None


def network_config(model: nn.Module) -> dict[str, Any]:
    """The JSON config that rebuilds ``model`` (built by :func:`build_network` or by its constructor)."""
    if type(model) is EDMPrecond and type(model.backbone) is UNet:
        return _json_config({"kind": "denoiser", "sigma_data": model.sigma_data, **model.backbone.init_args})
    for kind, cls in (("unet", UNet), ("encoder", UNetEncoder), ("classifier", NoiseClassifier),
                      ("autoencoder", Autoencoder)):
        if type(model) is cls:
            return _json_config({"kind": kind, **model.init_args})
    raise AmbientError(f"cannot describe a {type(model).__name__} as a network config")


def _argument_names(builder: Callable[..., nn.Module]) -> set[str]:
    """Names of the keyword arguments ``builder`` accepts (for the denoiser: sigma_data + UNet's)."""
    names = set(inspect.signature(builder).parameters) - {"self", "unet"}
    if builder is _build_denoiser:
        names |= set(inspect.signature(UNet).parameters)
    return names


def _json_config(config: dict[str, Any]) -> dict[str, Any]:
    """Normalise tuples to lists so the config is plain JSON."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
