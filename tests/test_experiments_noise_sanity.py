"""The Gaussian-noise sanity check (paper Table 7) as a library function and as a bench method."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_omni.annotate.curves import lognormal_grid
from ambient_omni.experiments.bench import run_bench
from ambient_omni.experiments.noise_sanity import NoiseCheckConfig, noisy_split, summary_line
from ambient_omni.experiments.recipes import load_recipe
from ambient_omni.files import read_json

TINY = "train_images = 64\nsteps = 6\nbatch = 16\nannotate = 3\ndense = 1\neval_batch = 512\n"


def test_from_cell_reads_level_seeds_and_check_table() -> None:
    cfg = NoiseCheckConfig.from_cell({"noise_std": 0.1, "seed": 3, "data_seed": 2, "check": {"lr": 2e-3, "steps": 7}})
    assert (cfg.std, cfg.seed, cfg.data_seed, cfg.lr, cfg.steps) == (0.1, 3, 2, 2e-3, 7)
    with pytest.raises(ValueError, match="noise_std"):
        NoiseCheckConfig.from_cell({"seed": 0})
    with pytest.raises(ValueError, match="no_such_option.*known: .*steps"):
        NoiseCheckConfig.from_cell({"noise_std": 0.1, "check": {"no_such_option": 1}})


def test_noisy_split_keeps_the_noise_unclipped() -> None:
    clean, noisy, held, held_noisy = noisy_split(NoiseCheckConfig(std=0.2, train_images=300, annotate=200))
    assert clean.shape == noisy.shape == (300, 1, 28, 28) and held.shape == held_noisy.shape == (200, 1, 28, 28)
    residual = held_noisy - held
    # float storage: the residual is the requested std everywhere, black background included
    assert float(residual.std()) == pytest.approx(0.2, rel=0.02)
    assert float(held_noisy.min()) < -1.2
    # the training split: clean and noisy images are different images (no image in both)
    assert not any(torch.equal(clean[0], x) for x in noisy)
    again = noisy_split(NoiseCheckConfig(std=0.2, train_images=300, annotate=200))
    assert torch.equal(again[1], noisy) and torch.equal(again[3], held_noisy)
    with pytest.raises(ValueError, match="at most"):
        noisy_split(NoiseCheckConfig(std=0.1, train_images=40_000))


def test_noise_check_bench_cell_writes_annotation_table(tmp_path: Path) -> None:
    recipe_path = tmp_path / "ns.toml"
    recipe_path.write_text('name = "ns"\nseeds = [0]\n[base.check]\n' + TINY
                           + '[[settings]]\nname = "std-0.1"\nnoise_std = 0.1\n'
                           + '[[methods]]\nname = "classifier"\nmethod = "noise-check"\n')
    results = run_bench(load_recipe(recipe_path), tmp_path / "out", command="ambient bench ns", log=lambda _: None)
    (cell,) = results["cells"]
    fig = cell["metrics"]["annotation"]
    grid = lognormal_grid(p_mean=-3.5, p_std=1.0)  # the classifier's training log-normal (NoiseCheckConfig's)
    assert fig["true_std"] == 0.1 and fig["n_fast"] == 3 and fig["n_dense"] == 1
    # a mean of grid values stays on the grid's range (up to float rounding: all images may sit at one end)
    assert grid[0] * (1 - 1e-9) <= fig["mean_sigma_min"] <= grid[-1] * (1 + 1e-9)
    assert fig["mean_over_std"] == pytest.approx(fig["mean_sigma_min"] / 0.1)
    assert 0 < fig["calls_per_image"] <= fig["dense_calls_per_image"] / 16
    assert set(fig["accuracy_at_std_multiple"]) == {"0.5", "1", "2", "4"}
    check = read_json(tmp_path / "out" / "cells" / "std-0.1__classifier__seed0" / "classifier" / "check.json")
    assert fig["classifier_accuracy"] == check["accuracy"]
    fast = np.load(tmp_path / "out" / "cells" / "std-0.1__classifier__seed0" / "curves.npz")["fast"]
    assert fig["at_grid_min_share"] == pytest.approx(float(np.mean(fast <= grid[0])))
    assert fig["never_crossed_share"] == pytest.approx(float(np.mean(fast >= grid[-1])))
    curves = np.load(tmp_path / "out" / "cells" / "std-0.1__classifier__seed0" / "curves.npz")
    assert np.array_equal(curves["sigmas"], grid)
    assert curves["p"].shape == (1, grid.size) and np.isclose(curves["dense"][0], fig["dense_mean_sigma_min"])
    table = (tmp_path / "out" / "results.md").read_text()
    assert "mean sigma_min" in table and "fast vs dense p95" in table
    assert "FD" not in table and "memorized" not in table  # no denoiser: no sample columns
    assert summary_line(fig).startswith("std 0.1: mean sigma_min")


def test_shipped_noise_sanity_recipe_has_the_paper_levels() -> None:
    recipe = load_recipe("noise-sanity")
    levels = sorted({c.config["noise_std"] for c in recipe.cells})
    assert levels == [0.05, 0.1, 0.2]
    assert {c.seed for c in recipe.cells} == {0, 1} and {c.method for c in recipe.cells} == {"classifier"}
