"""The benchmark runner: every cell of a recipe, resumable, with ``results.json`` and ``results.md``.

Layout of ``OUT``: ``datasets/``, ``classifiers/``, ``annotations/``, ``denoisers/``, ``locality/``
(shared stages; the last two for ``ood-crops``), ``cells/<cell>/run`` (training run),
``cells/<cell>/samples`` (samples + metrics), ``cells/<cell>/result.json`` (written last: the cell
is done), ``results.json``, ``results.md``.
A cell is rerun only if its ``result.json`` is missing or was made for a different configuration; a
change of code alone does not rerun it (``result.json`` records the code's commit: ``ambient bench --list``
shows it), so remove a cell's folder, or use a new ``OUT``, to recompute it with new code.
"""

from __future__ import annotations

import fnmatch
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ambient_omni.errors import AmbientError
from ambient_omni.experiments.recipes import Cell, Recipe
from ambient_omni.report.tables import markdown_table
from ambient_omni.files import atomic_write_text, read_json, write_json
from ambient_omni.version import code_version

CellRunner = Callable[[dict[str, Any], Path, Path], dict[str, Any]]


def finished_result(cell: Cell, cell_dir: Path) -> dict[str, Any] | None:
    """The stored result of ``cell`` if it finished with the same configuration, else ``None``."""
    path = cell_dir / "result.json"
    if not path.is_file():
        return None
    result = read_json(path)
    return result if result.get("key") == cell.key() else None


def foreign_cells(recipe: Recipe, out: Path) -> list[str]:
    """Names of the finished cells under ``out/cells`` that belong to no cell of ``recipe`` as configured
    (made by another recipe version or other ``--set`` overrides): the tables leave them out."""
    expected = {cell.name: cell.key() for cell in recipe.cells}
    return sorted(path.parent.name for path in (out / "cells").glob("*/result.json")
                  if read_json(path).get("key") != expected.get(path.parent.name))


def collect_results(recipe: Recipe, out: Path, command: str | None = None) -> dict[str, Any]:
    """``results.json`` content: every finished cell of ``recipe`` under ``out`` (recipe order)."""
    cells = []
    for cell in recipe.cells:
        result = finished_result(cell, out / "cells" / cell.name)
        if result is not None:
            cells.append(result)
    protocol = cells[0]["metrics"].get("protocol", {}) if cells else {}
    return {"recipe": recipe.name, "description": recipe.description, "paper": recipe.paper,
            "command": command, "protocol": protocol, "n_cells": len(recipe.cells), "cells": cells}


def write_tables(out: Path, results: dict[str, Any]) -> None:
    """Write ``results.json`` and its Markdown rendering ``results.md``."""
    write_json(out / "results.json", results)
    atomic_write_text(out / "results.md", markdown_table(results))


def run_bench(recipe: Recipe, out: str | Path, only: str | None = None, runner: CellRunner | None = None,
              command: str | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) every cell of ``recipe`` whose name matches the glob ``only``."""
    from ambient_omni.experiments.pipeline import run_cell

    out = Path(out)
    runner = runner or run_cell
    command = command or " ".join(shlex.quote(a) for a in ["ambient", *sys.argv[1:]])
    cells = [c for c in recipe.cells if only is None or fnmatch.fnmatch(c.name, only)]
    if not cells:
        raise AmbientError(f"no cell of recipe {recipe.name!r} matches {only!r}")
    code = code_version()  # the code as the sweep starts (a long sweep may outlive a commit)
    for k, cell in enumerate(cells, start=1):
        cell_dir = out / "cells" / cell.name
        if finished_result(cell, cell_dir) is not None:
            log(f"[{k}/{len(cells)}] {cell.name}: done earlier, kept")
            continue
        log(f"[{k}/{len(cells)}] {cell.name}: running")
        start = time.time()
        result = runner(cell.config, out, cell_dir)
        write_json(cell_dir / "result.json", {"name": cell.name, "setting": cell.setting, "method": cell.method,
                                              "seed": cell.seed, "key": cell.key(), "config": cell.config,
                                              "wall_s": time.time() - start, "code": code, **result})
        write_tables(out, collect_results(recipe, out, command))
    results = collect_results(recipe, out, command)
    write_tables(out, results)
    return results
