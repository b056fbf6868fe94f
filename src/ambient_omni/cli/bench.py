"""``ambient bench RECIPE --out DIR``: run (or resume) every cell of a benchmark recipe."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ambient_omni.experiments.recipes import Recipe


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand."""
    from ambient_omni.experiments.recipes import recipe_names

    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark recipe (one per paper table); resumable",
        description="Run every (setting, method, seed) cell of a recipe: build the dataset, annotate by the "
        "cell's method, train the denoiser, sample and evaluate. A sweep killed midway resumes where it "
        "stopped (finished cells are kept, training resumes from its checkpoint). Writes OUT/results.json "
        "and OUT/results.md (mean and sd over seeds). Recipes: the ones shipped in ambient_omni/recipes/ "
        "(one per paper table; noise-sanity is the annotation check of Table 7), or a .toml path. "
        "Example: ambient bench blur --out bench/blur",
    )
    parser.add_argument("recipe", help=f"recipe name ({', '.join(recipe_names())}) or .toml path")
    parser.add_argument("--out", required=True, help="benchmark folder (created; reused to resume)")
    parser.add_argument("--only", default=None, help="run only cells whose name matches this glob, "
                        "e.g. 'blur-1.0__*__seed0'")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key for every cell (dotted, value read as TOML), e.g. "
                        "--set train.images=60000; repeatable. Changed cells get new keys, so nothing is mixed up")
    parser.add_argument("--reuse", action="append", default=[], metavar="DIR",
                        help="another benchmark folder whose denoiser runs a cell may continue (or take as they are) "
                        "when they lie on the cell's trajectory: same data and annotation content, same training "
                        "settings, a budget no longer than the cell's (clean-only, all-data, fixed and ood-fixed "
                        "cells; classifier annotations name their own folder); e.g. --reuse runs/blur for the "
                        "regime recipe's 30-clean cells. Repeatable; the result records what was adopted")
    parser.add_argument("--list", action="store_true", help="list the cells, whether they are done and with which "
                        "code commit (a finished cell is kept even after the code changes), then exit")
    parser.add_argument("--tables", action="store_true",
                        help="only regenerate results.json and results.md from the finished cells")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ambient_omni.experiments.bench import finished_result, run_bench
    from ambient_omni.experiments.recipes import load_recipe

    recipe = load_recipe(args.recipe, args.set)
    out = Path(args.out)
    if args.list:
        for cell in recipe.cells:
            result = finished_result(cell, out / "cells" / cell.name)
            code = (result or {}).get("code") or {}
            commit = f"  (code {code['commit'][:10]}{'+changes' if code.get('dirty') else ''})" if code.get("commit") else ""
            print(f"{'done' if result is not None else 'todo'}  {cell.name}{commit}")
        return 0
    if args.tables:
        return _tables(recipe, out)
    run_bench(recipe, out, only=args.only, reuse=args.reuse)
    print((out / "results.md").read_text(encoding="utf-8"))
    return 0


def _tables(recipe: Recipe, out: Path) -> int:
    """``--tables``: rebuild the tables from the finished cells matching ``recipe``; cells made with another
    configuration are named, and a rebuild that would keep no cell is refused (results.json unchanged)."""
    from ambient_omni.errors import AmbientError
    from ambient_omni.experiments.bench import collect_results, describe_foreign, foreign_cells, write_tables
    from ambient_omni.files import read_json

    previous = out / "results.json"
    command = read_json(previous).get("command") if previous.is_file() else None
    results, foreign = collect_results(recipe, out, command), foreign_cells(recipe, out)
    if foreign:
        print(f"warning: {describe_foreign(recipe, foreign)}", file=sys.stderr)
    if not results["cells"]:
        hint = "pass the --set overrides the cells were made with" if foreign else "is --out the right folder?"
        raise AmbientError(f"no finished cell of {out} matches recipe {recipe.name!r}: {hint}; nothing written")
    write_tables(out, results)
    print(f"wrote {out / 'results.json'} and {out / 'results.md'} ({len(results['cells'])} cells)")
    return 0
