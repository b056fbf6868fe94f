"""Shared fixture of the training tests: a tiny dataset folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_dataset(folder: Path, n: int = 48, shape: tuple[int, int, int] = (1, 8, 8), classes: int = 3,
                       seed: int = 0, corrupted: int = 0) -> Path:
    """Smooth random blobs as a dataset folder; the last ``corrupted`` images are marked corrupted."""
    from ambient_omni.data.imageset import ImageSet
    from ambient_omni.data.mixed import MixedData, from_image_set, write_dataset

    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, shape[0], 2, 2))
    up = np.kron(base, np.ones((shape[1] // 2, shape[2] // 2)))
    codes = np.clip(127.5 + 60 * up, 0, 255).astype(np.uint8)
    images = ImageSet.from_uint8(codes, labels=rng.integers(0, classes, size=n))
    data = from_image_set(images, "clean", "synthetic", seed=seed)
    if corrupted:
        data = MixedData(data.images, data.labels, data.sources, data.source_index,
                         ["clean"] * (n - corrupted) + ["corrupted:blur"] * corrupted, data.seed, data.recipe,
                         data.class_names)
    write_dataset(folder, data)
    return folder
