"""Sample grids: tiling layout and PNG output."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ambient_omni.training.preview import image_grid, save_grid


def test_grid_places_each_image_in_its_cell() -> None:
    codes = np.stack([np.full((1, 2, 3), 10 * (i + 1), dtype=np.uint8) for i in range(5)])
    grid = image_grid(codes, columns=3, pad=1)
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 1, 1)
    assert grid[1, 1, 0] == 10 and grid[1, 5, 0] == 20 and grid[4, 1, 0] == 40 and grid[4, 9, 0] == 0
    assert grid[0].max() == 0  # padding row


def test_save_grid_from_floats_rgb(tmp_path: Path) -> None:
    images = torch.full((4, 3, 5, 5), 1.0)
    images[:, 1] = -1.0
    path = save_grid(tmp_path / "g.png", images, scale=2)
    picture = np.asarray(Image.open(path))
    assert picture.shape == (2 * (2 * 6 + 1), 2 * (2 * 6 + 1), 3)
    assert tuple(picture[2, 2]) == (255, 0, 255)
