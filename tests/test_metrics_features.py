"""Extractor interface and registry."""

import numpy as np
import pytest
import torch

from ambient_omni.errors import AmbientError
from ambient_omni.metrics.features import available_extractors, get_extractor


def test_registry_names():
    names = available_extractors()
    for name in ("effnet-lite0", "fmnist-classifier", "inception", "pixels"):
        assert name in names


def test_unknown_name_is_user_error():
    with pytest.raises(AmbientError, match="unknown feature extractor"):
        get_extractor("nope")


def test_pixels_features_are_flattened_images_independent_of_batch_size():
    ext = get_extractor("pixels", shape=(1, 4, 4), device="cpu")
    images = torch.rand(10, 1, 4, 4) * 2 - 1
    feats = ext(images, batch_size=3, progress=False)
    assert feats.dtype == np.float64 and feats.shape == (10, 16)
    assert np.allclose(feats, images.flatten(1).numpy())
    assert np.array_equal(feats, ext(images, batch_size=10, progress=False))


def test_pixels_without_shape_follow_the_images():
    ext = get_extractor("pixels")
    assert ext(torch.zeros(3, 2, 5, 4), progress=False).shape == (3, 40)


def test_bad_input_is_user_error():
    ext = get_extractor("pixels", shape=(1, 4, 4), device="cpu")
    with pytest.raises(AmbientError):
        ext(torch.zeros(4, 4), progress=False)
    with pytest.raises(AmbientError):
        ext(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), progress=False)
