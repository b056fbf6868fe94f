"""``ambient bench``: --list marks finished cells, --tables rebuilds the tables keeping the recorded command,
unknown recipes and bad overrides are user errors, --help names the shipped recipes."""

from pathlib import Path

import pytest

from ambient_omni.cli.main import main
from ambient_omni.experiments.bench import run_bench
from ambient_omni.experiments.recipes import load_recipe, recipe_names
from ambient_omni.files import read_json
from ambient_omni.version import code_version

from test_experiments_bench import RECIPE, FakeRunner


def _finished_bench(tmp_path: Path) -> tuple[Path, Path]:
    path = tmp_path / "toy.toml"
    path.write_text(RECIPE)
    out = tmp_path / "out"
    run_bench(load_recipe(path), out, runner=FakeRunner(), only="s__fixed__*", command="ambient bench toy --x",
              log=lambda _: None)
    return path, out


def test_list_marks_done_and_todo_cells(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, out = _finished_bench(tmp_path)
    assert main(["bench", str(path), "--out", str(out), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    done = [line for line in lines if line.startswith("done  s__fixed__seed")]
    assert len(done) == 2 and "todo  s__clean-only__seed0" in lines and len(lines) == 4
    commit = code_version()["commit"]  # each finished cell names the code that computed it
    assert commit is None or all(f"(code {commit[:10]}" in line for line in done)


def test_tables_rebuild_from_finished_cells(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, out = _finished_bench(tmp_path)
    (out / "results.md").unlink()
    assert main(["bench", str(path), "--out", str(out), "--tables"]) == 0
    table = (out / "results.md").read_text()
    assert "ambient bench toy --x" in table  # the command that produced the cells, not this one
    assert "| s | fixed | 0,1 | 20.5 ± 0.707 (2) |" in table  # FD of seeds 0, 1: 20, 21


def test_tables_name_cells_of_another_configuration_and_never_write_an_empty_table(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, out = _finished_bench(tmp_path)
    before = (out / "results.json").read_text()
    # the cells were made without overrides: --tables under an override matches none of them
    assert main(["bench", str(path), "--out", str(out), "--tables", "--set", "train.images=7"]) == 2
    err = capsys.readouterr().err
    assert "s__fixed__seed0, s__fixed__seed1; made by: ambient bench toy --x" in err
    assert (out / "results.json").read_text() == before
    assert main(["bench", str(path), "--out", str(tmp_path / "typo"), "--tables"]) == 2
    assert "is --out the right folder?" in capsys.readouterr().err and not (tmp_path / "typo").exists()
    # seed 1 remade under another configuration: the rebuild keeps seed 0 with the command that made it
    run_bench(load_recipe(path, ["train.images=7"]), out, runner=FakeRunner(), only="s__fixed__seed1",
              command="ambient bench toy --set train.images=7", log=lambda _: None)
    assert main(["bench", str(path), "--out", str(out), "--tables"]) == 0
    captured = capsys.readouterr()
    assert "left out of the tables: s__fixed__seed1; made by: ambient bench toy --set train.images=7" in captured.err
    results = read_json(out / "results.json")
    assert [c["name"] for c in results["cells"]] == ["s__fixed__seed0"]
    assert results["command"] == "ambient bench toy --x" and "(1 cells)" in captured.out


def test_user_errors_and_help(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "no-such-recipe", "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    path, out = _finished_bench(tmp_path)
    assert main(["bench", str(path), "--out", str(out), "--set", "train.images"]) == 2
    assert main(["bench", str(path), "--out", str(out), "--reuse", str(tmp_path / "nothing")]) == 2
    assert "--reuse: not a benchmark folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(name in help_text for name in recipe_names())
