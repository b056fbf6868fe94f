"""k-NN precision/recall: hand-checked point sets, real-vs-real calibration, and degenerate sets
(all-black, noise) that fooled the union-of-balls precision on Fashion-MNIST features."""

import numpy as np
import pytest
from _metrics_data import PR_FIXTURE, fmnist_pr_features

from ambient_omni.errors import AmbientError
from ambient_omni.metrics.precision_recall import (
    ball_precision_recall,
    kth_neighbour_distances,
    knn_radii,
    precision_recall,
)


def test_knn_radius_on_a_line():
    pts = np.array([[0.0], [1.0], [3.0], [6.0]])
    # k=1: nearest other point; k=2: second nearest
    assert np.allclose(knn_radii(pts, 1), [1.0, 1.0, 2.0, 3.0])
    assert np.allclose(knn_radii(pts, 2), [3.0, 2.0, 3.0, 5.0])


def test_fake_far_away_gives_zero_precision_and_recall():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(100, 5)), rng.normal(size=(100, 5)) + 50
    assert precision_recall(real, fake) == (0.0, 0.0)


def test_collapsed_fake_has_precision_but_no_recall():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 2))
    fake = rng.normal(scale=0.05, size=(300, 2))  # all mass near the mode
    precision, recall = precision_recall(real, fake)
    assert precision > 0.95 and recall < 0.3


def test_real_vs_real_high():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
    precision, recall = precision_recall(a, b)
    assert precision > 0.6 and recall > 0.6


def test_too_few_points_raise():
    with pytest.raises(ValueError):
        knn_radii(np.zeros((3, 2)), k=3)


@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one_is_an_error_not_zero_precision(k):
    from ambient_omni.errors import AmbientError

    with pytest.raises(AmbientError, match="--k .* must be a positive int"):
        precision_recall(np.zeros((10, 2)), np.zeros((10, 2)), k=k)


def test_kth_neighbour_distances_on_a_line():
    support = np.array([[0.0], [1.0], [3.0]])
    assert np.allclose(kth_neighbour_distances(np.array([[0.5], [10.0]]), support, 2), [0.5, 9.0])


@pytest.mark.parametrize("quantile", [0.9, 0.8])
def test_samples_drawn_like_the_data_score_about_the_quantile(quantile):
    """Real and generated features exchangeable: precision and recall are each about q (not 1)."""
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    precision, recall = precision_recall(real, fake, k=5, quantile=quantile)
    assert abs(precision - quantile) < 0.04 and abs(recall - quantile) < 0.04


def _with_isolated_points(rng: np.random.Generator, n: int = 500, isolated: int = 5) -> np.ndarray:
    """A dense cluster plus a few isolated real features (far from everything: huge k-NN balls)."""
    far = 12.0 * np.eye(8)[:isolated] + rng.normal(scale=0.5, size=(isolated, 8))
    return np.concatenate([rng.normal(size=(n - isolated, 8)), far])


def test_an_isolated_real_feature_cannot_vouch_for_a_degenerate_set():
    """The diagnosis in docs/PROTOCOL.md in miniature: 500 copies of one point near an isolated real
    feature lie inside its large ball (union-of-balls precision 1) but have no k real neighbours."""
    rng = np.random.default_rng(4)
    real = _with_isolated_points(rng)
    copies = np.repeat(real[-1:] + 3.0, 500, axis=0)
    assert ball_precision_recall(real, copies)[0] == 1.0
    assert precision_recall(real, copies) == (0.0, 0.0)
    held = _with_isolated_points(rng)
    assert min(precision_recall(real, held)) > 0.85


def _check_fmnist_sets(feats: dict) -> None:
    feats = {name: np.asarray(v, np.float64) for name, v in feats.items()}
    ref, black = feats["ref"], np.repeat(feats["black"], 500, axis=0)
    # what the union of balls (the metric before) said: fooled by black and by noise on black
    assert ball_precision_recall(ref, black)[0] == 1.0 and ball_precision_recall(ref, feats["dark-noise"])[0] > 0.9
    for name in ("noise", "dark-noise"):
        assert precision_recall(ref, feats[name]) == (0.0, 0.0), name
    assert precision_recall(ref, black) == (0.0, 0.0)
    precision, recall = precision_recall(ref, feats["held"])
    assert precision > 0.85 and recall > 0.85


def test_fmnist_features_black_and_noise_score_zero_real_images_high():
    """fmnist-classifier features (tests/data fixture, made by _metrics_data.write_pr_fixture) of the 500
    reference rows `evaluate` uses, 500 held-out test images, an all-black image and two noise sets."""
    with np.load(PR_FIXTURE) as data:
        _check_fmnist_sets(dict(data))


@pytest.mark.slow  # trains the evaluation CNN on a fresh cache (~10 min); run: pytest -m slow
def test_fmnist_features_live_match_the_fixture():
    from ambient_omni.metrics.features import get_extractor

    _check_fmnist_sets(fmnist_pr_features(get_extractor("fmnist-classifier", device="cpu", progress=False)))


def test_quantile_outside_0_1_is_an_error():
    with pytest.raises(AmbientError, match="quantile"):
        precision_recall(np.zeros((10, 2)), np.zeros((10, 2)), quantile=0.0)


def test_class_coverage_per_class() -> None:
    from ambient_omni.metrics.precision_recall import class_coverage

    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(0, 1, (60, 4)), rng.normal(10, 1, (60, 4))])
    labels = np.repeat([0, 1], 60)
    same = class_coverage(real, labels, real + 1e-6, labels)
    assert same == {"0": 1.0, "1": 1.0}  # every real point has its own sample within its ball
    one_mode = np.repeat(real[:1], 30, axis=0)  # class 0 drawn as a single image, class 1 never
    cov = class_coverage(real, labels, one_mode, np.zeros(30, dtype=int))
    assert 0 < cov["0"] < 0.3 and cov["1"] == 0.0
    assert class_coverage(real[:3], labels[:3], real[:3], labels[:3]) == {}  # too few real images per class
