"""Exponential moving average of model weights (EDM-style half-life in images, with warm-up).

After each optimizer step the EMA copy moves toward the trained weights:
``ema <- beta * ema + (1 - beta) * theta``. With a half-life of ``H`` images and a global batch of
``B`` images, ``beta = 0.5 ** (B / H_eff)``, so the weight of an image's update halves every ``H``
images. Warm-up: ``H_eff = min(H, rampup_ratio * images_seen)`` keeps the average from being
dominated by the random initial weights early on. Alternatively a fixed ``decay`` gives
``beta = decay``. ``beta`` is a pure function of the step, so resuming is exact.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from ambient_omni.errors import AmbientError


@dataclass(frozen=True)
class EMASchedule:
    """How ``beta`` depends on the number of images seen (see the module docstring)."""

    halflife_images: float = 500_000.0
    rampup_ratio: float | None = 0.05
    decay: float | None = None

    def __post_init__(self) -> None:
        """Refuse settings that make a NaN or diverging average (AmbientError naming the option)."""
        if self.decay is not None:
            if not 0.0 <= self.decay < 1.0:
                raise AmbientError(f"--ema-decay must lie in [0, 1), got {self.decay}")
            return
        if not (math.isfinite(self.halflife_images) and self.halflife_images > 0):
            raise AmbientError(f"--ema-halflife must be a positive finite number of images, got {self.halflife_images}")
        ratio = self.rampup_ratio
        if ratio is not None and not (math.isfinite(ratio) and ratio > 0):
            raise AmbientError(f"EMA rampup_ratio must be positive and finite (or None), got {ratio}")

    def beta(self, images_seen: int, batch_size: int) -> float:
        """EMA coefficient after the optimizer step that brought the count to ``images_seen``."""
        if self.decay is not None:
            return float(self.decay)
        halflife = self.halflife_images
        if self.rampup_ratio is not None:
            halflife = min(halflife, images_seen * self.rampup_ratio)
        return 0.5 ** (batch_size / max(halflife, 1e-8))


class EMA:
    """An EMA copy of a module; buffers (e.g. normalization statistics) are copied as they are."""

    def __init__(self, model: nn.Module, schedule: EMASchedule) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.schedule = schedule

    @torch.no_grad()
    def update(self, model: nn.Module, images_seen: int, batch_size: int) -> float:
        """Blend ``model``'s weights into the average; returns the ``beta`` used."""
        beta = self.schedule.beta(images_seen, batch_size)
        for ema_p, p in zip(self.model.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach().to(ema_p.dtype), 1.0 - beta)
        for ema_b, b in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)
        return beta
