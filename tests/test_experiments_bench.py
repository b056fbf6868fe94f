"""Benchmark runner: runs every cell, resumes after a crash without redoing finished cells."""

from pathlib import Path
from typing import Any

import pytest

from ambient_omni.experiments.bench import run_bench
from ambient_omni.experiments.recipes import load_recipe

RECIPE = """
name = "toy"
seeds = [0, 1]
[[settings]]
name = "s"
corruption = "blur:sigma=1"
[[methods]]
name = "clean-only"
[[methods]]
name = "fixed"
sigma_min = 1.0
"""


class FakeRunner:
    """Stands in for the pipeline: FD = 10 * (method index + 1) + seed; can crash on a given call."""

    def __init__(self, crash_on: int | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.crash_on = crash_on

    def __call__(self, cfg: dict[str, Any], root: Path, cell_dir: Path) -> dict[str, Any]:
        self.calls.append(cfg)
        if self.crash_on is not None and len(self.calls) == self.crash_on:
            raise KeyboardInterrupt("simulated kill")
        fd = 10.0 * (1 + (cfg["method"] == "fixed")) + cfg["seed"]
        return {"metrics": {"features": {"fm": {"fd": fd, "precision": 0.5, "recall": 0.25}},
                            "memorization": {"share": 0.1}, "protocol": {"n_samples": 8}}}


def test_resume_after_crash_skips_finished_cells(tmp_path: Path) -> None:
    path = tmp_path / "toy.toml"
    path.write_text(RECIPE)
    recipe = load_recipe(path)
    first = FakeRunner(crash_on=3)
    with pytest.raises(KeyboardInterrupt):
        run_bench(recipe, tmp_path / "out", runner=first, command="ambient bench toy", log=lambda _: None)
    assert len(first.calls) == 3
    second = FakeRunner()
    results = run_bench(recipe, tmp_path / "out", runner=second, command="ambient bench toy", log=lambda _: None)
    assert len(second.calls) == 2  # the two cells that had not finished
    assert len(results["cells"]) == 4
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| s | clean-only | 0,1 | 10.5 ± 0.707 (2)" in table
    assert "| s | fixed | 0,1 | 20.5 ± 0.707 (2)" in table
    assert "ambient bench toy" in table


def test_changed_configuration_reruns_cell(tmp_path: Path) -> None:
    path = tmp_path / "toy.toml"
    path.write_text(RECIPE)
    runner = FakeRunner()
    run_bench(load_recipe(path), tmp_path / "out", runner=runner, only="s__fixed__*", log=lambda _: None)
    assert len(runner.calls) == 2
    path.write_text(RECIPE.replace("sigma_min = 1.0", "sigma_min = 2.0"))
    rerun = FakeRunner()
    run_bench(load_recipe(path), tmp_path / "out", runner=rerun, only="s__fixed__*", log=lambda _: None)
    assert [c["sigma_min"] for c in rerun.calls] == [2.0, 2.0]
