"""Sample grids: tile a batch of images into one PNG (used by previews and ``ambient sample``)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

from ambient_omni.files import atomic_write_bytes


def image_grid(codes: np.ndarray, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile uint8 images ``(N, C, H, W)`` into one ``(rows*(H+pad)+pad, cols*(W+pad)+pad, C)`` array.

    ``columns`` defaults to ``ceil(sqrt(N))``; gaps and unused cells are black.
    """
    n, c, h, w = codes.shape
    cols = columns or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y : y + h, x : x + w] = codes[i].transpose(1, 2, 0)
    return grid


def save_grid(path: str | Path, images: torch.Tensor | np.ndarray, columns: int | None = None, scale: int = 1) -> Path:
    """Write a PNG grid of ``images``: uint8 codes or floats in [-1, 1], shape ``(N, C, H, W)``.

    ``scale`` enlarges each pixel (nearest neighbour) so small images stay visible.
    """
    from PIL import Image

    from ambient_omni.data.imageset import to_uint8

    if isinstance(images, torch.Tensor):
        images = (images if images.dtype == torch.uint8 else to_uint8(images)).cpu().numpy()
    grid = image_grid(np.asarray(images), columns)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    picture = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
