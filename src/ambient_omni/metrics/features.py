"""Feature extractors behind one interface, and a registry of them by name.

A feature extractor maps images ``x`` of shape ``(N, C, H, W)`` with values in ``[-1, 1]`` to
features ``phi(x)`` of shape ``(N, D)`` (float64 numpy). Frechet distances, KID and
precision/recall are computed on these features. ``settings()`` returns everything that
changes ``phi`` (name, resolution, weights hash, ...) and is part of every cache key.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ambient_omni.errors import AmbientError


class FeatureExtractor(ABC):
    """Maps ``(N, C, H, W)`` images in ``[-1, 1]`` to ``(N, dim)`` float64 features."""

    name: str
    dim: int

    def __init__(self, device: torch.device | None = None) -> None:
        from ambient_omni.device import pick_device

        self.device = pick_device(None) if device is None else torch.device(device)

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything that determines the features (used in cache keys); JSON-serialisable."""

    @abstractmethod
    def features(self, batch: torch.Tensor) -> torch.Tensor:
        """Features of one batch already on ``self.device``; returns ``(B, dim)``."""

    @torch.no_grad()
    def __call__(self, images: torch.Tensor | np.ndarray, batch_size: int = 64,
                 progress: bool = True) -> np.ndarray:
        """Features of all ``images``, computed in batches with a progress bar."""
        from tqdm import tqdm

        images = torch.as_tensor(images)
        check_images(images, f"{self.name} input")
        out = np.empty((images.shape[0], self.dim), dtype=np.float64)
        starts = range(0, images.shape[0], batch_size)
        for start in tqdm(starts, desc=f"features {self.name}", unit="batch", disable=not progress,
                          leave=False):
            batch = images[start:start + batch_size].to(self.device, torch.float32)
            out[start:start + batch.shape[0]] = self.features(batch).double().cpu().numpy()
        return out


def check_images(images: torch.Tensor, what: str) -> None:
    """Raise :class:`AmbientError` unless ``images`` is a non-empty ``(N, C, H, W)`` float batch."""
    if images.ndim != 4 or images.shape[0] == 0:
        raise AmbientError(f"{what}: expected a non-empty (N, C, H, W) image batch, got shape "
                           f"{tuple(images.shape)}")
    if not torch.is_floating_point(images):
        raise AmbientError(f"{what}: expected float images in [-1, 1], got dtype {images.dtype}")


def to_rgb(batch: torch.Tensor) -> torch.Tensor:
    """Grayscale ``(B, 1, H, W)`` replicated to 3 channels; RGB passed through."""
    if batch.shape[1] == 1:
        return batch.expand(-1, 3, -1, -1)
    if batch.shape[1] != 3:
        raise AmbientError(f"feature extractor: images must have 1 or 3 channels, got {batch.shape[1]}")
    return batch


def resize(batch: torch.Tensor, size: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """Bilinear resize to ``size`` (antialiased when shrinking); identity if already that size."""
    if tuple(batch.shape[-2:]) == tuple(size):
        return batch
    return F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=antialias)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class PixelExtractor(FeatureExtractor):
    """Identity features: the flattened pixels, ``phi(x) = vec(x)`` (``dim = C*H*W``).

    With ``shape=None`` the shape is taken from the images of each call.
    """

    name = "pixels"

    def __init__(self, shape: tuple[int, int, int] | None = None, device: torch.device | None = None) -> None:
        super().__init__(device)
        self.shape = None if shape is None else tuple(shape)
        self.dim = 0 if shape is None else int(np.prod(shape))

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "shape": None if self.shape is None else list(self.shape)}

    def __call__(self, images: torch.Tensor | np.ndarray, batch_size: int = 64,
                 progress: bool = True) -> np.ndarray:
        if self.shape is None:
            self.dim = int(np.prod(torch.as_tensor(images).shape[1:]))
        return super().__call__(images, batch_size, progress)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        if self.shape is not None and tuple(batch.shape[1:]) != self.shape:
            raise AmbientError(f"pixels features: expected images of shape {self.shape}, got "
                               f"{tuple(batch.shape[1:])}")
        return batch.flatten(1)


_REGISTRY: dict[str, Callable[..., FeatureExtractor]] = {}


def register_extractor(name: str) -> Callable[[Callable[..., FeatureExtractor]], Callable[..., FeatureExtractor]]:
    """Decorator: register a factory ``(**options) -> FeatureExtractor`` under ``name``."""
    def decorate(factory: Callable[..., FeatureExtractor]) -> Callable[..., FeatureExtractor]:
        _REGISTRY[name] = factory
        return factory
    return decorate


def _load_builtin() -> None:
    """Import the modules that register the built-in extractors."""
    from ambient_omni.metrics import effnet, fmnist_classifier, inception  # noqa: F401


def available_extractors() -> list[str]:
    """Names accepted by :func:`get_extractor`."""
    _load_builtin()
    return sorted(_REGISTRY)


def get_extractor(name: str, **options: Any) -> FeatureExtractor:
    """Build the extractor registered as ``name``; ``options`` are passed to its factory.

    Factories ignore options they do not use, so callers may pass one option set to all
    (e.g. ``device``, ``cache_dir``, ``inception_weights``, ``progress``).
    """
    _load_builtin()
    if name not in _REGISTRY:
        raise AmbientError(f"unknown feature extractor {name!r}; choose from {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**options)


@register_extractor("pixels")
def _pixels(shape: tuple[int, int, int] | None = None, device: torch.device | None = None,
            **_: Any) -> FeatureExtractor:
    return PixelExtractor(shape=shape, device=device)
