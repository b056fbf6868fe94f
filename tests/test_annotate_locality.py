"""Locality: effective crop sizes, a monotone crop -> sigma_max map, a measurement on an analytic local denoiser,
and the whole measurement on a dataset folder."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from ambient_omni.annotate import locality
from ambient_omni.data.dataset_folder import load_dataset, write_dataset
from ambient_omni.data.mixed import MixedData
from ambient_omni.errors import AmbientError
from ambient_omni.training.checkpoint import build_model, save_model


def test_map_is_monotone_on_synthetic_noisy_data() -> None:
    rng = np.random.default_rng(0)
    sigmas = np.geomspace(0.01, 2, 12)
    sizes = [4, 8, 12, 16, 28]
    # error excess decays with crop size faster at low sigma; add noise that makes the raw sizes non-monotone
    excess = np.exp(-np.array(sizes)[None] / (2 + 8 * sigmas[:, None])) * 0.05
    excess += rng.normal(0, 3e-4, excess.shape)
    full = rng.random(12)
    raw, mono = locality.effective_crop_sizes(full[:, None] + excess, full, sizes, 28, 1e-3)
    assert np.all(np.diff(mono) >= 0) and np.all(mono >= raw)
    mapping = locality.crop_sigma_map(sigmas, mono, sizes)
    values = [mapping[c] for c in sorted(mapping)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert mapping[28] == pytest.approx(sigmas[-1])


def test_effective_size_and_map_on_a_known_case() -> None:
    errors = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.5, 0.5, 0.0]])
    raw, mono = locality.effective_crop_sizes(errors, np.zeros(3), [4, 8, 16], 16)
    assert raw.tolist() == [4, 8, 16]
    assert locality.crop_sigma_map([0.1, 0.2, 0.4], mono, [4, 8, 16]) == {4: 0.1, 8: 0.2, 16: 0.4}
    assert locality.crop_sigma_map([0.1, 0.2], np.array([8, 8]), [4, 8]) == {4: 0.0, 8: 0.2}
    with pytest.raises(AmbientError):
        locality.crop_sigma_map([0.2, 0.1], mono[:2], [4])


class BoxDenoiser(nn.Module):
    """Averages a (2r+1)^2 neighbourhood with zero padding: needs context r around the patch."""

    def __init__(self, r: int) -> None:
        super().__init__()
        self.r = r

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        k = 2 * self.r + 1
        return nn.functional.avg_pool2d(x, k, stride=1, padding=self.r, count_include_pad=True)


def test_measurement_finds_the_context_a_local_denoiser_needs() -> None:
    gen = torch.Generator().manual_seed(0)
    # bright, smooth images: zero padding at a too-small crop border darkens the patch
    images = 0.5 + 0.5 * torch.rand(16, 1, 1, 1, generator=gen) + 0.05 * torch.randn(16, 1, 16, 16, generator=gen)
    result = locality.measure_locality(BoxDenoiser(2), images, [0.1, 0.5], [2, 4, 6, 8, 16], patch=2)
    err, full = np.array(result["errors"]), np.array(result["full_errors"])
    # patch 2 at the centre + radius 2 on each side = 6 pixels: crops of 6 and more are exact
    np.testing.assert_allclose(err[:, 2:], full[:, None].repeat(3, 1), rtol=1e-6)
    assert np.all(err[:, 0] > full + 1e-3)
    report = locality.locality_report(result, 16)
    assert report["effective_crop_monotone"] == [6, 6]
    assert locality.read_crop_map(report, "x") == {2: 0.0, 4: 0.0, 6: 0.5, 8: 0.5, 16: 0.5}


def test_read_crop_map_rejects_non_monotone() -> None:
    with pytest.raises(AmbientError):
        locality.read_crop_map({"crop_to_sigma_max": {"4": 0.2, "8": 0.1}}, "f.json")
    with pytest.raises(AmbientError):
        locality.read_crop_map({}, "f.json")


def test_default_crop_sizes() -> None:
    assert locality.default_crop_sizes(8) == [4, 6, 8]
    assert locality.default_crop_sizes(11, patch=5) == [5, 7, 9, 11]


def _dataset(folder: Path, provenance: list[str]) -> Any:
    n = len(provenance)
    codes = np.random.default_rng(0).integers(0, 256, (n, 1, 8, 8), dtype=np.uint8)
    write_dataset(folder, MixedData(codes, np.zeros(n, dtype=np.int64), ["t"] * n, np.arange(n), provenance, 0))
    return load_dataset(folder)


def test_dataset_locality_writes_the_plot_and_the_report(tmp_path: Path) -> None:
    net = {"kind": "unet", "in_channels": 1, "out_channels": 1, "model_channels": 4, "channel_mult": [1],
           "num_blocks": 1}
    config = {"kind": "denoiser", "network": net}
    save_model(tmp_path / "den", build_model(config), config)
    data = _dataset(tmp_path / "d", ["clean", "clean", "ood:x"])
    out = tmp_path / "sub" / "loc.json"
    report = locality.dataset_locality(tmp_path / "den", data, out, sigmas=[0.1, 0.5], device="cpu")
    assert report["crop_sizes"] == [4, 6, 8] and report["images"] == 2 and report["model"] == str(tmp_path / "den")
    assert json.loads(out.read_text()) == report and out.with_suffix(".png").is_file()
    with pytest.raises(AmbientError, match="no clean images"):
        locality.dataset_locality(tmp_path / "den", _dataset(tmp_path / "o", ["ood:x"]), out, device="cpu")
