"""An in-memory set of images with labels and names: what every reader returns.

Pixel convention (the contract of docs/ARCHITECTURE.md): images are ``float32`` in ``[-1, 1]``,
shape ``(N, C, H, W)``. The 8-bit code ``u`` in ``{0, ..., 255}`` maps to

    x = u / 127.5 - 1                       (from_uint8, exact in float32 up to rounding)
    u = clamp(round((x + 1) * 127.5), 0, 255)   (to_uint8, round half to even)

so ``to_uint8(from_uint8(u)) == u`` for every code, and values outside ``[-1, 1]`` saturate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ambient_omni.errors import AmbientError


def from_uint8(codes: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Map 8-bit codes ``u`` to floats ``u / 127.5 - 1`` in ``[-1, 1]`` (float32 tensor)."""
    tensor = torch.as_tensor(codes)
    if tensor.dtype != torch.uint8:
        raise TypeError(f"from_uint8 expects uint8 codes, got {tensor.dtype}")
    return tensor.to(torch.float32).div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map floats ``x`` to codes ``clamp(round((x + 1) * 127.5), 0, 255)`` (uint8 tensor).

    ``torch.round`` rounds half to even; NaN is an error (it has no code).
    """
    if torch.isnan(images).any():
        raise ValueError("to_uint8: images contain NaN")
    scaled = (images.detach().to(torch.float32) + 1.0) * 127.5
    return scaled.round_().clamp_(0, 255).to(torch.uint8)


@dataclass
class ImageSet:
    """Images ``(N, C, H, W)`` float32 in ``[-1, 1]`` with labels and per-image names.

    ``labels`` are int64, ``-1`` when the source has none. ``class_names[k]`` names label ``k``
    (empty when the source has no class names). ``source_index[i]`` is the position of image
    ``i`` in the source it was read from (kept through :meth:`subset`, so filtered sets still
    point back to the original files).
    """

    images: torch.Tensor
    labels: torch.Tensor
    names: list[str]
    class_names: list[str] = field(default_factory=list)
    source_index: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.images.shape[0] if self.images.dim() == 4 else -1
        if self.images.dim() != 4 or self.images.dtype != torch.float32:
            raise ValueError(f"ImageSet.images must be float32 (N, C, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or tuple(self.labels.shape) != (n,):
            raise ValueError(f"ImageSet.labels must be int64 ({n},), got {self.labels.dtype} "
                             f"{tuple(self.labels.shape)}")
        if len(self.names) != n:
            raise ValueError(f"ImageSet.names has {len(self.names)} entries for {n} images")
        if self.source_index is None:
            self.source_index = torch.arange(n, dtype=torch.int64)
        if tuple(self.source_index.shape) != (n,):
            raise ValueError(f"ImageSet.source_index must have shape ({n},)")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, indices: Sequence[int] | torch.Tensor | np.ndarray) -> ImageSet:
        """The images at ``indices`` (in that order), with their labels, names and source indices."""
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(self)):
            raise IndexError(f"subset indices out of range for {len(self)} images")
        assert self.source_index is not None
        return ImageSet(
            images=self.images[index],
            labels=self.labels[index],
            names=[self.names[i] for i in index.tolist()],
            class_names=list(self.class_names),
            source_index=self.source_index[index],
        )

    def to_uint8(self) -> torch.Tensor:
        """The images as 8-bit codes ``(N, C, H, W)`` (see the module docstring)."""
        return to_uint8(self.images)

    @classmethod
    def from_uint8(
        cls,
        codes: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor | None = None,
        names: list[str] | None = None,
        class_names: list[str] | None = None,
    ) -> ImageSet:
        """Build from uint8 codes ``(N, C, H, W)``; missing labels are ``-1``, names ``"0"..``."""
        images = from_uint8(codes)
        if images.dim() != 4:
            raise AmbientError(f"expected uint8 images (N, C, H, W), got shape {tuple(images.shape)}")
        n = images.shape[0]
        label_tensor = (torch.full((n,), -1, dtype=torch.int64) if labels is None
                        else torch.as_tensor(np.asarray(labels)).to(torch.int64))
        return cls(images, label_tensor, names if names is not None else [str(i) for i in range(n)],
                   list(class_names or []))
