"""Operations on annotation tables: merging two tables of the same images, flooring sigma_min, and the
counts and sigma statistics that ``ambient annotations summary`` prints.

The table and its file format: :mod:`ambient_omni.data.annotations`.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from ambient_omni.data.annotations import AnnotationTable, few_ids
from ambient_omni.errors import AmbientError

MERGE_RULES = ("agree", "a", "b", "max", "min")


def _merge_column(rule: str, name: str, ids: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Combine one sigma column of two tables by ``rule`` (see :func:`merge_annotations`)."""
    if rule == "a":
        return a.copy()
    if rule == "b":
        return b.copy()
    if rule == "max":
        return np.maximum(a, b)
    if rule == "min":
        return np.minimum(a, b)
    if rule != "agree":
        raise AmbientError(f"merge: unknown rule {rule!r} for {name} (choose from {', '.join(MERGE_RULES)})")
    conflict = a != b
    if conflict.any():
        shown = few_ids(f"{i} ({x:g} vs {y:g})" for i, x, y in zip(ids[conflict], a[conflict], b[conflict]))
        raise AmbientError(f"merge: the tables disagree on {name} for ids {shown}; say which wins "
                           f"({name} rule a, b, max or min)")
    return a.copy()


def _join(x: str | None, y: str | None) -> str | None:
    """``x`` when equal or ``y`` is null, ``y`` when ``x`` is null, else ``"x+y"``."""
    if x is None or x == y:
        return y
    return x if y is None else f"{x}+{y}"


def merge_annotations(a: AnnotationTable, b: AnnotationTable, sigma_min: str = "agree", sigma_max: str = "agree") -> AnnotationTable:
    """Combine two tables of the same images, one rule per sigma column.

    Rules: ``agree`` (default; any differing value is an error), ``a`` / ``b`` (take that
    table's column), ``max`` / ``min`` (elementwise). Typical use: a noise-classifier table
    ``a`` (sigma_min) and a crop-classifier table ``b`` (sigma_max, with sigma_min = inf for
    its OOD images and 0 for the target images): ``sigma_min="max", sigma_max="b"`` keeps
    OOD images out of high noise and the classifier's sigma_min elsewhere.

    ``method`` and ``classifier`` are joined with ``+`` where they differ; ``threshold`` is
    kept where equal or one side is null, else ``a``'s, with ``b``'s stored in
    ``extra["threshold_b"]``. Other extra fields: union, ``a`` wins on conflict. The tables
    must hold the same ids and must not name different datasets.
    """
    for rule, name in ((sigma_min, "sigma_min"), (sigma_max, "sigma_max")):
        if rule not in MERGE_RULES:
            raise AmbientError(f"merge: unknown rule {rule!r} for {name} (choose from {', '.join(MERGE_RULES)})")
    if a.dataset_sha256 and b.dataset_sha256 and a.dataset_sha256 != b.dataset_sha256:
        raise AmbientError("merge: the two tables were made for different datasets (sha256 differs)")
    if a.dataset_n != b.dataset_n:
        raise AmbientError(f"merge: the tables describe datasets of {a.dataset_n} and {b.dataset_n} images")
    b = b.select(a.ids, where="merge (second table)")
    extra, threshold = [], []
    for k in range(len(a)):
        row = {**b.extra[k], **a.extra[k]}
        ta, tb = a.threshold[k], b.threshold[k]
        if ta is not None and tb is not None and ta != tb:
            row["threshold_b"] = tb
        threshold.append(ta if ta is not None else tb)
        extra.append(row)
    return AnnotationTable(
        a.ids.copy(),
        _merge_column(sigma_min, "sigma_min", a.ids, a.sigma_min, b.sigma_min),
        _merge_column(sigma_max, "sigma_max", a.ids, a.sigma_max, b.sigma_max),
        [_join(x, y) or "" for x, y in zip(a.method, b.method)],
        [_join(x, y) for x, y in zip(a.classifier, b.classifier)],
        threshold,
        extra,
        a.dataset_n,
        a.dataset_sha256 or b.dataset_sha256,
        {"rule": "merge", "sigma_min": sigma_min, "sigma_max": sigma_max, "merged_from": [a.created_by, b.created_by]},
    )


def floor_sigma_min(table: AnnotationTable, floor: float) -> AnnotationTable:
    """Raise every positive sigma_min to at least ``floor``: ``sigma_min' = max(sigma_min, floor)`` where
    ``sigma_min > 0``; clean images (``sigma_min = 0``), ``inf`` and every sigma_max stay as they are.

    Use: keep a classifier's annotations above its low tail (images it admits at noise levels where a
    fixed annotation would not). ``created_by`` gains ``sigma_min_floor``; the rest of the header (the
    classifier's grid and settings) is kept, so the table still describes how it was made."""
    if not (math.isfinite(floor) and floor > 0):
        raise AmbientError(f"sigma_min floor: need 0 < floor < inf, got {floor}")
    lo = np.where(table.sigma_min > 0, np.maximum(table.sigma_min, floor), table.sigma_min)
    return AnnotationTable(
        table.ids.copy(), lo, table.sigma_max.copy(), list(table.method), list(table.classifier),
        list(table.threshold), [dict(e) for e in table.extra], table.dataset_n, table.dataset_sha256,
        {**table.created_by, "sigma_min_floor": float(floor)},
    )


def _stats(values: np.ndarray) -> dict[str, float] | None:
    """Mean, min, quantiles (5, 25, 50, 75, 95 %) and max of ``values``; None when empty."""
    if values.size == 0:
        return None
    q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"mean": float(values.mean()), "min": float(values.min()), "q05": float(q[0]), "q25": float(q[1]),
            "median": float(q[2]), "q75": float(q[3]), "q95": float(q[4]), "max": float(values.max())}


def summarize(table: AnnotationTable, provenance: list[str] | None = None) -> dict[str, Any]:
    """Counts and sigma statistics of a table.

    Kinds: ``clean`` (sigma_min = 0), ``corrupted`` (0 < sigma_min < inf; ``donut`` counts
    those of them that also have sigma_max > 0), ``ood_like`` (sigma_min = inf, sigma_max > 0),
    ``unusable`` (sigma_min = inf, sigma_max = 0). ``sigma_min`` statistics are over finite
    sigma_min > 0, ``sigma_max`` over sigma_max > 0. With ``provenance`` (one per row, or taken
    from ``extra["provenance"]`` when present) the same counts and the mean finite sigma_min
    are given per provenance.
    """
    lo, hi = table.sigma_min, table.sigma_max
    corrupted = (lo > 0) & np.isfinite(lo)
    summary: dict[str, Any] = {
        "n": len(table),
        "clean": int((lo == 0).sum()),
        "corrupted": int(corrupted.sum()),
        "donut": int((corrupted & (hi > 0)).sum()),
        "ood_like": int((np.isinf(lo) & (hi > 0)).sum()),
        "unusable": int((np.isinf(lo) & (hi == 0)).sum()),
        "sigma_min": _stats(lo[corrupted]),
        "sigma_max": _stats(hi[hi > 0]),
        "methods": dict(Counter(table.method)),
    }
    if provenance is None and table.extra and all("provenance" in e for e in table.extra):
        provenance = [str(e["provenance"]) for e in table.extra]
    if provenance is not None:
        if len(provenance) != len(table):
            raise AmbientError(f"summary: {len(provenance)} provenance entries for {len(table)} annotations")
        labels = np.asarray(provenance, dtype=object)
        summary["by_provenance"] = {
            str(p): {
                "n": int(mask.sum()),
                "clean": int((lo[mask] == 0).sum()),
                "mean_sigma_min": float(lo[mask & corrupted].mean()) if (mask & corrupted).any() else None,
                "ood_like": int((np.isinf(lo[mask]) & (hi[mask] > 0)).sum()),
            }
            for p in sorted(set(provenance))
            for mask in [labels == p]
        }
    return summary


__all__ = ["MERGE_RULES", "floor_sigma_min", "merge_annotations", "summarize"]
