"""Result tables: aggregate per-cell metrics over training seeds and render Markdown.

Each row is one (setting, method); each number is ``mean ± sd (n)`` over the seeds that have
finished, where sd is the sample standard deviation (``ddof = 1``; ``-`` with one seed). The
per-seed values are listed too, so nothing is hidden behind a mean.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

# (column title, path in a cell's metrics dict; "{f}" = feature extractor name)
FEATURE_COLUMNS = (("FD", ("features", "{f}", "fd")), ("precision", ("features", "{f}", "precision")),
                   ("recall", ("features", "{f}", "recall")), ("Vendi", ("features", "{f}", "vendi")),
                   ("class coverage (min)", ("features", "{f}", "class_coverage_min")))
PIXEL_COLUMNS = (("memorized share", ("memorization", "share")), ("patch FD (pixels)", ("pixels", "patch_fd")))
ANNOTATION_COLUMNS = (("true std", ("annotation", "true_std")), ("mean sigma_min", ("annotation", "mean_sigma_min")),
                      ("mean / std", ("annotation", "mean_over_std")),
                      ("median sigma_min", ("annotation", "median_sigma_min")),
                      ("dense mean sigma_min", ("annotation", "dense_mean_sigma_min")),
                      ("fast vs dense p95", ("annotation", "fast_vs_dense_p95")),
                      ("calls per image", ("annotation", "calls_per_image")),
                      ("never crossing", ("annotation", "never_crossed_share")),
                      ("at grid minimum", ("annotation", "at_grid_min_share")),
                      ("classifier accuracy", ("annotation", "classifier_accuracy")),
                      ("held-out accuracy at sigma 1", ("annotation", "held_out_accuracy_at_1")),
                      ("mean sigma_max", ("annotation", "mean_sigma_max")),
                      ("OOD unused share", ("annotation", "unused_share")),
                      ("trusted clean that are clean", ("annotation", "trusted_clean_precision")))


def _get(metrics: dict[str, Any], path: tuple[str, ...], feature: str) -> float | None:
    node: Any = metrics
    for key in path:
        key = key.format(f=feature)
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, (int, float)) else None


def mean_sd(values: list[float]) -> str:
    """``mean ± sd (n)``; sd is the sample standard deviation (ddof 1). One value has no sd: ``value (1)``."""
    if not values:
        return "-"
    arr = np.asarray(values, dtype=float)
    if len(arr) == 1:
        return f"{arr[0]:.3g} (1)"
    return f"{arr.mean():.3g} ± {arr.std(ddof=1):.3g} ({len(arr)})"


def columns(cells: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...], str]]:
    """Columns present in the results: per feature extractor, then pixel-space ones, then annotation
    figures (noise-check, classifier and ood-crops cells); a column no cell has a value for is left out."""
    features = sorted({f for c in cells for f in c.get("metrics", {}).get("features", {})})
    cols = [(f"{title} [{f}]", path, f) for f in features for title, path in FEATURE_COLUMNS]
    cols += [(title, path, "") for title, path in PIXEL_COLUMNS + ANNOTATION_COLUMNS]
    return [col for col in cols if any(_get(c.get("metrics", {}), col[1], col[2]) is not None for c in cells)]


def aggregate(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (setting, method), in first-seen order, with per-column value lists."""
    cols = columns(cells)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        groups[(cell["setting"], cell["method"])].append(cell)
    rows = []
    for (setting, method), members in groups.items():
        values = {title: [v for c in members if (v := _get(c["metrics"], path, f)) is not None] for title, path, f in cols}
        rows.append({"setting": setting, "method": method, "seeds": sorted(c["seed"] for c in members),
                     "values": values, "wall_s": sum(c.get("wall_s", 0.0) for c in members)})
    return rows


def summary_rows(cells: list[dict[str, Any]]) -> list[list[str]]:
    """Header + one row per (setting, method): ``mean ± sd (n)`` per column (for Markdown and HTML)."""
    cols = columns(cells)
    rows = [["setting", "method", "seeds"] + [t for t, _, _ in cols]]
    for row in aggregate(cells):
        rows.append([row["setting"], row["method"], ",".join(map(str, row["seeds"]))]
                    + [mean_sd(row["values"][t]) for t, _, _ in cols])
    return rows


def paired_differences(cells: list[dict[str, Any]]) -> tuple[str, str, list[str], list[list[str]]] | None:
    """Each method against the first method seen (the recipe's baseline), per setting, on the first FD
    column: ``FD(method, seed) - FD(baseline, seed)`` over the seeds both finished, as ``mean ± sd (n)``
    (negative: better than the baseline). Returns ``(FD column title, baseline, other methods, rows)``;
    None without an FD column or a second method."""
    fd = next((c for c in columns(cells) if c[0].startswith("FD [")), None)
    methods = list(dict.fromkeys(c["method"] for c in cells))
    if fd is None or len(methods) < 2:
        return None
    title, path, feature = fd
    value = {(c["setting"], c["method"], c["seed"]): _get(c["metrics"], path, feature) for c in cells}
    rows = []
    for setting in dict.fromkeys(c["setting"] for c in cells):
        row = [setting]
        for method in methods[1:]:
            diffs = [v - b for (st, m, seed), v in value.items() if st == setting and m == method and v is not None
                     and (b := value.get((setting, methods[0], seed))) is not None]
            row.append(mean_sd(diffs))
        rows.append(row)
    return title, methods[0], methods[1:], rows


def _adoption(cell: dict[str, Any]) -> dict[str, Any]:
    """The cell's record of the run it continued (``paths.adopted``), ``{}`` if it trained from scratch."""
    return (cell.get("paths") or {}).get("adopted") or {}


def code_versions_note(cells: list[dict[str, Any]]) -> list[str]:
    """A warning paragraph when the cells were computed by different code commits (cells are cached by
    configuration, so a sweep resumed after a code change mixes versions; a cell that continued another
    cell's run counts that run's commit too); ``[]`` otherwise."""
    versions: dict[str, list[str]] = defaultdict(list)
    for cell in cells:
        for code, name in ((cell.get("code") or {}, cell["name"]),
                           (_adoption(cell).get("code") or {}, f"{cell['name']} (its adopted steps)")):
            if code.get("commit"):
                versions[code["commit"][:10] + ("+changes" if code.get("dirty") else "")].append(name)
    if len(versions) < 2:
        return []
    parts = [f"{v} ({len(names)}: {', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
             for v, names in versions.items()]
    return [f"**Mixed code versions**: these cells come from {len(versions)} commits: " + "; ".join(parts)
            + ". Recompute the older ones (remove their cell folders) if the code change matters.", ""]


def markdown_table(results: dict[str, Any]) -> str:
    """The Markdown results table of a benchmark ``results.json`` (plus protocol and command)."""
    cells = results.get("cells", [])
    if not cells:
        return f"# {results.get('recipe', 'benchmark')}\n\nNo finished cells yet.\n"
    cols = columns(cells)
    head, *body = summary_rows(cells)
    lines = [f"# {results.get('recipe', 'benchmark')}: results", "", results.get("description", ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    paired = paired_differences(cells)
    if paired is not None:
        title, baseline, others, rows = paired
        lines += ["", f"{title} minus {baseline}, paired by training seed (negative: better than {baseline}):", "",
                  "| setting | " + " | ".join(others) + " |", "|---|" + "---|" * len(others)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "Per seed:", "", "| cell | " + " | ".join(t for t, _, _ in cols) + " | wall (min) |",
              "|---|" + "---|" * (len(cols) + 1)]
    for cell in cells:
        vals = [_get(cell["metrics"], path, f) for _, path, f in cols]
        lines.append(f"| {cell['name']} | " + " | ".join("-" if v is None else f"{v:.4g}" for v in vals)
                     + f" | {cell.get('wall_s', 0) / 60:.1f}{'*' if _adoption(cell) else ''} |")
    if any(_adoption(cell) for cell in cells):
        lines += ["", "\\* continued another run (`paths.adopted` in results.json: the run, its step and, for a cell's run, "
                  "the code that trained it); the wall time leaves out the adopted steps."]
    lines += ["", "Entries: mean ± sample sd (number of training seeds). A training seed seeds the cell's denoiser "
              "and, for the classifier method, its noise classifier and annotation unless the recipe fixes "
              "classifier.seed; the dataset (and the crop classifiers of ood-crops) is fixed by the data seed "
              "(crops.seed). Every training seed samples from the same noise seeds (eval.first_seed on), so seeds "
              "and methods are compared on common noise.", ""]
    lines += code_versions_note(cells)
    if results.get("protocol"):
        lines += ["Protocol: " + ", ".join(f"{k}={v}" for k, v in sorted(results["protocol"].items())), ""]
    if results.get("paper"):
        lines += ["Paper numbers for the matching setting: " + ", ".join(f"{k}: {v}" for k, v in results["paper"].items()), ""]
    if results.get("command"):
        lines += [f"Command: `{results['command']}`", ""]
    return "\n".join(lines)
