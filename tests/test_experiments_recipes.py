"""Recipe parsing and expansion into cells."""

from pathlib import Path

import pytest

from ambient_omni.errors import AmbientError
from ambient_omni.experiments.recipes import RECIPE_DIR, load_recipe, recipe_names

RECIPE = """
name = "toy"
seeds = [0, 1]
[base]
clean_count = 10
[base.train]
images = 100
batch = 8
[[settings]]
name = "blur-0.6"
corruption = "blur:sigma=0.6"
[[settings]]
name = "blur-1.0"
corruption = "blur:sigma=1.0"
[settings.train]
images = 200
[[methods]]
name = "clean-only"
[[methods]]
name = "fixed-1.5"
method = "fixed"
sigma_min = 1.5
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "toy.toml"
    path.write_text(text)
    return path


def test_expansion_crosses_settings_methods_seeds(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path, RECIPE))
    assert len(recipe.cells) == 2 * 2 * 2
    cell = recipe.cell("blur-1.0__fixed-1.5__seed1")
    assert cell.name == "blur-1.0__fixed-1.5__seed1" and cell.config["method"] == "fixed"
    assert cell.config["sigma_min"] == 1.5
    assert cell.config["train"] == {"images": 200, "batch": 8}  # nested merge keeps base keys
    assert cell.config["seed"] == 1
    other = recipe.cell("blur-0.6__clean-only__seed0")
    assert other.config["train"]["images"] == 100
    assert cell.key() != other.key()
    with pytest.raises(AmbientError, match="no cell 'nope'.*blur-0.6__clean-only__seed0"):
        recipe.cell("nope")


def test_unknown_method_and_missing_keys_are_errors(tmp_path: Path) -> None:
    with pytest.raises(AmbientError, match="unknown"):
        load_recipe(_write(tmp_path, RECIPE.replace('method = "fixed"', 'method = "magic"')))
    with pytest.raises(AmbientError, match="seeds"):
        load_recipe(_write(tmp_path, RECIPE.replace("seeds = [0, 1]", "")))
    with pytest.raises(AmbientError, match="not valid TOML"):
        load_recipe(_write(tmp_path, "name = "))
    with pytest.raises(AmbientError, match="not found"):
        load_recipe("no-such-recipe")


@pytest.mark.parametrize("path", sorted(RECIPE_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_recipes_parse(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.cells
    if recipe.name != "demo":  # the demo is a demonstration, the tables need a spread
        assert len({c.seed for c in recipe.cells}) >= 2, "every table needs at least two training seeds"


def test_every_table_of_the_issue_ships_and_loads_by_name() -> None:
    names = recipe_names()
    assert {"blur", "jpeg", "motion", "ablation", "ood", "noise-sanity", "demo"} <= set(names)
    assert all(load_recipe(name).name == name for name in names)


def test_overrides_win_over_settings_and_methods(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path, RECIPE), ["train.images=50", "eval.n_samples=16", "sigma_min=2.5"])
    for cell in recipe.cells:
        assert cell.config["train"]["images"] == 50  # blur-1.0 set 200 in its own table
        assert cell.config["train"]["batch"] == 8
        assert cell.config["eval"] == {"n_samples": 16}
    fixed = [c for c in recipe.cells if c.config["method"] == "fixed"]
    assert {c.config["sigma_min"] for c in fixed} == {2.5}
    with pytest.raises(AmbientError, match="KEY=VALUE"):
        load_recipe(_write(tmp_path, RECIPE), ["train.images"])


def test_a_method_description_is_printed_but_not_part_of_the_cell_key(tmp_path) -> None:
    from ambient_omni.experiments.bench import run_bench
    from ambient_omni.experiments.recipes import load_recipe

    text = ('name = "r"\nseeds = [0]\n[base]\nn = 4\n[[settings]]\nname = "s"\n'
            '[[methods]]\nname = "clean-only"\n{}')
    plain, described = tmp_path / "a.toml", tmp_path / "b.toml"
    plain.write_text(text.format(""))
    described.write_text(text.format('description = "the clean images only"\n'))
    a, b = load_recipe(plain).cells[0], load_recipe(described).cells[0]
    assert a.key() == b.key() and "description" not in b.config and b.description == "the clean images only"
    said: list[str] = []
    run_bench(load_recipe(described), tmp_path / "out", runner=lambda cfg, root, cell: {"metrics": {}, "paths": {}},
              command="test", log=said.append)
    assert "[1/1] s__clean-only__seed0: running: the clean images only" in said
