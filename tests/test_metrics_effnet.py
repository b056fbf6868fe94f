"""EfficientNet-Lite0 features: real ImageNet weights, shapes, grayscale handling, blur sensitivity."""

import numpy as np
import pytest
import torch

from _metrics_data import blur, fashion
from ambient_omni.metrics.effnet import EffNetLite0Extractor
from ambient_omni.metrics.frechet import frechet_distance_features


@pytest.fixture(scope="module")
def small_effnet():
    return EffNetLite0Extractor(resolution=64, device="cpu")


def test_weights_are_imagenet_classifier():
    from skimage import data

    ext = EffNetLite0Extractor(resolution=224, device="cpu")
    cat = torch.tensor(data.chelsea()).permute(2, 0, 1)[None].float() / 127.5 - 1
    cat = torch.nn.functional.interpolate(cat, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        assert ext.model(cat).argmax().item() == 285  # ImageNet "Egyptian cat"


def test_shapes_grayscale_and_batching(small_effnet):
    images = torch.rand(6, 1, 28, 28) * 2 - 1
    feats = small_effnet(images, batch_size=4, progress=False)
    assert feats.shape == (6, 1280) and np.isfinite(feats).all()
    rgb = small_effnet(images.expand(-1, 3, -1, -1), batch_size=6, progress=False)
    assert np.allclose(feats, rgb, atol=1e-4)
    settings = small_effnet.settings()
    assert settings["resolution"] == 64 and len(settings["weights_sha256"]) == 64


@pytest.mark.slow  # ~20 s idle, minutes on the shared machine; run: pytest -m slow
def test_blur_ordering_small(small_effnet):
    test, _ = fashion("test", 240)
    a, b = test[:120], test[120:]
    fa = small_effnet(a, progress=False)
    fds = [frechet_distance_features(fa, small_effnet(blur(b, s) if s else b, progress=False))
           for s in (0, 0.5, 1.0, 2.0)]
    assert fds[0] < fds[1] < fds[2] < fds[3], fds


@pytest.mark.slow
def test_blur_ordering_protocol_resolution():
    ext = EffNetLite0Extractor(device="cpu")
    test, _ = fashion("test", 1000)
    a, b = test[:500], test[500:]
    fa = ext(a, progress=False)
    fds = [frechet_distance_features(fa, ext(blur(b, s) if s else b, progress=False)) for s in (0, 0.5, 1.0, 2.0)]
    assert fds[0] < fds[1] < fds[2] < fds[3], fds
