"""One self-contained HTML page (images inlined) and a Markdown twin for a run or benchmark folder.

What is found under the folder is shown, in this order:

1. the verdict: which method won on the primary metric (FD on the in-domain features), with the
   numbers (:mod:`ambient_omni.report.verdict`);
2. ``results.json`` of a benchmark (mean ± sd over seeds per setting and method);
3. ``metrics.json`` files (one row each: the headline numbers);
4. sample grids side by side, captioned by method (``grid.png``; for training runs the latest
   preview in ``samples/``; names from :mod:`ambient_omni.report.labels`);
5. training-loss curves: the denoisers on one axes (with a caption when an ambient run's loss runs
   high by construction), the noise classifiers on their own;
6. for every annotation file (``*.jsonl`` whose header says ``ambient-omni-annotations``) that gives
   some image a noise range (``0 < sigma_min < inf`` or ``sigma_max > 0``): the sigma_min histogram
   and the data-availability-versus-sigma plot; files with nothing to plot are named in one line;
7. classifier figures written by the annotation commands (PNG files with ``curve``, ``hist``,
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
from ambient_omni.report.labels import annotation_methods, cell_labels, label_for, run_info
from ambient_omni.report.tables import summary_rows
from ambient_omni.report.verdict import cells_verdict, metrics_verdict

_FIGURE_WORDS = ("curve", "hist", "locality", "crops", "theory")
_MAX_DEPTH = 4


@dataclass
class Block:
    """One piece of a page: a heading, a paragraph, a table or a figure."""

    kind: str  # "h2" | "p" | "table" | "figure" | "pre" | "row" (figures side by side: ``items``)
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)
    png: bytes = b""
    filename: str = ""
    items: list[Block] = field(default_factory=list)


def _figures(blocks: list[Block]) -> list[Block]:
    """Every figure block, also those inside rows."""
    return [f for b in blocks for f in ([b] if b.kind == "figure" else b.items)]


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


def _run_annotation_files(files: list[Path]) -> list[Path]:
    """The annotation files that run folders among ``files`` trained on (their ``config.json`` records them
    under ``inputs``) and that lie outside the folder walked, so a run's report shows its annotations."""
    seen, extra = {f.resolve() for f in files}, []
    for config in (f for f in files if f.name == "config.json"):
        try:
            record = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        path = record.get("inputs", {}).get("annotations") if isinstance(record, dict) else None
        if isinstance(path, str) and Path(path).is_file() and Path(path).resolve() not in seen:
            seen.add(Path(path).resolve())
            extra.append(Path(path))
    return extra


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


def _metrics_files(files: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    return [(f, json.loads(f.read_text(encoding="utf-8"))) for f in files if f.name == "metrics.json"]


def _metrics_blocks(root: Path, found: list[tuple[Path, dict[str, Any]]], labels: dict[Path, str]) -> list[Block]:
    """One compact table: a row per metrics.json (sample folder), the headline numbers as columns."""
    if not found:
        return []
    features = sorted({name for _, m in found for name in m.get("features", {})})
    cols = [(f"{title} [{f}]", tuple(p.format(f=f) for p in path)) for f in features for title, path in _METRIC_COLUMNS]
    cols += list(_PIXEL_COLUMNS)
    rows = [["samples"] + [title for title, _ in cols]]
    for path, metrics in sorted(found, key=lambda item: _cell_order(root)(item[0])):
        rows.append([_sample_label(path.parent, root, labels)]
                    + [_fmt(v) if (v := _lookup(metrics, p)) is not None else "-" for _, p in cols])
    return [Block("h2", "Metrics (docs/PROTOCOL.md; lower FD/KID/patch FD and memorized share are better)"),
            Block("table", rows=rows)]


def _sample_label(folder: Path, root: Path, labels: dict[Path, str]) -> str:
    """A cell's method label, else the folder relative to ``root``."""
    return label_for(folder, root, labels)


def _verdict_blocks(root: Path, found: list[tuple[Path, dict[str, Any]]], labels: dict[Path, str]) -> list[Block]:
    """The verdict paragraph (:mod:`ambient_omni.report.verdict`): from results.json cells, else metrics.json rows."""
    cells = json.loads((root / "results.json").read_text(encoding="utf-8")).get("cells", []) \
        if (root / "results.json").is_file() else []
    lines = cells_verdict(cells) if cells else metrics_verdict(
        [(_sample_label(path.parent, root, labels), metrics) for path, metrics in found])
    return [Block("h2", "Verdict")] + [Block("p", line) for line in lines] if lines else []


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


def _grid_blocks(root: Path, files: list[Path], labels: dict[Path, str]) -> list[Block]:
    """Sample grids captioned by method, side by side (one row), then the runs' latest previews."""
    grids = [f for f in files if f.name == "grid.png"]
    previews: dict[Path, Path] = {}
    for f in files:
        if f.suffix == ".png" and f.parent.name == "samples" and (f.parent.parent / "log.jsonl").exists():
            previews[f.parent] = max(previews.get(f.parent, f), f)
    finals = [_figure(root, path, _grid_caption(path, root, labels)) for path in sorted(grids, key=_cell_order(root))]
    latest = [_figure(root, path, f"{_run_name(path.parent.parent, root, labels)}: latest training preview")
              for path in sorted(previews.values())]
    return [Block("row", items=items) for items in (finals, latest) if items]


def _cell_order(root: Path) -> Any:
    """Sort key for paths: cells in ``results.json`` order (the recipe's: baseline first), then by path."""
    results = root / "results.json"
    names = [c.get("name") for c in json.loads(results.read_text(encoding="utf-8")).get("cells", [])] \
        if results.is_file() else []
    order = {root / "cells" / str(name): k for k, name in enumerate(names)}
    return lambda path: (min((order[p] for p in path.parents if p in order), default=len(order)), str(path))


def _run_name(folder: Path, root: Path, labels: dict[Path, str]) -> str:
    """A cell's method label, the root folder's own name, or the folder relative to ``root``."""
    label = label_for(folder, root, labels)
    return root.resolve().name if label == "." else label


def _grid_caption(path: Path, root: Path, labels: dict[Path, str]) -> str:
    """``clean-only`` for a cell's grid; ``RUN: final`` for ``RUN/samples/final/grid.png``; else the folder."""
    if path.parent in labels or path.parent.parent in labels:
        return label_for(path.parent, root, labels)
    for folder in path.parents:
        if (folder / "log.jsonl").is_file():
            return f"{_run_name(folder, root, labels)}: {path.parent.name}"
        if folder == root:
            break
    return _run_name(path.parent, root, labels)


def _figure(root: Path, path: Path, caption: str) -> Block:
    rel = path.relative_to(root)
    return Block("figure", text=caption, png=path.read_bytes(), filename=str(rel).replace(os.sep, "__"))


_AMBIENT_CAPTION = (
    "The ambient runs' loss ({names}) runs high by construction: an image with sigma_min > 0 is regressed onto "
    "a noisy target (its noised version at sigma_min, rescaled), whose own variance is part of the loss; at the "
    "demo's sigma_min of 1.5-2.6 the target's variance is 11-115 times the clean posterior's (docs/RESULTS.md, "
    "\"Why the ambient loss runs high\"). Compare methods by the sample metrics above, not by this curve.")


def _loss_points(log: Path) -> list[tuple[float, float]]:
    """``(images seen, mean loss)`` of every training record of ``log``; a line that is not JSON, or a record
    whose fields are not numbers, is an error naming the file and the line (never a traceback)."""
    points = []
    for number, line in enumerate(log.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise AmbientError(f"{log}:{number}: not a JSON record") from None
        if not isinstance(record, dict) or "loss_mean" not in record or "images_seen" not in record:
            continue
        values = (record["images_seen"], record["loss_mean"])
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise AmbientError(f"{log}:{number}: images_seen and loss_mean must be numbers, got {values!r}")
        points.append((float(values[0]), float(values[1])))
    return points


def _loss_curves(root: Path, files: list[Path], labels: dict[Path, str]) -> dict[str, dict[str, Any]]:
    """``{kind: {label: (images seen, loss)}}`` of every run folder, plus ``"ambient"``: ambient run labels."""
    found: dict[str, dict[str, Any]] = {"denoiser": {}, "classifier": {}, "ambient": {}}
    for log in (f for f in files if f.name == "log.jsonl"):
        points = _loss_points(log)
        if not points:
            continue
        arr, info, label = np.array(points, dtype=float), run_info(log.parent), label_for(log.parent, root, labels)
        kind = "classifier" if info.kind == "classifier" else "denoiser"
        found[kind][label] = (arr[:, 0], arr[:, 1])
        if info.ambient and kind == "denoiser":
            found["ambient"][label] = True
    return found


def _loss_block(root: Path, files: list[Path], labels: dict[Path, str]) -> list[Block]:
    """Denoiser losses on one axes (caption on the ambient runs), classifier losses on their own."""
    curves = _loss_curves(root, files, labels)
    blocks: list[Block] = []
    if curves["denoiser"]:
        blocks += [Block("h2", "Training loss: denoisers"),
                   Block("figure", text="per-sample denoising loss of each denoiser",
                         png=plots.loss_curves(curves["denoiser"]), filename="loss_curves.png")]
        if curves["ambient"]:
            blocks.append(Block("p", _AMBIENT_CAPTION.format(names=", ".join(curves["ambient"]))))
    if curves["classifier"]:
        blocks += [Block("h2", "Training loss: noise classifiers"),
                   Block("figure", text="per-sample classification loss of each noise classifier (another loss, "
                         "another scale: not comparable with the denoisers')",
                         png=plots.loss_curves(curves["classifier"], ylabel="classifier loss (per-sample mean)"),
                         filename="loss_curves_classifiers.png")]
    return blocks


def _has_noise_ranges(table: Any) -> bool:
    """Whether some image has ``0 < sigma_min < inf`` or ``sigma_max > 0`` (else there is nothing to plot)."""
    lo, hi = np.asarray(table.sigma_min), np.asarray(table.sigma_max)
    return bool(np.any((lo > 0) & np.isfinite(lo)) or np.any(hi > 0))


def _annotation_blocks(root: Path, files: list[Path], buffer_s: float) -> list[Block]:
    blocks, empty = [], []
    methods = annotation_methods(root)
    for path in (f for f in files if _is_annotation_file(f)):
        table = read_annotations(path)
        rel = str(path.relative_to(root)) if path.is_relative_to(root) else path.name  # a run's input file
        used_by = f"{', '.join(methods[path.name])}: " if path.name in methods else ""
        if not _has_noise_ranges(table):
            empty.append(f"{used_by}{rel}")
            continue
        stem = rel.replace(os.sep, "__").removesuffix(".jsonl")
        blocks += [
            Block("h2", f"Annotations: {used_by}{rel}"),
            Block("figure", text="sigma_min histogram", png=plots.sigma_min_histogram(table), filename=f"{stem}_sigma_min.png"),
            Block("figure", text="admissible images versus sigma (paper Figure 14)",
                  png=plots.availability_plot(table, buffer_s), filename=f"{stem}_availability.png"),
        ]
    if empty:
        blocks.append(Block("p", "Annotation files with nothing to plot (every image clean or never used): "
                            + "; ".join(empty) + "."))
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
    files, labels = _walk(root), cell_labels(root)
    files += _run_annotation_files(files)
    metrics = _metrics_files(files)
    blocks = _verdict_blocks(root, metrics, labels)
    if (root / "results.json").exists():
        blocks += _results_blocks(root)
    blocks += _metrics_blocks(root, metrics, labels)
    grids = _grid_blocks(root, files, labels)
    if grids:
        blocks += [Block("h2", "Samples")] + grids
    blocks += _loss_block(root, files, labels) + _annotation_blocks(root, files, buffer_s) + _figure_blocks(root, files)
    if not blocks:
        raise AmbientError(f"report: nothing to show under {root} (no results, metrics, samples, logs or annotations)")
    return blocks


def _html_figure(b: Block) -> str:
    data = base64.b64encode(b.png).decode("ascii")
    return (f"<figure><img alt='{html.escape(b.text)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(b.text)}</figcaption></figure>")


def render_html(title: str, blocks: list[Block]) -> str:
    """A standalone HTML page: figures are inlined as base64 PNG data URIs."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px}"
             "img{max-width:100%;image-rendering:pixelated}figure{margin:1em 0}pre{background:#f6f6f6;padding:1em;"
             "overflow-x:auto;font-size:12px}.row{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}"
             ".row figure{flex:1 1 0;min-width:180px;text-align:center}figcaption{font-size:14px}"
             "</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
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
            parts.append(_html_figure(b))
        elif b.kind == "row":
            parts.append("<div class='row'>" + "".join(_html_figure(item) for item in b.items) + "</div>")
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
        elif b.kind == "row":
            lines += ["| " + " | ".join(item.text for item in b.items) + " |", "|" + "---|" * len(b.items),
                      "| " + " | ".join(f"![{item.text}]({files_dir}/{item.filename})" for item in b.items) + " |", ""]
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
    for b in _figures(blocks):
        atomic_write_bytes(out / "report_files" / b.filename, b.png)
    html_path, md_path = out / "report.html", out / "report.md"
    atomic_write_text(html_path, render_html(title, blocks))
    atomic_write_text(md_path, render_markdown(title, blocks, "report_files"))
    return html_path, md_path
