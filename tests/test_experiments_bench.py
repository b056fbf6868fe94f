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


class ModelRunner(FakeRunner):
    """FakeRunner that also leaves a 'model' in the cell folder, as the pipeline's training does, and
    records whether one was already there when the cell started."""

    def __init__(self) -> None:
        super().__init__()
        self.found_model: list[bool] = []

    def __call__(self, cfg: dict[str, Any], root: Path, cell_dir: Path) -> dict[str, Any]:
        model = cell_dir / "run" / "model.txt"
        self.found_model.append(model.is_file())
        model.parent.mkdir(parents=True, exist_ok=True)
        model.write_text(str(cfg["sigma_min"]))
        return super().__call__(cfg, root, cell_dir)


def test_a_cell_rerun_under_another_configuration_never_reuses_the_old_folder(tmp_path: Path) -> None:
    path, out, logs = tmp_path / "toy.toml", tmp_path / "out", []
    path.write_text(RECIPE)
    run_bench(load_recipe(path), out, runner=ModelRunner(), only="s__fixed__seed0", log=logs.append)
    old_key = load_recipe(path).cells[2].key()
    # killed after training, before result.json: only cell.json says what the folder holds
    (out / "cells" / "s__fixed__seed1" / "run").mkdir(parents=True)
    (out / "cells" / "s__fixed__seed1" / "run" / "model.txt").write_text("1.0")
    (out / "cells" / "s__fixed__seed1" / "cell.json").write_text(f'{{"key": "{old_key}x"}}')
    path.write_text(RECIPE.replace("sigma_min = 1.0", "sigma_min = 2.0"))
    rerun = ModelRunner()
    run_bench(load_recipe(path), out, runner=rerun, only="s__fixed__*", log=logs.append)
    assert rerun.found_model == [False, False]  # both old models were moved aside, not trained on
    assert (out / "replaced" / f"s__fixed__seed0-{old_key}" / "run" / "model.txt").read_text() == "1.0"
    assert (out / "replaced" / f"s__fixed__seed1-{old_key}x" / "run" / "model.txt").read_text() == "1.0"
    assert (out / "cells" / "s__fixed__seed0" / "run" / "model.txt").read_text() == "2.0"
    assert any("warning: 1 finished cell(s)" in line and "s__fixed__seed0" in line for line in logs)
    same = ModelRunner()  # the same configuration again: nothing moves, nothing runs
    run_bench(load_recipe(path), out, runner=same, only="s__fixed__*", log=logs.append)
    assert same.calls == [] and len(list((out / "replaced").iterdir())) == 2


def test_reuse_takes_benchmark_folders_and_the_default_runner_only(tmp_path: Path) -> None:
    from ambient_omni.errors import AmbientError

    path = tmp_path / "toy.toml"
    path.write_text(RECIPE, encoding="utf-8")
    with pytest.raises(AmbientError, match="not a benchmark folder"):
        run_bench(load_recipe(path), tmp_path / "out", reuse=[tmp_path / "nothing"], log=lambda _: None)
    (tmp_path / "bench" / "cells").mkdir(parents=True)
    with pytest.raises(AmbientError, match="default cell runner"):
        run_bench(load_recipe(path), tmp_path / "out", runner=FakeRunner(), reuse=[tmp_path / "bench"],
                  log=lambda _: None)
