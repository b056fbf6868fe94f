"""One self-contained HTML page (images inlined) and a Markdown twin for a run or benchmark folder.

What is found under the folder is shown, in this order:

1. ``results.json`` of a benchmark (mean ± sd over seeds per setting and method);
2. ``metrics.json`` files (one row each: the headline numbers);
3. sample grids (``grid.png``; for training runs the latest preview in ``samples/``);
4. training-loss curves of every run folder (a folder with ``log.jsonl``);
5. for every annotation file (``*.jsonl`` whose header says ``ambient-omni-annotations``): the
   sigma_min histogram and the data-availability-versus-sigma plot;
6. classifier figures written by the annotation commands (PNG files with ``curve``, ``hist``,
   ``locality`` or ``crops`` in their names).
"""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ambient_omni.data.annotations import read_annotations
from ambient_omni.errors import AmbientError
from ambient_omni.files import atomic_write_bytes, atomic_write_text
from ambient_omni.report import plots
from ambient_omni.report.tables import summary_rows

_FIGURE_WORDS = ("curve", "hist", "locality", "crops", "theory")
_MAX_DEPTH = 4


@dataclass
class Block:
    """One piece of a page: a heading, a paragraph, a table or a figure."""

    kind: str  # "h2" | "p" | "table" | "figure" | "pre"
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)
    png: bytes = b""
    filename: str = ""


def _walk(root: Path) -> list[Path]:
    """Files under ``root`` up to a fixed depth, sorted, skipping hidden folders and checkpoints."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in ("checkpoints", "report_files"))
        if len(rel.parts) >= _MAX_DEPTH:
            dirnames[:] = []
        found += [Path(dirpath) / f for f in sorted(filenames)]
    return found


def _is_annotation_file(path: Path) -> bool:
    if path.suffix != ".jsonl" or path.name == "log.jsonl":
        return False
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
    return '"ambient-omni-annotations"' in first


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# (column title, path in a metrics.json; "{f}" = each feature set)
_METRIC_COLUMNS = (("FD", ("features", "{f}", "fd")), ("KID", ("features", "{f}", "kid")),
                   ("precision", ("features", "{f}", "precision")), ("recall", ("features", "{f}", "recall")))
_PIXEL_COLUMNS = (("memorized share", ("memorization", "share")), ("patch FD", ("pixels", "patch_fd")),
                  ("samples", ("n_samples",)))


def _lookup(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _metrics_blocks(root: Path, files: list[Path]) -> list[Block]:
    """One compact table: a row per metrics.json (sample folder), the headline numbers as columns."""
    found = [(f, json.loads(f.read_text(encoding="utf-8"))) for f in files if f.name == "metrics.json"]
    if not found:
        return []
    features = sorted({name for _, m in found for name in m.get("features", {})})
    cols = [(f"{title} [{f}]", tuple(p.format(f=f) for p in path)) for f in features for title, path in _METRIC_COLUMNS]
    cols += list(_PIXEL_COLUMNS)
    rows = [["samples folder"] + [title for title, _ in cols]]
    for path, metrics in found:
        rows.append([str(path.parent.relative_to(root))] + [_fmt(_lookup(metrics, p)) if _lookup(metrics, p) is not None
                                                            else "-" for _, p in cols])
    return [Block("h2", "Metrics (docs/PROTOCOL.md; lower FD/KID/patch FD and memorized share are better)"),
            Block("table", rows=rows)]


def _results_blocks(root: Path) -> list[Block]:
    """The benchmark table (mean ± sd over seeds) of ``results.json``, with its command."""
    results = json.loads((root / "results.json").read_text(encoding="utf-8"))
    if not results.get("cells"):
        return []
    blocks = [Block("h2", f"Benchmark results: {results.get('recipe', '')}"), Block("p", results.get("description", "")),
              Block("table", rows=summary_rows(results["cells"])),
              Block("p", "Entries: mean ± sample sd (number of training seeds).")]
    if results.get("command"):
        blocks.append(Block("p", f"Command: {results['command']}"))
    return blocks


def _grid_blocks(root: Path, files: list[Path]) -> list[Block]:
    grids = [f for f in files if f.name == "grid.png"]
    previews: dict[Path, Path] = {}
    for f in files:
        if f.suffix == ".png" and f.parent.name == "samples" and (f.parent.parent / "log.jsonl").exists():
            previews[f.parent] = max(previews.get(f.parent, f), f)
    blocks = []
    for path in grids + sorted(previews.values()):
        rel = path.relative_to(root)
        blocks.append(Block("figure", text=f"Samples: {rel}", png=path.read_bytes(), filename=str(rel).replace(os.sep, "__")))
    return blocks


def _loss_block(root: Path, files: list[Path]) -> list[Block]:
    curves = {}
    for log in (f for f in files if f.name == "log.jsonl"):
        records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
        points = [(r["images_seen"], r["loss_mean"]) for r in records if "loss_mean" in r and "images_seen" in r]
        if points:
            arr = np.array(points, dtype=float)
            curves[str(log.parent.relative_to(root)) or "."] = (arr[:, 0], arr[:, 1])
    if not curves:
        return []
    return [Block("h2", "Training loss"), Block("figure", text="per-sample training loss", png=plots.loss_curves(curves),
                                                filename="loss_curves.png")]


def _annotation_blocks(root: Path, files: list[Path], buffer_s: float) -> list[Block]:
    blocks = []
    for path in (f for f in files if _is_annotation_file(f)):
        table = read_annotations(path)
        rel = str(path.relative_to(root))
        stem = rel.replace(os.sep, "__").removesuffix(".jsonl")
        blocks += [
            Block("h2", f"Annotations: {rel}"),
            Block("figure", text="sigma_min histogram", png=plots.sigma_min_histogram(table), filename=f"{stem}_sigma_min.png"),
            Block("figure", text="admissible images versus sigma (paper Figure 14)",
                  png=plots.availability_plot(table, buffer_s), filename=f"{stem}_availability.png"),
        ]
    return blocks


def _figure_blocks(root: Path, files: list[Path]) -> list[Block]:
    figs = [f for f in files if f.suffix == ".png" and any(w in f.name for w in _FIGURE_WORDS)]
    if not figs:
        return []
    return [Block("h2", "Classifier and analysis figures")] + [
        Block("figure", text=str(f.relative_to(root)), png=f.read_bytes(), filename=str(f.relative_to(root)).replace(os.sep, "__"))
        for f in figs
    ]


def collect(root: str | os.PathLike, buffer_s: float = 4.0) -> list[Block]:
    """Everything worth showing under ``root``, as page blocks (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise AmbientError(f"report: {root} is not a folder")
    files = _walk(root)
    blocks: list[Block] = []
    if (root / "results.json").exists():
        blocks += _results_blocks(root)
    blocks += _metrics_blocks(root, files)
    grids = _grid_blocks(root, files)
    if grids:
        blocks += [Block("h2", "Samples")] + grids
    blocks += _loss_block(root, files) + _annotation_blocks(root, files, buffer_s) + _figure_blocks(root, files)
    if not blocks:
        raise AmbientError(f"report: nothing to show under {root} (no results, metrics, samples, logs or annotations)")
    return blocks


def render_html(title: str, blocks: list[Block]) -> str:
    """A standalone HTML page: figures are inlined as base64 PNG data URIs."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px}"
             "img{max-width:100%;image-rendering:pixelated}figure{margin:1em 0}pre{background:#f6f6f6;padding:1em;"
             "overflow-x:auto;font-size:12px}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if b.kind == "h2":
            parts.append(f"<h2>{html.escape(b.text)}</h2>")
        elif b.kind == "p":
            parts.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "pre":
            parts.append(f"<pre>{html.escape(b.text)}</pre>")
        elif b.kind == "table":
            head, *body = b.rows
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body]
            parts.append("</table>")
        elif b.kind == "figure":
            data = base64.b64encode(b.png).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(b.text)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(title: str, blocks: list[Block], files_dir: str) -> str:
    """The Markdown twin; figures are referenced as ``files_dir/<filename>``."""
    lines = [f"# {title}", ""]
    for b in blocks:
        if b.kind == "h2":
            lines += [f"## {b.text}", ""]
        elif b.kind in ("p", "pre"):
            lines += [b.text, ""]
        elif b.kind == "table":
            head, *body = b.rows
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(row) + " |" for row in body] + [""]
        elif b.kind == "figure":
            lines += [f"![{b.text}]({files_dir}/{b.filename})", ""]
    return "\n".join(lines)


def write_report(root: str | os.PathLike, out: str | os.PathLike | None = None, title: str | None = None,
                 buffer_s: float = 4.0) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` (+ ``report_files/``) for ``root``.

    Returns the two paths. ``out`` defaults to ``root``.
    """
    root = Path(root)
    out = Path(out) if out is not None else root
    blocks = collect(root, buffer_s)
    title = title or f"Ambient-o report: {root.resolve().name}"
    for b in blocks:
        if b.kind == "figure":
            atomic_write_bytes(out / "report_files" / b.filename, b.png)
    html_path, md_path = out / "report.html", out / "report.md"
    atomic_write_text(html_path, render_html(title, blocks))
    atomic_write_text(md_path, render_markdown(title, blocks, "report_files"))
    return html_path, md_path
