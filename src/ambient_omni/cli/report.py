"""``ambient report RUN_OR_BENCH_DIR``: one self-contained HTML page and a Markdown twin."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="write report.html (self-contained) and report.md for a run or benchmark folder",
        description="Collect what a run, annotation or benchmark folder holds (result tables, metrics, "
        "sample grids, loss curves, sigma_min histograms, data availability versus sigma, classifier "
        "figures) into FOLDER/report.html (images inlined) and FOLDER/report.md (+ report_files/).",
    )
    parser.add_argument("folder", help="run folder, benchmark folder or any folder holding their outputs")
    parser.add_argument("--out", default=None, help="where to write the report (default: the folder itself)")
    parser.add_argument("--title", default=None, help="page title")
    parser.add_argument("--buffer-s", type=float, default=4.0, help="buffer s used for admissibility (default 4)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ambient_omni.report import write_report

    html_path, md_path = write_report(args.folder, args.out, args.title, args.buffer_s)
    print(f"wrote {html_path}\nwrote {md_path}")
    return 0
