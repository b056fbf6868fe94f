"""Empirical distinguishability: IDX reading, the accuracy -> d_TV comparison, a tiny training run."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from ambient_omni.errors import AmbientError
from ambient_omni.theory.empirical import (
    EmpiricalConfig,
    compare_with_contraction,
    measure_blur_distinguishability,
    plot_empirical,
)


def _write_idx(path: Path, images: np.ndarray, compress: bool) -> None:
    n, h, w = images.shape
    raw = b"\x00\x00\x08\x03" + b"".join(int(v).to_bytes(4, "big") for v in (n, h, w)) + images.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.fixture()
def idx_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    images = (rng.uniform(0, 1, (64, 12, 12)) > 0.5) * 255  # sharp edges: blur is visible
    path = tmp_path / "images.gz"
    _write_idx(path, images, compress=True)
    return path


def test_compare_with_contraction_recovers_one_over_sigma() -> None:
    sig = np.array([1.0, 2.0, 4.0, 8.0])
    acc = (1 + 0.8 / sig) / 2  # tv = 0.8 / sigma exactly
    r = compare_with_contraction(sig, acc, diameter=3.0, n_test=1000)
    assert np.allclose(r["tv_lower"], 0.8 / sig) and np.allclose(r["anchored"], r["tv_lower"])
    assert float(r["slope"]) == pytest.approx(-1.0)
    assert np.allclose(r["bound"], np.minimum(1, 1.5 / sig))
    assert np.all(r["stderr"] > 0)
    with pytest.raises(AmbientError):
        compare_with_contraction([2.0, 1.0], [0.9, 0.8])


def test_tiny_measurement_is_deterministic(idx_file: Path, tmp_path: Path) -> None:
    config = EmpiricalConfig(sigmas=(0.05, 2.0), n_train=16, n_test=16, epochs=1, batch=16, channels=2, blur=1.0)
    first = measure_blur_distinguishability(idx_file, config)
    second = measure_blur_distinguishability(idx_file, config)
    assert np.array_equal(first["accuracy"], second["accuracy"])
    assert np.all((first["accuracy"] >= 0) & (first["accuracy"] <= 1))
    assert float(first["diameter"]) > 0
    plot_empirical(first, tmp_path / "e.png")
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(AmbientError, match="needs"):
        measure_blur_distinguishability(idx_file, config.with_options(n_train=1000))
