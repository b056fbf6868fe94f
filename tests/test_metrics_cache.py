"""Reference cache: reused only for identical inputs; any change gives a new entry."""

from typing import Any

import numpy as np
import torch

from ambient_omni.metrics.cache import reference_statistics
from ambient_omni.metrics.features import FeatureExtractor


class CountingExtractor(FeatureExtractor):
    """phi(x) = scale * per-image channel means and squares; counts how often it runs."""

    name = "counting"
    dim = 2

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__(torch.device("cpu"))
        self.scale, self.calls = scale, 0

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "scale": self.scale}

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        flat = batch.flatten(1)
        return self.scale * torch.stack([flat.mean(1), (flat ** 2).mean(1)], 1)


def _images(seed: int) -> torch.Tensor:
    return torch.rand(20, 1, 4, 4, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_reused_for_identical_inputs(tmp_path):
    ext = CountingExtractor()
    first = reference_statistics(_images(0), ext, cache_dir=tmp_path, progress=False)
    calls = ext.calls
    second = reference_statistics(_images(0), CountingExtractor(), cache_dir=tmp_path, progress=False)
    again = CountingExtractor()
    reference_statistics(_images(0), again, cache_dir=tmp_path, progress=False)
    assert calls > 0 and again.calls == 0
    assert second.key == first.key
    assert np.array_equal(second.mu, first.mu) and np.array_equal(second.sigma, first.sigma)
    assert np.array_equal(second.features, first.features)


def test_not_reused_when_anything_differs(tmp_path):
    base = reference_statistics(_images(0), CountingExtractor(), cache_dir=tmp_path, progress=False)
    changed_images = _images(1)
    variants = [
        (changed_images, CountingExtractor(), None),
        (_images(0), CountingExtractor(scale=2.0), None),
        (_images(0), CountingExtractor(), {"subset": 10}),
    ]
    keys = {base.key}
    for images, ext, metric in variants:
        stats = reference_statistics(images, ext, cache_dir=tmp_path, metric_settings=metric, progress=False)
        assert ext.calls > 0, "a changed input must be recomputed"
        keys.add(stats.key)
    assert len(keys) == 4
    assert len(list((tmp_path / "reference-stats").glob("*.safetensors"))) == 4
    scaled = reference_statistics(_images(0), CountingExtractor(scale=2.0), cache_dir=tmp_path, progress=False)
    assert np.allclose(scaled.mu, 2 * base.mu)


def test_hit_equals_fresh_computation(tmp_path):
    fresh = reference_statistics(_images(3), CountingExtractor(), cache_dir=tmp_path / "a", progress=False)
    reference_statistics(_images(3), CountingExtractor(), cache_dir=tmp_path / "b", progress=False)
    hit = reference_statistics(_images(3), CountingExtractor(), cache_dir=tmp_path / "b", progress=False)
    assert np.array_equal(fresh.sigma, hit.sigma)


def test_a_rewritten_entry_is_computed_again_with_a_warning(tmp_path):
    import pytest
    from safetensors.numpy import load_file, save_file

    first = reference_statistics(_images(0), CountingExtractor(), cache_dir=tmp_path, progress=False)
    entry = next((tmp_path / "reference-stats").glob("*.safetensors"))
    arrays = load_file(str(entry))
    arrays["mu"] = arrays["mu"] + 100.0  # what a rewritten entry did: FD 689 -> 20,053 with no word
    save_file(arrays, str(entry))
    ext = CountingExtractor()
    with pytest.warns(UserWarning, match="do not match the SHA-256"):
        again = reference_statistics(_images(0), ext, cache_dir=tmp_path, progress=False)
    assert ext.calls > 0 and np.array_equal(again.mu, first.mu)
    clean = CountingExtractor()
    reference_statistics(_images(0), clean, cache_dir=tmp_path, progress=False)
    assert clean.calls == 0  # the rebuilt entry is trusted again
