"""Aggregation of cell metrics over seeds; the mixed-code-versions warning."""

from ambient_omni.report.tables import aggregate, code_versions_note, markdown_table, mean_sd, paired_differences


def _cell(setting: str, method: str, seed: int, fd: float) -> dict:
    return {"name": f"{setting}__{method}__seed{seed}", "setting": setting, "method": method, "seed": seed,
            "wall_s": 60.0, "metrics": {"features": {"fm": {"fd": fd}}}}


def test_mean_sd_uses_sample_sd() -> None:
    assert mean_sd([1.0, 3.0]) == "2 ± 1.41 (2)"
    assert mean_sd([5.0]) == "5 (1)"  # one seed: no spread to show
    assert mean_sd([]) == "-"


def test_aggregate_groups_by_setting_and_method() -> None:
    cells = [_cell("a", "x", 0, 1.0), _cell("a", "x", 1, 3.0), _cell("a", "y", 0, 7.0)]
    rows = aggregate(cells)
    assert [(r["setting"], r["method"], r["seeds"]) for r in rows] == [("a", "x", [0, 1]), ("a", "y", [0])]
    assert rows[0]["values"]["FD [fm]"] == [1.0, 3.0]
    table = markdown_table({"recipe": "r", "cells": cells})
    assert "| a | x | 0,1 | 2 ± 1.41 (2)" in table
    assert "| a__y__seed0 | 7 |" in table


def test_paired_differences_against_the_first_method_use_matching_seeds_only() -> None:
    cells = [_cell("a", "base", 0, 10.0), _cell("a", "base", 1, 20.0), _cell("a", "new", 0, 7.0),
             _cell("a", "new", 1, 21.0), _cell("a", "new", 2, 0.0),  # seed 2 has no baseline: ignored
             _cell("b", "new", 0, 5.0), _cell("b", "base", 0, 9.0), _cell("b", "other", 0, 9.0)]
    title, baseline, methods, rows = paired_differences(cells)
    assert (title, baseline) == ("FD [fm]", "base") and methods == ["new", "other"]
    assert rows == [["a", "-1 ± 2.83 (2)", "-"], ["b", "-4 (1)", "0 (1)"]]
    table = markdown_table({"recipe": "r", "cells": cells})
    assert "FD [fm] minus base, paired by training seed" in table and "| setting | new | other |" in table and "| a | -1 ± 2.83 (2) | - |" in table
    assert paired_differences([_cell("a", "base", 0, 1.0)]) is None


def test_cells_from_different_commits_are_flagged() -> None:
    cells = [_cell("a", "x", 0, 1.0), _cell("a", "x", 1, 3.0), _cell("a", "y", 0, 7.0)]
    assert code_versions_note(cells) == []  # no record (older cells): nothing to say
    for cell, commit, dirty in zip(cells, ["1" * 40, "1" * 40, "2" * 40], [False, False, True]):
        cell["code"] = {"package": "0.1.0", "commit": commit, "dirty": dirty}
    table = markdown_table({"recipe": "r", "cells": cells})
    assert "come from 2 commits: 1111111111 (2: a__x__seed0, a__x__seed1); 2222222222+changes (1: a__y__seed0)" in table
    cells[2]["code"] = cells[0]["code"]
    assert code_versions_note(cells) == []


def test_cells_that_continued_another_run_are_marked_in_the_wall_column() -> None:
    cells = [_cell("a", "x", 0, 1.0), _cell("a", "x", 1, 3.0)]
    assert "continued another run" not in markdown_table({"recipe": "r", "cells": cells})
    for cell in cells:
        cell["code"] = {"package": "0.1.0", "commit": "1" * 40, "dirty": False}
    cells[1]["paths"] = {"adopted": {"run": "/x/runs/blur/cells/c/run", "step": 938,
                                     "code": {"package": "0.1.0", "commit": "2" * 40, "dirty": False}}}
    table = markdown_table({"recipe": "r", "cells": cells})
    assert "| a__x__seed0 | 1 | 1.0 |" in table and "| a__x__seed1 | 3 | 1.0* |" in table
    assert "\\* continued another run" in table
    # the adopted steps ran older code: the table says so
    assert "2222222222 (1: a__x__seed1 (its adopted steps))" in table
