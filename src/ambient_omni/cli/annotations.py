"""``ambient annotations``: check, summarise and merge annotation files (sigma_min / sigma_max)."""

from __future__ import annotations

import argparse
import json
from typing import Any

DESCRIPTION = """\
Work with annotation files (annotations.jsonl: one header line, then one record per image with
sigma_min, sigma_max, method, classifier, threshold; see docs/ANNOTATIONS.md).

  validate FILE [--data DIR]   check the file (and, with --data, that it covers exactly that
                               dataset's ids and was made for its images.npy)
  summary  FILE [--data DIR]   counts of clean / corrupted / OOD-like images, sigma statistics,
                               images usable per sigma; per provenance when --data is given
  merge A B --out C            combine two tables, one rule per sigma column
  floor FILE --sigma-min S --out C
                               raise every positive sigma_min to at least S (clean images keep 0)"""

MERGE_HELP = ("agree (default: an error where the tables differ), a, b (take that table's column), "
              "max or min (elementwise)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``annotations`` subcommand and its ``validate`` / ``summary`` / ``merge`` actions."""
    parser = subparsers.add_parser("annotations", help="validate, summarise or merge annotation files",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    validate = actions.add_parser("validate", help="check an annotation file", description="Check an annotation "
                                  "file; exit 0 and print one line when it is valid, exit 2 with the problem if not.")
    validate.add_argument("file", help="annotation file (annotations.jsonl)")
    validate.add_argument("--data", metavar="DIR", help="dataset folder the file must match (ids and sha256)")
    validate.set_defaults(func=run_validate)

    summary = actions.add_parser("summary", help="print counts and sigma statistics",
                                 description="Validate an annotation file and print its summary: counts per kind "
                                 "(clean: sigma_min = 0; corrupted: 0 < sigma_min < inf; OOD-like: sigma_min = inf, "
                                 "sigma_max > 0), sigma_min / sigma_max statistics and the number of images usable "
                                 "at a few sigmas (sigma > b sigma_min or sigma <= sigma_max).")
    summary.add_argument("file", help="annotation file (annotations.jsonl)")
    summary.add_argument("--data", metavar="DIR", help="dataset folder (validates ids/sha256 and adds a breakdown "
                         "by provenance)")
    summary.add_argument("--sigmas", default="0.002,0.01,0.05,0.1,0.2,0.5,1,2,5,10,80",
                         help="comma-separated sigmas for the usable-images table (default: %(default)s)")
    summary.add_argument("--buffer-s", type=float, default=4.0, help="buffer s, b = sqrt(s/(s-1)) (default 4)")
    summary.add_argument("--json", action="store_true", help="print the summary as JSON")
    summary.set_defaults(func=run_summary)

    merge = actions.add_parser("merge", help="combine two annotation files",
                               description="Combine two annotation tables of the same images, e.g. sigma_min from "
                               "a noise classifier (A) and sigma_max from crop classifiers (B): "
                               "--sigma-min max --sigma-max b.")
    merge.add_argument("a", help="first annotation file")
    merge.add_argument("b", help="second annotation file")
    merge.add_argument("--out", required=True, help="merged annotation file to write")
    merge.add_argument("--sigma-min", default="agree", help=f"rule for sigma_min: {MERGE_HELP}")
    merge.add_argument("--sigma-max", default="agree", help=f"rule for sigma_max: {MERGE_HELP}")
    merge.add_argument("--data", metavar="DIR", help="dataset folder both files must match")
    merge.set_defaults(func=run_merge)

    floor = actions.add_parser("floor", help="raise every positive sigma_min to a floor",
                               description="Write a copy of FILE where every sigma_min above 0 is at least "
                               "--sigma-min (sigma_min' = max(sigma_min, S)); clean images (0), inf and sigma_max "
                               "are unchanged.")
    floor.add_argument("file", help="annotation file (annotations.jsonl)")
    floor.add_argument("--sigma-min", type=float, required=True, metavar="S", help="the floor (0 < S < inf)")
    floor.add_argument("--out", required=True, help="annotation file to write")
    floor.add_argument("--data", metavar="DIR", help="dataset folder the file must match")
    floor.set_defaults(func=run_floor)


def _read(path: str, data: str | None) -> tuple[Any, list[str] | None]:
    """Read ``path`` (validated against the dataset folder ``data`` when given) and its provenance."""
    from ambient_omni.data.annotations import read_annotations

    if data is None:
        return read_annotations(path), None
    from ambient_omni.data.dataset_folder import load_dataset

    dataset = load_dataset(data)
    return read_annotations(path, ids=dataset.ids.numpy(), dataset_sha256=dataset.sha256), list(dataset.provenance)


def run_validate(args: argparse.Namespace) -> int:
    """Print ``OK`` with the record count, or let the validation error reach the CLI."""
    table, _ = _read(args.file, args.data)
    against = f" against {args.data}" if args.data else ""
    print(f"{args.file}: OK, {len(table)} records{against}")
    return 0


def _sigmas(text: str) -> list[float]:
    from ambient_omni.cli._options import comma_floats
    from ambient_omni.errors import AmbientError

    values = comma_floats(text, "--sigmas")
    if not values or min(values) <= 0:
        raise AmbientError(f"--sigmas {text!r}: need at least one sigma, all > 0")
    return values


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable text of :func:`summarize` output plus the usable-per-sigma table (when it has ``usable``)."""
    lines = [f"{summary['n']} images: {summary['clean']} clean, {summary['corrupted']} corrupted "
             f"({summary['donut']} also usable at low noise), {summary['ood_like']} OOD-like, "
             f"{summary['unusable']} never usable"]
    for key in ("sigma_min", "sigma_max"):
        stats = summary[key]
        if stats:
            lines.append(f"{key} (> 0, finite): mean {stats['mean']:.4g}, median {stats['median']:.4g}, "
                         f"5-95% [{stats['q05']:.4g}, {stats['q95']:.4g}], range [{stats['min']:.4g}, {stats['max']:.4g}]")
    lines.append("methods: " + ", ".join(f"{m} ({c})" for m, c in summary["methods"].items()))
    for prov, row in summary.get("by_provenance", {}).items():
        mean = "-" if row["mean_sigma_min"] is None else f"{row['mean_sigma_min']:.4g}"
        lines.append(f"  {prov}: {row['n']} images, {row['clean']} clean, mean sigma_min {mean}, "
                     f"{row['ood_like']} OOD-like")
    if "usable" in summary:
        lines.append("usable images per sigma: " + ", ".join(f"{s:g}: {c}" for s, c in summary["usable"].items()))
    return "\n".join(lines)


def run_summary(args: argparse.Namespace) -> int:
    """Validate, summarise and print (text or JSON)."""
    from ambient_omni.data.admissibility import admissible_counts
    from ambient_omni.data.annotation_ops import summarize

    sigmas = _sigmas(args.sigmas)
    table, provenance = _read(args.file, args.data)
    summary = summarize(table, provenance)
    summary["usable"] = dict(zip(sigmas, admissible_counts(table, sigmas, args.buffer_s).tolist()))
    if args.json:
        summary["usable"] = {f"{s:g}": c for s, c in summary["usable"].items()}
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0


def run_merge(args: argparse.Namespace) -> int:
    """Merge two files with the chosen rules and write the result atomically."""
    from ambient_omni.data.annotation_ops import merge_annotations
    from ambient_omni.data.annotations import write_annotations

    a, _ = _read(args.a, args.data)
    b, _ = _read(args.b, args.data)
    merged = merge_annotations(a, b, sigma_min=args.sigma_min, sigma_max=args.sigma_max)
    merged.created_by["files"] = [args.a, args.b]
    write_annotations(args.out, merged)
    print(f"wrote {args.out}: {len(merged)} records (sigma_min: {args.sigma_min}, sigma_max: {args.sigma_max})")
    return 0


def run_floor(args: argparse.Namespace) -> int:
    """Floor the file's sigma_min at ``--sigma-min`` and write the result atomically."""
    from ambient_omni.data.annotation_ops import floor_sigma_min
    from ambient_omni.data.annotations import write_annotations

    table, _ = _read(args.file, args.data)
    floored = floor_sigma_min(table, args.sigma_min)
    raised = int((floored.sigma_min != table.sigma_min).sum())
    floored.created_by["files"] = [args.file]
    write_annotations(args.out, floored)
    print(f"wrote {args.out}: {len(floored)} records, {raised} sigma_min raised to {args.sigma_min:g}")
    return 0
