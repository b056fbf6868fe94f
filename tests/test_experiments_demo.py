"""Demo summary: the table and the plain-words verdict come from the numbers."""

from ambient_omni.experiments.demo import summary_lines, verdict_lines


def _results(fds: dict[str, float]) -> dict:
    return {"cells": [{"name": f"s__{m}__seed0", "setting": "s", "method": m, "seed": 0,
                       "metrics": {"features": {"fm": {"fd": fd, "precision": 0.5, "recall": 0.5}}}}
                      for m, fd in fds.items()]}


def test_verdict_follows_the_numbers() -> None:
    lines = verdict_lines(_results({"clean-only": 60.0, "all-data": 300.0, "ambient-o": 120.0}))
    assert lines[0] == "ambient-o vs clean-only: FD [fm] 120.0 vs 60.0, worse by 60.0"
    assert lines[1] == "ambient-o vs all-data: FD [fm] 120.0 vs 300.0, better by 180.0"
    flipped = verdict_lines(_results({"clean-only": 90.0, "ambient-o": 50.0}))
    assert flipped[0].endswith("better by 40.0")


def test_summary_has_one_row_per_method() -> None:
    lines = summary_lines(_results({"clean-only": 60.0, "ambient-o": 120.0}))
    assert lines[0].split()[:2] == ["method", "FD"]
    assert lines[2].startswith("clean-only") and lines[2].split()[1] == "60" and "±" not in lines[2]  # one seed
    assert lines[3].startswith("ambient-o")


def test_conclusion_is_quoted_after_the_verdict(tmp_path) -> None:
    from ambient_omni.experiments.demo import conclusion_lines
    from ambient_omni.experiments.recipes import load_recipe

    shipped = conclusion_lines(load_recipe("demo"))
    assert shipped[0].startswith("What the longer benchmarks found")
    assert "section 7" in " ".join(shipped) and all(len(line) <= 100 for line in shipped)
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "r"\nseeds = [0]\n[base]\nsource = "fashion-mnist:train"\n'
                      '[[settings]]\nname = "s"\n[[methods]]\nname = "clean-only"\n')
    assert conclusion_lines(load_recipe(recipe)) == []


def test_conclusion_quotes_numbers_that_results_md_states() -> None:
    """The demo's quote of the longer benchmarks may not drift from docs/RESULTS.md."""
    import re
    from pathlib import Path

    from ambient_omni.experiments.recipes import load_recipe

    results = (Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md").read_text()
    numbers = re.findall(r"\d+\.\d+", load_recipe("demo").conclusion)
    assert len(numbers) >= 4
    assert all(number in results for number in numbers), [n for n in numbers if n not in results]
