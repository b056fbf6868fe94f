"""docs/results: every committed benchmark table is the rendering of its committed results.json
(scripts/results_tables.py), so docs/RESULTS.md's figures regenerate from a clean checkout."""

import importlib.util
import shutil
from pathlib import Path

import pytest

from ambient_omni.files import read_json

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("results_tables", ROOT / "scripts" / "results_tables.py")
results_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_tables)


def test_committed_tables_are_their_results_rendered() -> None:
    files = sorted((ROOT / "docs" / "results").glob("*.json"))
    assert files, "docs/results holds no results.json"
    assert results_tables.main(["--check"]) == 0
    for path in files:  # every table has cells, and every cell carries its seed and configuration
        assert read_json(path)["cells"], path
        assert all({"seed", "config", "metrics", "wall_s"} <= cell.keys() for cell in read_json(path)["cells"])


def test_a_hand_edited_table_is_caught_and_rerendered(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shutil.copyfile(ROOT / "docs" / "results" / "jpeg.json", tmp_path / "jpeg.json")
    (tmp_path / "jpeg.md").write_text("| jpeg-10 | fixed-1.0 | 0,1 | 90 |\n")
    assert results_tables.main(["--check", "--dir", str(tmp_path)]) == 1
    assert "jpeg.md" in capsys.readouterr().err
    assert results_tables.main(["--dir", str(tmp_path)]) == 0
    assert "| jpeg-10 | fixed-1.0 | 0,1 | 103 ± 15.4 (2) |" in (tmp_path / "jpeg.md").read_text()
    assert results_tables.main(["--check", "--dir", str(tmp_path)]) == 0


def test_add_copies_a_bench_folder_and_refuses_what_would_lose_or_mix_tables(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    bench, docs = tmp_path / "runs" / "jpeg", tmp_path / "docs"
    bench.mkdir(parents=True)
    docs.mkdir()
    shutil.copyfile(ROOT / "docs" / "results" / "jpeg.json", bench / "results.json")
    assert results_tables.main(["--add", str(bench), "--dir", str(docs)]) == 0
    assert (docs / "jpeg.json").read_bytes() == (bench / "results.json").read_bytes()
    assert (docs / "jpeg.md").read_text() == results_tables.render(docs / "jpeg.json")
    with pytest.raises(SystemExit):
        results_tables.main(["--add", str(bench), "--check", "--dir", str(docs)])
    with pytest.raises(SystemExit):
        results_tables.main(["--add", str(bench), str(tmp_path / "other" / "jpeg"), "--dir", str(docs)])
    (bench / "results.json").write_text('{"recipe": "jpeg", "cells": []}')
    with pytest.raises(SystemExit, match="no finished cell"):
        results_tables.main(["--add", str(bench), "--dir", str(docs)])
    (docs / "gone.md").write_text("# a table whose results are gone\n")
    assert results_tables.main(["--check", "--dir", str(docs)]) == 1
    assert "gone.md" in capsys.readouterr().err
