"""The one place where the compute device and mixed precision are chosen."""

from __future__ import annotations

import contextlib
import os

import torch


def pick_device(requested: str | None = None) -> torch.device:
    """Return ``requested`` if given, else ``$AMBIENT_DEVICE``, else CUDA when available, else CPU."""
    name = requested or os.environ.get("AMBIENT_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (when ``enabled``); a no-op context on CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
