"""Helpers of the dataset tests: a stand-in corruption and a small random ImageSet."""

import numpy as np
import torch

from ambient_omni.data.imageset import ImageSet


class Darken:
    """Stand-in corruption: x -> x / 2 - 0.01 * (id mod 7) + 0.001 * seed (deterministic per id)."""

    spec = "darken:test=1"

    def __init__(self) -> None:
        self.seen_ids: list[int] = []

    def __call__(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        self.seen_ids += ids.tolist()
        return images / 2 - 0.01 * (ids % 7).float().view(-1, 1, 1, 1) + 0.001 * seed


def image_set(n: int = 20, shape: tuple[int, int, int] = (1, 4, 5), classes: int = 3) -> ImageSet:
    codes = np.random.default_rng(n).integers(0, 256, (n, *shape), dtype=np.uint8)
    return ImageSet.from_uint8(codes, labels=np.arange(n) % classes, class_names=["a", "b", "c"][:classes])
