"""Pure curve functions: EMA, first crossing, dense reference, fast search against dense."""

import math

import numpy as np
import pytest

from ambient_omni.annotate import curves


def test_lognormal_grid_sorted_deterministic_and_lognormal() -> None:
    g = curves.lognormal_grid(2048, -1.2, 1.2, seed=0)
    assert g.shape == (2048,) and np.all(np.diff(g) >= 0)
    np.testing.assert_array_equal(g, curves.lognormal_grid(2048, -1.2, 1.2, seed=0))
    assert not np.array_equal(g, curves.lognormal_grid(2048, -1.2, 1.2, seed=1))
    logs = np.log(g)
    assert abs(logs.mean() + 1.2) < 0.1 and abs(logs.std() - 1.2) < 0.1


def test_ema_matches_pandas_adjust_false_recursion() -> None:
    rng = np.random.default_rng(0)
    x = rng.random(50)
    a = curves.ema_alpha(32)
    assert a == pytest.approx(2 / 33)
    expected = [x[0]]
    for v in x[1:]:
        expected.append((1 - a) * expected[-1] + a * v)
    np.testing.assert_allclose(curves.ema(x, a), expected)
    # batched rows are independent
    np.testing.assert_allclose(curves.ema(np.stack([x, 2 * x]), a)[1], 2 * np.array(expected))
    # an explicit prior state
    assert curves.ema(np.array([1.0]), a, initial=0.0)[0] == pytest.approx(a)


def test_dense_reproduces_analytic_crossing_of_a_step() -> None:
    """Step 0 -> 1 at index m: S_j = 1 - (1-a)^(j-m+1), so the first S_j > tau is at
    j = m - 1 + ceil(log(1 - tau) / log(1 - a))."""
    sigmas = np.linspace(0.01, 10, 2048)
    for m in (5, 300, 1500):
        p = np.zeros(2048)
        p[m:] = 1.0
        a = curves.ema_alpha(32)
        j = m - 1 + math.ceil(math.log(1 - 0.45) / math.log(1 - a))
        assert curves.dense_sigma_min(p, sigmas, tau=0.45, span=32) == pytest.approx(sigmas[j])


def test_dense_never_crossing_gives_largest_sigma_and_clean_gives_smallest() -> None:
    sigmas = np.linspace(0.01, 10, 100)
    assert curves.dense_sigma_min(np.full(100, 0.2), sigmas) == sigmas[-1]
    assert curves.dense_sigma_min(np.full(100, 0.9), sigmas) == sigmas[0]


def _synthetic_curves(n: int, sigmas: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Logistic ramps in log sigma towards 0.5 (what a balanced classifier gives), plus draw noise."""
    centers = rng.uniform(-4.5, 1.5, size=(n, 1))
    widths = rng.uniform(0.1, 0.8, size=(n, 1))
    mean = 0.5 / (1 + np.exp(-(np.log(sigmas)[None] - centers) / widths)) + 0.02
    return np.clip(mean + noise * rng.standard_normal((n, sigmas.size)), 0, 1)


def test_fast_agrees_with_dense_on_synthetic_curves() -> None:
    rng = np.random.default_rng(1)
    sigmas = curves.lognormal_grid()
    p = _synthetic_curves(150, sigmas, rng, noise=0.02)
    plan = curves.FastPlan()
    dense = curves.dense_sigma_min(p, sigmas)
    fast, points = curves.fast_sigma_min_from_dense(p, sigmas, plan)
    assert curves.DRAWS * points.max() <= 8192 // 16
    stats = curves.log_ratio_stats(fast, dense)
    assert stats["median_abs_log_ratio"] <= 0.05
    assert stats["p95_abs_log_ratio"] <= 0.15


def test_fast_is_exact_on_noise_free_monotone_curves() -> None:
    rng = np.random.default_rng(2)
    sigmas = curves.lognormal_grid()
    p = _synthetic_curves(80, sigmas, rng, noise=0.0)
    dense = curves.dense_sigma_min(p, sigmas)
    fast, _ = curves.fast_sigma_min_from_dense(p, sigmas, curves.FastPlan())
    assert np.mean(np.isclose(fast, dense)) >= 0.75
    assert curves.log_ratio_stats(fast, dense)["p95_abs_log_ratio"] <= 0.05


def test_fast_plan_validation() -> None:
    with pytest.raises(ValueError):
        curves.FastPlan(window=8, back=8)
    with pytest.raises(ValueError):
        curves.FastPlan(stride=8, max_points=128)


def test_log_ratio_stats() -> None:
    s = curves.log_ratio_stats(np.array([1.0, math.e]), np.array([1.0, 1.0]))
    assert s["max_abs_log_ratio"] == pytest.approx(1.0) and s["median_abs_log_ratio"] == pytest.approx(0.5)


def test_margin_finds_a_crossing_on_a_plateau_just_below_tau() -> None:
    """A plateau 0.005 under tau with a short blip that makes the dense EMA cross at ~520; the real
    rise is at 1500. The coarse points miss the blip; the margin makes the search look there."""
    sigmas = curves.lognormal_grid()
    p = np.full(curves.GRID_SIZE, 0.1)
    p[400:750] = curves.TAU - 0.005
    p[520:526] = 0.6
    p[1500:] = 0.9
    dense = curves.dense_sigma_min(p[None], sigmas)
    assert 520 <= np.searchsorted(sigmas, dense[0]) < 526
    with_margin, points = curves.fast_sigma_min_from_dense(p[None], sigmas, curves.FastPlan(margin=0.01))
    without, _ = curves.fast_sigma_min_from_dense(p[None], sigmas, curves.FastPlan(margin=0.0))
    assert with_margin[0] == dense[0] and points[0] <= 128
    assert abs(np.log(without[0] / dense[0])) > 0.5


def test_margin_validation() -> None:
    with pytest.raises(ValueError, match="margin"):
        curves.FastPlan(margin=-0.1)


def _next_window_loop(plan: curves.FastPlan, known: np.ndarray, values: np.ndarray, tau: float, span: float) -> np.ndarray:
    """The search step written as the plain loop over candidates (the reference the vectorised one must equal)."""
    from ambient_omni.annotate.curves import candidates, estimated_ema

    room = max(0, plan.max_points - int(known.sum()))
    if room == 0:
        return np.empty(0, dtype=np.int64)
    for j in candidates(plan, estimated_ema(known, values, span), tau):
        lo = max(0, min(int(j) - plan.back, plan.grid_size - plan.window))
        new = lo + np.flatnonzero(~known[lo: lo + plan.window])
        if new.size:
            if new.size > room:
                new = np.sort(new[np.argsort(np.abs(new - j), kind="stable")[:room]])
            return new
    return np.empty(0, dtype=np.int64)


@pytest.mark.parametrize("margin", [0.0, 0.05])
def test_next_window_equals_the_candidate_loop_along_whole_searches(margin: float) -> None:
    from ambient_omni.annotate.curves import next_window

    rng = np.random.default_rng(3)
    plan = curves.FastPlan(grid_size=400, stride=64, window=16, back=12, max_points=60, margin=margin)
    for _ in range(40):
        cross = rng.uniform(0, 400)
        row = 1 / (1 + np.exp(-(np.arange(400) - cross) / rng.uniform(5, 60))) + rng.normal(0, 0.08, 400)
        known = plan.initial_mask()
        while True:
            expected = _next_window_loop(plan, known, row, 0.45, 8.0)
            got = next_window(plan, known, row, 0.45, 8.0)
            np.testing.assert_array_equal(got, expected)
            if not got.size:
                break
            known[got] = True
