"""The benchmark tables docs/RESULTS.md quotes, kept in the repository so they regenerate from a clean checkout:
docs/results/NAME.json is a bench folder's results.json (every finished cell: configuration, seed, metrics,
code, wall time) and docs/results/NAME.md its rendering by ambient_omni.report.tables.markdown_table, the same
table `ambient bench RECIPE --out DIR --tables` writes.

    .venv/bin/python scripts/results_tables.py                    re-render every docs/results/*.md from its .json
    .venv/bin/python scripts/results_tables.py --add runs/jpeg    copy runs/jpeg/results.json to docs/results/jpeg.json
                                                                  (NAME = the folder's name) and render it
    .venv/bin/python scripts/results_tables.py --check            exit 1 if a .md is not its .json's rendering
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ambient_omni.files import atomic_write_text, read_json
from ambient_omni.report.tables import markdown_table

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def render(path: Path) -> str:
    """The Markdown table of the results file ``path``."""
    return markdown_table(read_json(path))


def add(folder: Path, results_dir: Path) -> Path:
    """Copy bench folder ``folder``'s results.json to ``results_dir/<folder name>.json`` (it must hold cells)."""
    source = folder / "results.json"
    if not source.is_file():
        raise SystemExit(f"{folder}: no results.json (run `ambient bench RECIPE --out {folder} --tables` first)")
    if not read_json(source).get("cells"):
        raise SystemExit(f"{source}: no finished cell")
    target = results_dir / f"{folder.resolve().name}.json"
    print(f"{'replaced' if target.exists() else 'added'} {target}")
    shutil.copyfile(source, target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Render (or with ``--check`` verify) every table of the results folder; 1 if a check fails."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--add", nargs="*", default=[], type=Path, metavar="BENCH_DIR",
                        help="bench folders to copy in first (NAME = the folder's name)")
    parser.add_argument("--check", action="store_true", help="only check that every .md matches its .json")
    parser.add_argument("--dir", type=Path, default=RESULTS, help="the results folder (default: docs/results)")
    args = parser.parse_args(argv)
    if args.check and args.add:
        parser.error("--check verifies the folder as it is: give --add without --check")
    if not args.dir.is_dir():
        parser.error(f"{args.dir}: no such folder")
    names = [folder.resolve().name for folder in args.add]
    if len(set(names)) < len(names):
        parser.error(f"--add: two folders share a name ({', '.join(names)}); their tables would overwrite each other")
    for folder in args.add:
        add(folder, args.dir)
    stale = [md.name for md in sorted(args.dir.glob("*.md")) if not md.with_suffix(".json").is_file()]
    for path in sorted(args.dir.glob("*.json")):
        table, md = render(path), path.with_suffix(".md")
        if args.check:
            if not md.is_file() or md.read_text(encoding="utf-8") != table:
                stale.append(md.name)
        else:
            atomic_write_text(md, table)
            print(f"wrote {md}")
    if stale:
        print(f"not the rendering of a .json: {', '.join(stale)} (run scripts/results_tables.py; remove a table "
              "whose .json is gone)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
