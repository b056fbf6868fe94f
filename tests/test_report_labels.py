"""Report labels: cells by method (plus setting / seed when needed), run kinds, annotation users."""

import json
from pathlib import Path

from ambient_omni.report.labels import annotation_methods, cell_info, cell_labels, label_for, run_info


def _cell(root: Path, name: str, result: dict | None = None) -> Path:
    folder = root / "cells" / name
    folder.mkdir(parents=True)
    if result is not None:
        (folder / "result.json").write_text(json.dumps(result))
    return folder


def test_cell_info_from_result_or_name(tmp_path: Path) -> None:
    named = _cell(tmp_path, "blur-1.0__ambient-o__seed3")
    assert cell_info(named).method == "ambient-o" and cell_info(named).seed == 3 and cell_info(named).setting == "blur-1.0"
    recorded = _cell(tmp_path, "odd", {"setting": "s", "method": "m", "seed": 1})
    assert (cell_info(recorded).setting, cell_info(recorded).method) == ("s", "m")


def test_labels_add_setting_and_seed_only_when_they_vary(tmp_path: Path) -> None:
    a = _cell(tmp_path, "s1__clean-only__seed0")
    b = _cell(tmp_path, "s1__ambient-o__seed0")
    assert cell_labels(tmp_path) == {a: "clean-only", b: "ambient-o"}
    c = _cell(tmp_path, "s2__ambient-o__seed1")
    labels = cell_labels(tmp_path)
    assert labels[c] == "ambient-o (s2, seed 1)" and labels[a] == "clean-only (s1, seed 0)"
    assert label_for(c / "samples" / "grid.png", tmp_path, labels) == labels[c]
    assert label_for(tmp_path / "x" / "y", tmp_path, labels) == "x/y" and label_for(tmp_path, tmp_path, labels) == "."


def test_run_info_and_annotation_methods(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert run_info(run).kind == "denoiser" and not run_info(run).ambient  # no config.json
    (run / "config.json").write_text(json.dumps({"task": {"kind": "denoiser", "annotation_counts": {"high_noise": 5}}}))
    assert run_info(run).ambient
    (run / "config.json").write_text(json.dumps({"task": {"kind": "classifier"}}))
    assert run_info(run).kind == "classifier"
    _cell(tmp_path, "s__x__seed0", {"setting": "s", "method": "x", "paths": {"annotations": "elsewhere/a.jsonl"}})
    _cell(tmp_path, "s__y__seed0", {"setting": "s", "method": "y", "paths": {"annotations": None}})
    assert annotation_methods(tmp_path) == {"a.jsonl": ["x"]}
