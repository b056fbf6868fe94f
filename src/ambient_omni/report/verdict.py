"""The report's first paragraph: which method won on the primary metric, with the numbers.

The primary metric is the Frechet distance on the first available feature set of
:data:`PRIMARY_FEATURES` (docs/PROTOCOL.md: the in-domain ``fmnist-classifier`` first); lower is
better. Per setting the methods are ranked by their mean FD over training seeds ``m = mean_s FD_s``;
the winner is the lowest mean. The margin ``m_2 - m_1`` to the runner-up is called a tie when both
have at least two seeds and ``m_2 - m_1 < sd_1 + sd_2`` (sample standard deviations, ddof 1), and is
flagged as untested when either has a single seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

PRIMARY_FEATURES = ("fmnist-classifier", "effnet-lite0", "inception", "pixels")


def primary_feature(names: Iterable[str]) -> str | None:
    """The first of :data:`PRIMARY_FEATURES` among ``names`` (else the alphabetically first; ``None`` if empty)."""
    names = set(names)
    return next((f for f in PRIMARY_FEATURES if f in names), min(names) if names else None)


def fd_of(metrics: dict[str, Any], feature: str) -> float | None:
    """``metrics["features"][feature]["fd"]`` as a float, or ``None``."""
    value = (metrics.get("features") or {}).get(feature, {}).get("fd")
    return float(value) if isinstance(value, (int, float)) else None


def describe(values: list[float]) -> str:
    """``133`` for one value, ``133 ± 4.1 (2 seeds)`` for several (sample sd)."""
    arr = np.asarray(values, float)
    if len(arr) == 1:
        return f"{arr[0]:.4g}"
    return f"{arr.mean():.4g} ± {arr.std(ddof=1):.2g} ({len(arr)} seeds)"


def _spread_note(best: list[float], second: list[float]) -> str:
    if min(len(best), len(second)) < 2:
        return "; one training seed, so the seed-to-seed spread is unknown"
    margin = float(np.mean(second) - np.mean(best))
    if margin < float(np.std(best, ddof=1) + np.std(second, ddof=1)):
        return "; within the seed spread: a tie"
    return ""


def ranking_line(ranked: list[tuple[str, list[float]]], where: str = "") -> str:
    """One sentence for ``[(method, FDs over seeds)]`` sorted best first."""
    (best, fds), rest = ranked[0], ranked[1:]
    if not rest:
        return f"{best}{where}: FD {describe(fds)} (no other method to compare)."
    margin = float(np.mean(rest[0][1]) - np.mean(fds))
    others = ", ".join(f"{m} {describe(v)}" for m, v in rest)
    return (f"{best} won{where}: FD {describe(fds)} against {others} ({margin:.3g} lower than {rest[0][0]}"
            f"{_spread_note(fds, rest[0][1])}).")


def _ranked(groups: dict[str, list[float]]) -> list[tuple[str, list[float]]]:
    return sorted(((m, v) for m, v in groups.items() if v), key=lambda item: float(np.mean(item[1])))


def cells_verdict(cells: list[dict[str, Any]]) -> list[str]:
    """Verdict lines for benchmark cells (``results.json``): a header, then one ranking per setting."""
    feature = primary_feature(f for c in cells for f in (c.get("metrics") or {}).get("features", {}))
    if feature is None:
        return []
    settings = list(dict.fromkeys(c["setting"] for c in cells))
    lines = [f"Primary metric: FD [{feature}] of the samples against the reference (docs/PROTOCOL.md; lower is better)."]
    for setting in settings:
        groups: dict[str, list[float]] = {}
        for cell in (c for c in cells if c["setting"] == setting):
            value = fd_of(cell.get("metrics") or {}, feature)
            groups.setdefault(cell["method"], []).extend([] if value is None else [value])
        ranked = _ranked(groups)
        if ranked:
            lines.append(ranking_line(ranked, f" on {setting}" if len(settings) > 1 else ""))
    return lines


def metrics_verdict(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Verdict lines for ``(label, metrics.json content)`` rows (folders without ``results.json``)."""
    feature = primary_feature(f for _, m in rows for f in m.get("features", {}))
    if feature is None:
        return []
    groups = {label: [v] for label, m in rows if (v := fd_of(m, feature)) is not None}
    ranked = _ranked(groups)
    if not ranked:
        return []
    return [f"Primary metric: FD [{feature}] (docs/PROTOCOL.md; lower is better).", ranking_line(ranked)]
