"""In-domain classifier features: deterministic training, keyed cache, blur sensitivity, accuracy."""

import numpy as np
import pytest
import torch

import ambient_omni.metrics.fmnist_classifier as fc
from _metrics_data import blur, fashion
from ambient_omni.metrics.frechet import frechet_distance_features

TINY = fc.TrainSettings(epochs=2, batch_size=64, seed=0)


@pytest.fixture(scope="module")
def small_train():
    return fashion("train", 2000)


def test_training_is_deterministic(small_train):
    images, labels = small_train[0][:256], small_train[1][:256]
    settings = fc.TrainSettings(epochs=1, batch_size=64, seed=3)
    a = fc.train_classifier(images, labels, settings, progress=False).state_dict()
    b = fc.train_classifier(images, labels, settings, progress=False).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cache_reused_and_keyed(small_train, tmp_path, monkeypatch):
    images, labels = small_train[0][:256], small_train[1][:256]
    calls = []
    real_train = fc.train_classifier
    monkeypatch.setattr(fc, "train_classifier", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    settings = fc.TrainSettings(epochs=1, batch_size=64)
    first, key1 = fc.load_or_train(images, labels, settings, cache_dir=tmp_path, progress=False)
    second, key2 = fc.load_or_train(images, labels, settings, cache_dir=tmp_path, progress=False)
    assert len(calls) == 1 and key1 == key2
    x = images[:8]
    assert torch.equal(first.features(x), second.features(x))
    _, key3 = fc.load_or_train(images, labels, fc.TrainSettings(epochs=1, batch_size=64, seed=1),
                               cache_dir=tmp_path, progress=False)
    _, key4 = fc.load_or_train(images[:200], labels[:200], settings, cache_dir=tmp_path, progress=False)
    assert len(calls) == 3 and len({key1, key3, key4}) == 3
    # round-off in the [-1, 1] conversion does not change the key
    assert fc.data_sha256(images, labels) == fc.data_sha256(images + 1e-6, labels)


def test_extractor_features_and_blur_ordering(small_train, tmp_path):
    ext = fc._factory(cache_dir=tmp_path, device="cpu", progress=False, train_data=small_train,
                      train_settings=TINY)
    assert ext.settings()["model_key"] and ext.dim == 128
    test, _ = fashion("test", 600)
    a, b = test[:300], test[300:]
    feats_a = ext(a, progress=False)
    assert feats_a.shape == (300, 128)
    rgb = ext(a[:4].expand(-1, 3, -1, -1), progress=False)
    assert np.allclose(rgb, feats_a[:4], atol=1e-5)
    fds = [frechet_distance_features(feats_a, ext(blur(b, s), progress=False)) if s else
           frechet_distance_features(feats_a, ext(b, progress=False)) for s in (0, 0.5, 1.0, 2.0)]
    assert fds[0] < fds[1] < fds[2] < fds[3], fds


@pytest.mark.slow
def test_full_classifier_accuracy_at_least_90_percent(tmp_path):
    train, test = fashion("train"), fashion("test")
    model, _ = fc.load_or_train(*train, cache_dir=tmp_path, progress=False)
    assert fc.accuracy(model, *test) >= 0.90
