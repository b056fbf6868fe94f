"""The report's verdict: primary feature set, ranking per setting, ties within the seed spread."""

from ambient_omni.report.verdict import cells_verdict, describe, metrics_verdict, primary_feature


def _cell(setting: str, method: str, seed: int, fd: float, feature: str = "fmnist-classifier") -> dict:
    return {"setting": setting, "method": method, "seed": seed, "metrics": {"features": {feature: {"fd": fd}}}}


def test_primary_feature_prefers_the_in_domain_network() -> None:
    assert primary_feature(["effnet-lite0", "fmnist-classifier"]) == "fmnist-classifier"
    assert primary_feature(["effnet-lite0"]) == "effnet-lite0"
    assert primary_feature(["zz", "aa"]) == "aa" and primary_feature([]) is None


def test_one_ranking_per_setting_with_means_and_spread() -> None:
    cells = [_cell("a", "clean-only", 0, 100.0), _cell("a", "clean-only", 1, 110.0),
             _cell("a", "ambient-o", 0, 80.0), _cell("a", "ambient-o", 1, 84.0),
             _cell("b", "clean-only", 0, 50.0), _cell("b", "clean-only", 1, 52.0),
             _cell("b", "ambient-o", 0, 51.0), _cell("b", "ambient-o", 1, 55.0)]
    header, a, b = cells_verdict(cells)
    assert "FD [fmnist-classifier]" in header and "lower is better" in header
    assert a == "ambient-o won on a: FD 82 ± 2.8 (2 seeds) against clean-only 105 ± 7.1 (2 seeds) (23 lower than clean-only)."
    assert b.startswith("clean-only won on b: FD 51 ± 1.4 (2 seeds)") and b.endswith("within the seed spread: a tie).")


def test_single_seed_is_flagged_and_metrics_rows_rank_too() -> None:
    line = cells_verdict([_cell("s", "x", 0, 2.0), _cell("s", "y", 0, 1.0)])[1]
    assert line.startswith("y won: FD 1 against x 2") and "one training seed" in line
    rows = [("runs/a", {"features": {"pixels": {"fd": 3.0}}}), ("runs/b", {"features": {"pixels": {"fd": 1.5}}})]
    assert metrics_verdict(rows)[1].startswith("runs/b won: FD 1.5 against runs/a 3")
    assert metrics_verdict([("only", {"features": {"pixels": {"fd": 3.0}}})])[1] == "only: FD 3 (no other method to compare)."
    assert metrics_verdict([("x", {})]) == [] and describe([1.0, 3.0]) == "2 ± 1.4 (2 seeds)"
