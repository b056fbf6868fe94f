"""Crop annotation: tiling, the choice of the largest fooling crop size, and the annotation of a dataset folder."""

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ambient_omni.annotate import crops
from ambient_omni.data.annotations import read_annotations
from ambient_omni.data.dataset_folder import load_dataset, write_dataset
from ambient_omni.data.mixed import MixedData
from ambient_omni.errors import AmbientError
from ambient_omni.files import write_json
from ambient_omni.networks.registry import build_network
from ambient_omni.training.checkpoint import save_model

CLF = {"kind": "classifier", "in_channels": 1, "model_channels": 4, "channel_mult": [1], "num_blocks": 1}


def test_tile_drops_the_remainder_and_keeps_pixels() -> None:
    x = torch.arange(2 * 7 * 7, dtype=torch.float32).reshape(2, 1, 7, 7)
    t = crops.tile(x, 3)
    assert t.shape == (2, 2, 2, 1, 3, 3)
    torch.testing.assert_close(t[1, 1, 0], x[1, :, 3:6, 0:3])
    with pytest.raises(AmbientError):
        crops.tile(x, 8)


def test_choose_largest_fooling_size() -> None:
    means = {4: np.array([0.9, 0.1, 0.5]), 8: np.array([0.3, 0.1, 0.2]), 16: np.array([0.1, 0.0, 0.3])}
    best, sigma_max = crops.choose_sigma_max(means, {4: 0.05, 8: 0.15, 16: 0.2}, threshold=0.25)
    assert best.tolist() == [8, 0, 16] and sigma_max.tolist() == [0.15, 0.0, 0.2]
    with pytest.raises(AmbientError):
        crops.choose_sigma_max(means, {4: 0.05}, 0.25)


def test_constant_classifier_probabilities() -> None:
    class Const(torch.nn.Module):
        def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return torch.zeros(len(x))

    p = crops.crop_probabilities(Const(), torch.zeros(3, 1, 8, 8), np.arange(3), 4, 0.05)
    assert p.shape == (3, 2, 2) and np.allclose(p, 0.5)


def _dataset(folder: Path, provenance: list[str]) -> Any:
    n = len(provenance)
    codes = np.random.default_rng(0).integers(0, 256, (n, 1, 8, 8), dtype=np.uint8)
    write_dataset(folder, MixedData(codes, np.zeros(n, dtype=np.int64), ["t"] * n, np.arange(n), provenance, 0))
    return load_dataset(folder)


def _classifier(folder: Path, size: int) -> Path:
    save_model(folder, build_network(CLF), {"kind": "classifier", "network": CLF, "classifier": {"crop_size": size}})
    return folder


def test_annotate_dataset_writes_the_table_and_the_picture(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "d", ["clean", "ood:x", "clean", "ood:x"])
    write_json(tmp_path / "loc.json", {"crop_to_sigma_max": {"4": 0.1, "8": 0.3}})
    paths = [_classifier(tmp_path / "c8", 8), _classifier(tmp_path / "c4", 4)]
    out = tmp_path / "a" / "ood.jsonl"
    table = crops.annotate_dataset(paths, tmp_path / "loc.json", data, out, threshold=0.0, device="cpu")
    assert read_annotations(out).records() == table.records()
    assert table.sigma_min.tolist() == [0.0, math.inf, 0.0, math.inf]
    assert table.sigma_max.tolist() == [0.0, 0.3, 0.0, 0.3]  # threshold 0: the largest size always fools
    assert table.method == ["clean", "crops", "clean", "crops"]
    assert table.extra[1]["crop_size"] == 8 and set(table.extra[1]["mean_p_target"]) == {"4", "8"}
    assert (tmp_path / "a" / "ood-crops.png").is_file()


def test_annotate_dataset_user_errors(tmp_path: Path) -> None:
    write_json(tmp_path / "loc.json", {"crop_to_sigma_max": {"4": 0.1}})
    loc, c4 = tmp_path / "loc.json", [_classifier(tmp_path / "c4", 4)]
    with pytest.raises(AmbientError, match="corrupted"):
        crops.annotate_dataset(c4, loc, _dataset(tmp_path / "a", ["clean", "corrupted:x", "ood:x"]), tmp_path / "o")
    with pytest.raises(AmbientError, match="has synthetic images; annotate them with `ambient annotate noise`"):
        crops.annotate_dataset(c4, loc, _dataset(tmp_path / "s", ["clean", "synthetic:m", "ood:x"]), tmp_path / "o")
    with pytest.raises(AmbientError, match="no ood"):
        crops.annotate_dataset(c4, loc, _dataset(tmp_path / "b", ["clean"]), tmp_path / "o")
    data = _dataset(tmp_path / "c", ["clean", "ood:x"])
    with pytest.raises(AmbientError, match="share crop size 4"):
        crops.annotate_dataset(c4 + [_classifier(tmp_path / "d4", 4)], loc, data, tmp_path / "o", device="cpu")
