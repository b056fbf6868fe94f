"""The benchmark runner: every cell of a recipe, resumable, with ``results.json`` and ``results.md``.

Layout of ``OUT``: ``datasets/``, ``classifiers/``, ``annotations/``, ``denoisers/``, ``locality/``
(shared stages; the last two for ``ood-crops``), ``cells/<cell>/run`` (training run),
``cells/<cell>/samples`` (samples + metrics), ``cells/<cell>/cell.json`` (the configuration the folder
holds), ``cells/<cell>/result.json`` (written last: the cell is done), ``results.json``, ``results.md``;
``replaced/`` keeps cell folders of an earlier configuration of a cell that was run again.
A cell is rerun only if its ``result.json`` is missing or was made for a different configuration; a
change of code alone does not rerun it (``result.json`` records the code's commit: ``ambient bench --list``
shows it), so remove a cell's folder, or use a new ``OUT``, to recompute it with new code.
"""

from __future__ import annotations

import fnmatch
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
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


def foreign_cells(recipe: Recipe, out: Path) -> dict[str, str | None]:
    """The finished cells under ``out/cells`` that belong to no cell of ``recipe`` as configured (made by
    another recipe version or other ``--set`` overrides; the tables leave them out): name -> the command
    that made them (``None`` when the cell did not record it)."""
    expected = {cell.name: cell.key() for cell in recipe.cells}
    found: dict[str, str | None] = {}
    for path in sorted((out / "cells").glob("*/result.json")):
        result = read_json(path)
        if result.get("key") != expected.get(path.parent.name):
            found[path.parent.name] = result.get("command")
    return found


def describe_foreign(recipe: Recipe, foreign: dict[str, str | None]) -> str:
    """One line naming the ``foreign`` cells (:func:`foreign_cells`) and the commands that made them."""
    commands = list(dict.fromkeys(c for c in foreign.values() if c))
    made = f"; made by: {' | '.join(commands)}" if commands else ""
    return (f"{len(foreign)} finished cell(s) do not match recipe {recipe.name!r} as configured now (other --set "
            f"overrides or recipe version) and are left out of the tables: {', '.join(foreign)}{made}")


def collect_results(recipe: Recipe, out: Path, command: str | None = None) -> dict[str, Any]:
    """``results.json`` content: every finished cell of ``recipe`` under ``out`` (recipe order). The command
    is the one(s) the cells recorded; ``command`` stands in when none did (cells of older code)."""
    cells = []
    for cell in recipe.cells:
        result = finished_result(cell, out / "cells" / cell.name)
        if result is not None:
            cells.append(result)
    commands = list(dict.fromkeys(c["command"] for c in cells if c.get("command")))
    protocol = cells[0]["metrics"].get("protocol", {}) if cells else {}
    return {"recipe": recipe.name, "description": recipe.description, "paper": recipe.paper,
            "command": " ; ".join(commands) if commands else command, "protocol": protocol,
            "n_cells": len(recipe.cells), "cells": cells}


def claim_cell_dir(cell: Cell, cell_dir: Path, out: Path, log: Callable[[str], None] = print) -> None:
    """Make ``cell_dir`` hold only work of this configuration of ``cell``, then record its key in
    ``cell.json``. A folder made for another configuration (its ``cell.json`` or ``result.json`` names
    another key) moves to ``out/replaced/<name>-<key>``, kept, so that nothing of it (a finished denoiser,
    checkpoints) is taken for this configuration's."""
    markers = [cell_dir / name for name in ("cell.json", "result.json") if (cell_dir / name).is_file()]
    old_key = read_json(markers[0]).get("key") if markers else cell.key()
    if old_key != cell.key():
        dest, n = out / "replaced" / f"{cell.name}-{old_key}", 0
        while dest.exists():
            n += 1
            dest = out / "replaced" / f"{cell.name}-{old_key}-{n}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        cell_dir.rename(dest)
        log(f"{cell.name}: the folder held another configuration ({old_key}); moved to {dest}")
    cell_dir.mkdir(parents=True, exist_ok=True)
    write_json(cell_dir / "cell.json", {"name": cell.name, "key": cell.key(), "config": cell.config})


def write_tables(out: Path, results: dict[str, Any]) -> None:
    """Write ``results.json`` and its Markdown rendering ``results.md``."""
    write_json(out / "results.json", results)
    atomic_write_text(out / "results.md", markdown_table(results))


def run_bench(recipe: Recipe, out: str | Path, only: str | None = None, runner: CellRunner | None = None,
              command: str | None = None, log: Callable[[str], None] = print,
              reuse: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Run (or resume) every cell of ``recipe`` whose name matches the glob ``only``. ``reuse``: other
    benchmark folders whose denoiser runs a cell may continue when they lie on its trajectory (same data
    content, annotation content and training settings; :func:`~ambient_omni.experiments.pipeline.reusable_runs`),
    e.g. a regime cell that is configured exactly like a blur cell."""
    from ambient_omni.experiments.pipeline import run_cell

    out = Path(out)
    missing = [str(d) for d in reuse if not (Path(d) / "cells").is_dir()]
    if missing:
        raise AmbientError(f"--reuse: not a benchmark folder (no cells/ inside): {', '.join(missing)}")
    if runner is not None and reuse:
        raise AmbientError("run_bench: 'reuse' applies to the default cell runner only")
    runner = runner or partial(run_cell, reuse=[Path(d) for d in reuse], log=log)
    command = command or " ".join(shlex.quote(a) for a in ["ambient", *sys.argv[1:]])
    cells = [c for c in recipe.cells if only is None or fnmatch.fnmatch(c.name, only)]
    if not cells:
        raise AmbientError(f"no cell of recipe {recipe.name!r} matches {only!r}")
    code = code_version()  # the code as the sweep starts (a long sweep may outlive a commit)
    if foreign := foreign_cells(recipe, out):
        log(f"warning: {describe_foreign(recipe, foreign)}")
    for k, cell in enumerate(cells, start=1):
        cell_dir = out / "cells" / cell.name
        if finished_result(cell, cell_dir) is not None:
            log(f"[{k}/{len(cells)}] {cell.name}: done earlier, kept")
            continue
        log(f"[{k}/{len(cells)}] {cell.name}: running" + (f": {cell.description}" if cell.description else ""))
        claim_cell_dir(cell, cell_dir, out, log)
        start = time.time()
        result = runner(cell.config, out, cell_dir)
        write_json(cell_dir / "result.json", {"name": cell.name, "setting": cell.setting, "method": cell.method,
                                              "seed": cell.seed, "key": cell.key(), "config": cell.config,
                                              "wall_s": time.time() - start, "code": code, "command": command,
                                              **result})
        write_tables(out, collect_results(recipe, out, command))
    results = collect_results(recipe, out, command)
    write_tables(out, results)
    return results
