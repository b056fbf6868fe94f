"""``ambient demo``: the whole Ambient-o pipeline on Fashion-MNIST in about 10 minutes on 2 idle CPU cores.

It runs the ``demo`` recipe (dataset -> annotations: one fixed sigma_min, and the crossing rule's from a noise
classifier on 80% of the images -> four denoisers: clean only, all data as if clean, Ambient-o with each
annotation -> samples -> metrics) through
the benchmark runner, so an interrupted demo resumes where it stopped, then writes the HTML report and
prints the comparison table.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from ambient_omni.experiments.bench import run_bench
from ambient_omni.experiments.recipes import Recipe, load_recipe
from ambient_omni.report.tables import aggregate, columns, mean_sd


def summary_lines(results: dict[str, Any]) -> list[str]:
    """A plain-text comparison table (one row per method) of a finished demo."""
    cells = results["cells"]
    cols = [c for c in columns(cells) if c[0].startswith(("FD", "precision", "recall", "memorized"))]
    widths = [max(len(title), 16) + 2 for title, _, _ in cols]
    header = f"{'method':<12}" + "".join(f"{title:>{w}}" for (title, _, _), w in zip(cols, widths))
    lines = [header, "-" * len(header)]
    for row in aggregate(cells):
        lines.append(f"{row['method']:<12}" + "".join(f"{_value(row['values'][t]):>{w}}"
                                                       for (t, _, _), w in zip(cols, widths)))
    return lines


def _value(values: list[float]) -> str:
    """One seed: the number alone; several: ``mean ± sd (n)``."""
    return f"{values[0]:.3g}" if len(values) == 1 else mean_sd(values)


def verdict_lines(results: dict[str, Any], method: str = "ambient-o") -> list[str]:
    """Plain-words comparison of ``method`` with each baseline on the first FD column (from the numbers)."""
    cells = results["cells"]
    fd_cols = [c for c in columns(cells) if c[0].startswith("FD")]
    if not fd_cols:
        return []
    title = fd_cols[0][0]
    fd = {row["method"]: float(np.mean(row["values"][title])) for row in aggregate(cells) if row["values"][title]}
    if method not in fd:
        return []
    lines = []
    for baseline in (m for m in fd if m != method):
        a, b = fd[method], fd[baseline]
        lines.append(f"{method} vs {baseline}: {title} {a:.1f} vs {b:.1f}, "
                     f"{'better' if a < b else 'worse'} by {abs(a - b):.1f}")
    lines.append("(one training seed: a demonstration, not a benchmark; the per-seed rows of the tables in "
                 "docs/RESULTS.md show how far FD moves between training seeds of the same setting)")
    return lines


def conclusion_lines(recipe: Recipe, width: int = 100) -> list[str]:
    """The recipe's ``conclusion`` (what the longer benchmarks found), wrapped, under a heading; none if empty."""
    if not recipe.conclusion.strip():
        return []
    return ["What the longer benchmarks found (docs/RESULTS.md):",
            *textwrap.wrap(" ".join(recipe.conclusion.split()), width)]


def run_demo(out: str | Path, recipe: str = "demo", log: Any = print) -> dict[str, Any]:
    """Run the demo recipe into ``out``, write ``out/report.html`` and return the results."""
    from ambient_omni.report import write_report

    out = Path(out)
    parsed = load_recipe(recipe)
    results = run_bench(parsed, out, command=f"ambient demo --out {out}", log=log)
    html, _ = write_report(out, title="Ambient-o demo: Fashion-MNIST, 30 clean + 9,970 blurred images")
    log("")
    log("\n".join(summary_lines(results)))
    log("")
    log("\n".join(verdict_lines(results)))
    for line in conclusion_lines(parsed):
        log(line)
    log("FD: Frechet distance to the Fashion-MNIST test set on in-domain classifier features (lower is better);")
    log("memorized share: samples much closer to one clean training image than to any other (lower is better).")
    log(f"Report: {html}")
    return results
