"""The crossing sigma: monotone in n2/n1 and in d_TV, consistent per-step choices, edge cases."""

from pathlib import Path

import numpy as np
import pytest

from ambient_omni.errors import AmbientError
from ambient_omni.theory.crossing import (
    CrossingSetup,
    crossing_sigma,
    describe_intervals,
    edm_sigmas,
    informative_from,
    measured_tv_curve,
    mixed_win_intervals,
    plot_crossing,
    setup_from_accuracy,
    step_choices,
)


def test_crossing_moves_up_when_n2_over_n1_shrinks() -> None:
    sigmas = [crossing_sigma(CrossingSetup(100, n2, tv0=0.3)).sigma for n2 in (20000, 2000, 300)]
    assert all(np.isfinite(sigmas))
    assert sigmas[0] < sigmas[1] < sigmas[2]


def test_explicit_bound_crossing_is_a_tv_threshold() -> None:
    """Both explicit bounds decay like 1/sigma, so the answer hardly depends on sigma: mixed wins
    everywhere below a d_TV threshold that falls as n2/n1 shrinks (the crossing jumps to infinity)."""
    status = {n2: crossing_sigma(CrossingSetup(100, n2, tv0=0.11, kde="explicit")).status for n2 in (20000, 2000, 300)}
    assert status == {20000: "always", 2000: "always", 300: "never"}
    assert crossing_sigma(CrossingSetup(100, 20000, tv0=0.13, kde="explicit")).status == "never"


def test_crossing_moves_up_when_tv_grows() -> None:
    sigmas = [crossing_sigma(CrossingSetup(1000, 9000, tv0=tv)).sigma for tv in (0.05, 0.2, 0.5)]
    assert sigmas[0] < sigmas[1] < sigmas[2]
    measured = [
        crossing_sigma(setup_from_accuracy([0.1, 1.0, 10.0], [a, (1 + a) / 2, 0.5 + (a - 0.5) / 20], n_clean=1000, n_corrupted=9000)).sigma
        for a in (0.6, 0.8, 0.99)
    ]
    assert measured[0] < measured[1] < measured[2]


def test_crossing_is_a_root_and_choices_agree() -> None:
    setup = CrossingSetup(1000, 9000, tv0=0.3)
    result = crossing_sigma(setup)
    assert result.status == "crossing" and not result.vacuous
    s = result.sigma
    assert setup.clean_bound(np.asarray(s)) == pytest.approx(float(setup.mixed_bound(np.asarray(s))), rel=1e-8)
    assert setup.mixed_bound(np.asarray(1.01 * s)) < setup.clean_bound(np.asarray(1.01 * s))
    rows = step_choices(setup, edm_sigmas(18, 0.002, 80.0))
    for row in rows:
        assert row["choice"] == ("mixed" if row["mixed_bound"] < row["clean_bound"] else "clean")
        if row["sigma"] > s:
            assert row["choice"] == "mixed"
    assert {row["choice"] for row in rows} == {"clean", "mixed"}


def test_win_intervals_match_every_step_choice() -> None:
    """n1 = 1000, n2 = 9000, tv0 = 0.3: besides sigma > 75.5 the mixed bound also wins on a window
    around sigma = 0.06-0.26 (bias capped at (n2/N) tv0, clean K large); the headline lists both."""
    setup = CrossingSetup(1000, 9000, tv0=0.3)
    intervals = mixed_win_intervals(setup)
    assert len(intervals) == 2
    low, high = intervals
    assert 0.03 < low.lo < 0.06 < 0.14 < low.hi < 0.3 and low.vacuous_below is not None
    assert high.hi == float("inf") and high.lo == pytest.approx(crossing_sigma(setup).sigma, rel=1e-6)
    for row in step_choices(setup, edm_sigmas(18, 0.002, 80.0)):
        inside = any(i.lo < row["sigma"] < i.hi for i in intervals)
        assert (row["choice"] == "mixed") == inside, row
    text = describe_intervals(intervals)
    assert f"{low.lo:.4g} < sigma < {low.hi:.4g}" in text and "sigma > 75.5151" in text
    assert "never" in describe_intervals([])


def test_never_always_and_vacuous() -> None:
    assert crossing_sigma(CrossingSetup(100, 900, tv0=0.5, kde="explicit")).status == "never"
    always = crossing_sigma(CrossingSetup(100, 900, tv0=0.0, kde="explicit"))
    assert always.status == "always"
    assert crossing_sigma(CrossingSetup(100, 900, tv0=0.3)).vacuous  # the clean bound is 1 at its crossing


def test_informative_from_is_where_the_clean_bound_leaves_one() -> None:
    setup = CrossingSetup(30, 9970, tv0=0.3)
    edge = informative_from(setup, 1e-3)
    assert setup.clean_bound(np.asarray(edge * 0.999)) == 1.0 and setup.clean_bound(np.asarray(edge)) < 1.0
    assert informative_from(setup, edge * 2) == edge * 2  # already informative: unchanged
    assert informative_from(setup, float("inf")) == float("inf")
    assert informative_from(CrossingSetup(30, 9970, tv0=0.3), 1e-3, sigma_hi=edge / 2) == float("inf")
    for n in (2, 100, 3000):  # the point returned is informative itself, for any count
        other = CrossingSetup(n, 9970, tv0=0.3)
        assert other.clean_bound(np.asarray(informative_from(other, 1e-3))) < 1.0


def test_edm_sigmas() -> None:
    s = edm_sigmas(18, 0.002, 80.0, 7.0)
    assert s[0] == pytest.approx(80.0) and s[-1] == pytest.approx(0.002) and np.all(np.diff(s) < 0)
    with pytest.raises(AmbientError):
        edm_sigmas(1)


def test_measured_curve_interpolates_and_extrapolates() -> None:
    curve = measured_tv_curve([0.1, 1.0], [0.8, 0.2])
    assert curve(np.array([0.01, 0.1, np.sqrt(0.1), 1.0, 4.0])) == pytest.approx([0.8, 0.8, 0.5, 0.2, 0.05])
    with pytest.raises(AmbientError):
        measured_tv_curve([1.0, 0.1], [0.2, 0.8])


def test_setup_errors() -> None:
    with pytest.raises(AmbientError, match="exactly one"):
        CrossingSetup(10, 10)
    with pytest.raises(AmbientError, match="--tv"):
        CrossingSetup(10, 10, tv0=2.0)
    with pytest.raises(AmbientError, match="at least 1"):
        CrossingSetup(0, 10, tv0=0.1)


def test_plot_crossing_writes_png(tmp_path: Path) -> None:
    path = tmp_path / "c.png"
    result = plot_crossing(CrossingSetup(1000, 9000, tv0=0.3), path)
    assert result.status == "crossing"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
