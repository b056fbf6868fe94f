"""Vendi score: the known cases (identical, orthogonal, clusters), order and scale invariance, both routes."""

import numpy as np
import pytest

from ambient_omni.errors import AmbientError
from ambient_omni.metrics.vendi import spectrum_entropy, unit_rows, vendi_score


def _clusters(shares: list[int], d: int, seed: int = 0) -> np.ndarray:
    """``shares[c]`` identical copies (random positive scales) of the c-th of mutually orthogonal directions."""
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.normal(size=(d, len(shares))))[0].T
    rows = [directions[c] * rng.uniform(0.5, 3.0) for c, count in enumerate(shares) for _ in range(count)]
    return np.array(rows)


@pytest.mark.parametrize("route", ["auto", "kernel", "gram"])
def test_identical_items_score_one(route):
    feats = np.tile(np.random.default_rng(0).normal(size=(1, 16)), (50, 1))
    assert vendi_score(feats, route) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("route", ["auto", "kernel", "gram"])
def test_mutually_orthogonal_items_score_n(route):
    feats = np.eye(12)[:9] * np.arange(1, 10)[:, None]  # 9 orthogonal rows of different lengths in 12 dims
    assert vendi_score(feats, route) == pytest.approx(9.0, rel=1e-9)


@pytest.mark.parametrize("route", ["auto", "kernel", "gram"])
def test_two_equal_clusters_score_two_and_unequal_ones_exp_entropy(route):
    assert vendi_score(_clusters([20, 20], d=8), route) == pytest.approx(2.0, rel=1e-9)
    p = 0.25  # clusters in shares 1:3 -> exp(H(p))
    expected = np.exp(-(p * np.log(p) + (1 - p) * np.log(1 - p)))
    assert vendi_score(_clusters([10, 30], d=8), route) == pytest.approx(expected, rel=1e-9)


def test_invariant_to_the_order_of_items_and_their_scale():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(40, 6))
    score = vendi_score(feats)
    assert vendi_score(feats[rng.permutation(40)]) == pytest.approx(score, rel=1e-10)
    assert vendi_score(feats * rng.uniform(0.1, 10, size=(40, 1))) == pytest.approx(score, rel=1e-10)
    assert 1.0 < score <= 6.0 + 1e-9  # at most the rank


@pytest.mark.parametrize("shape", [(30, 5), (5, 30), (20, 20)])
def test_kernel_and_gram_routes_agree_with_a_brute_force_cosine_kernel(shape):
    feats = np.random.default_rng(2).normal(size=shape)
    n = shape[0]
    cosine = np.array([[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in feats] for a in feats])
    brute = np.exp(spectrum_entropy(np.linalg.eigvalsh(cosine / n)))
    assert vendi_score(feats, "kernel") == pytest.approx(brute, rel=1e-9)
    assert vendi_score(feats, "gram") == pytest.approx(brute, rel=1e-9)
    assert vendi_score(feats, "auto") == pytest.approx(brute, rel=1e-9)


def test_zero_vectors_are_one_item_of_their_own():
    feats = np.zeros((10, 4))
    assert vendi_score(feats) == pytest.approx(1.0, abs=1e-9)  # all black images after a ReLU: one item
    feats[5:, 0] = 1.0  # half zero, half one direction: two equal clusters
    assert vendi_score(feats, "kernel") == pytest.approx(2.0, rel=1e-9)
    assert vendi_score(feats, "gram") == pytest.approx(2.0, rel=1e-9)
    unit = unit_rows(feats)
    assert unit.shape == (10, 5) and np.allclose(np.diag(unit @ unit.T), 1.0)


def test_spectrum_entropy_ignores_zeros_and_round_off_negatives():
    assert spectrum_entropy(np.array([0.5, 0.5, 0.0, -1e-17])) == pytest.approx(np.log(2))


def test_bad_input_is_a_clear_error():
    with pytest.raises(AmbientError, match=r"\(n >= 1, d >= 1\) features"):
        vendi_score(np.zeros((0, 3)))
    with pytest.raises(AmbientError, match=r"\(n >= 1, d >= 1\) features"):
        vendi_score(np.zeros(5))
    with pytest.raises(AmbientError, match="NaN or Inf"):
        vendi_score(np.array([[1.0, np.nan]]))
    with pytest.raises(AmbientError, match="route"):
        vendi_score(np.eye(3), "svd")  # type: ignore[arg-type]
