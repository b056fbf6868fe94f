"""``ambient demo``: the whole Ambient-o pipeline on Fashion-MNIST in about 15 minutes on 2 CPU cores.

It runs the ``demo`` recipe (dataset -> noise classifier -> sigma_min annotations -> three denoisers:
clean only, all data as if clean, Ambient-o with classifier annotations -> samples -> metrics) through
the benchmark runner, so an interrupted demo resumes where it stopped, then writes the HTML report and
prints the comparison table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ambient_omni.experiments.bench import run_bench
from ambient_omni.experiments.recipes import load_recipe
from ambient_omni.experiments.tables import aggregate, columns, mean_sd


def summary_lines(results: dict[str, Any]) -> list[str]:
    """A plain-text comparison table (one row per method) of a finished demo."""
    cells = results["cells"]
    cols = [c for c in columns(cells) if c[0].startswith(("FD", "precision", "recall", "memorized"))]
    header = f"{'method':<12}" + "".join(f"{title:>28}" for title, _, _ in cols)
    lines = [header, "-" * len(header)]
    for row in aggregate(cells):
        lines.append(f"{row['method']:<12}" + "".join(f"{mean_sd(row['values'][t]):>28}" for t, _, _ in cols))
    return lines


def run_demo(out: str | Path, recipe: str = "demo", log: Any = print) -> dict[str, Any]:
    """Run the demo recipe into ``out``, write ``out/report.html`` and return the results."""
    from ambient_omni.report import write_report

    out = Path(out)
    results = run_bench(load_recipe(recipe), out, command=f"ambient demo --out {out}", log=log)
    html, _ = write_report(out, title="Ambient-o demo: Fashion-MNIST, 100 clean + 2,900 blurred images")
    log("")
    log("\n".join(summary_lines(results)))
    log("")
    log("FD: Frechet distance to the Fashion-MNIST test set on in-domain classifier features (lower is better);")
    log("memorized share: samples much closer to one clean training image than to any other (lower is better).")
    log(f"Report: {html}")
    return results
