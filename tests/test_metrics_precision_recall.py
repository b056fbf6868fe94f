"""k-NN precision/recall: hand-checked point sets and real-vs-real behaviour."""

import numpy as np
import pytest

from ambient_omni.metrics.precision_recall import knn_radii, precision_recall


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
