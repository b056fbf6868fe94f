"""sigma_min (and sigma_max) from per-image quality scores: the annotation of the paper's ImageNet recipe.

When the corruption is unknown (scraped data), there is no "corrupted" set to train a noise classifier against;
the paper ranks the images by a quality score (CLIP-IQA) instead. Scores are oriented so that higher = better.

Ranks: ``rank_i = #{j : (s_j, j) < (s_i, i)}`` (0 = worst, n - 1 = best; ties go by id, so the ranks are a
permutation), quantile ``u_i = rank_i / (n - 1)``. The best ``k = floor(c n + 1/2)`` images (``c`` = clean fraction)
are treated as clean: ``sigma_min = 0``. The others get, by rule,

- ``fraction`` (the paper's): one ``sigma_min`` for all of them (the paper: the worst 90% at 0.2 in latent units);
- ``quantile``: a monotone map, geometric between ``lo`` for the best of them and ``hi`` for the worst,
  ``log sigma_min_i = log hi + (u_i / u_max) (log lo - log hi)`` with ``u_max`` the largest such quantile.

The authors' code took the sort permutation itself for the rank (``arange(n)[argsort(-q)]``), so its "worst 90%"
is an arbitrary subset; :func:`quality_ranks` inverts the permutation.

Crops variant (``sigma_max``, for the images that are not clean): per crop size ``C`` a score of each image's
best ``C x C`` patch. An image passes at ``C`` if that score is at least the ``q``-quantile (default the median)
of the clean images' best-patch scores at the same size (patches are compared with patches of their size, so
the scorer's scale does not matter); ``C*`` = the largest passing size and ``sigma_max = map(C*)``, 0 if none,
with ``map`` the locality measurement's crop size -> sigma_max (``ambient locality``) or one given by hand
(the authors' latent map: 4 -> 0.1, 8 -> 0.175, 16 -> 0.2, 32 -> 1.0). Such an image is then used at
``sigma <= sigma_max`` and at ``sigma >= sigma_min``.

Score files (``--scores``): CSV with a header ``id,score`` and optional ``patch_<C>`` columns, or JSON Lines of
``{"id": 0, "score": 0.3, "patches": {"8": 0.5}}``; every dataset id exactly once, finite scores.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ambient_omni.data.annotations import AnnotationTable, few_ids
from ambient_omni.errors import AmbientError
from ambient_omni.files import atomic_write_text

RULES = ("fraction", "quantile")
DEFAULT_PATCH_QUANTILE = 0.5


@dataclass
class QualityScores:
    """Per-image scores (higher = better) in dataset id order, and optional best-patch scores per crop size."""

    score: np.ndarray
    patches: dict[int, np.ndarray] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        self.score = np.asarray(self.score, dtype=np.float64)
        if self.score.ndim != 1 or len(self.score) == 0:
            raise AmbientError(f"quality scores: need a non-empty 1-D array, got shape {self.score.shape}")
        bad = np.flatnonzero(~np.isfinite(self.score))
        if len(bad):
            raise AmbientError(f"quality scores: not finite for ids {few_ids(bad)}")
        self.patches = {int(c): np.asarray(v, dtype=np.float64) for c, v in self.patches.items()}
        for c, v in self.patches.items():
            if v.shape != self.score.shape or not np.isfinite(v).all():
                raise AmbientError(f"patch scores at crop size {c}: need one finite score per image")


def quality_ranks(scores: Sequence[float]) -> np.ndarray:
    """Each image's rank, 0 = worst; ties by id (a stable sort), so the ranks are a permutation of 0..n-1."""
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


def best_mask(scores: Sequence[float], fraction: float) -> np.ndarray:
    """True for the ``floor(fraction * n + 0.5)`` best-scoring images (the clean count of ``ambient corrupt``)."""
    if not 0 <= fraction <= 1:
        raise AmbientError(f"clean fraction must lie in [0, 1], got {fraction}")
    ranks = quality_ranks(scores)
    return ranks >= len(ranks) - math.floor(fraction * len(ranks) + 0.5)


def quality_sigma_min(scores: Sequence[float], clean_fraction: float, rule: str, sigma_min: float | None = None,
                      sigma_range: tuple[float, float] | None = None) -> np.ndarray:
    """``sigma_min`` per image by ``rule`` (module doc): 0 for the best ``clean_fraction``, else by the rule."""
    clean = best_mask(scores, clean_fraction)
    out = np.zeros(len(clean))
    if rule == "fraction":
        if sigma_min is None or not (math.isfinite(sigma_min) and sigma_min > 0):
            raise AmbientError(f"rule 'fraction' needs a sigma_min with 0 < sigma_min < inf, got {sigma_min}")
        out[~clean] = sigma_min
    elif rule == "quantile":
        lo, hi = sigma_range or (math.nan, math.nan)
        if not (0 < lo <= hi < math.inf):
            raise AmbientError(f"rule 'quantile' needs a sigma range 0 < lo <= hi < inf, got {sigma_range}")
        u = quality_ranks(scores) / max(len(clean) - 1, 1)
        if (~clean).any():
            t = u[~clean] / max(u[~clean].max(), 1e-12)
            out[~clean] = np.exp(math.log(hi) + t * (math.log(lo) - math.log(hi)))
    else:
        raise AmbientError(f"unknown quality rule {rule!r}; choose from {', '.join(RULES)}")
    return out


def patch_sigma_max(patches: Mapping[int, np.ndarray], clean: np.ndarray, crop_map: Mapping[int, float],
                    quantile: float = DEFAULT_PATCH_QUANTILE) -> tuple[np.ndarray, np.ndarray]:
    """Largest passing crop size per image (0 if none) and its ``sigma_max`` (module doc); clean images get 0."""
    if not 0 <= quantile <= 1:
        raise AmbientError(f"patch quantile must lie in [0, 1], got {quantile}")
    missing = sorted(set(patches) - set(crop_map))
    if missing:
        raise AmbientError(f"the crop map has no sigma_max for crop size(s) {missing}; it covers {sorted(crop_map)}")
    if not clean.any():
        raise AmbientError("the crops variant compares patches with the clean images' patches: no image is clean")
    best = np.zeros(len(clean), dtype=np.int64)
    for size in sorted(patches):
        bar = np.quantile(patches[size][clean], quantile)
        best = np.where(~clean & (patches[size] >= bar), size, best)
    return best, np.array([float(crop_map[int(c)]) if c else 0.0 for c in best])


def parse_crop_map(text: str) -> dict[int, float]:
    """``"4:0.1,8:0.175"`` -> ``{4: 0.1, 8: 0.175}``; sizes positive, sigma_max non-negative."""
    try:
        pairs = [item.split(":") for item in text.split(",") if item.strip()]
        mapping = {int(c): float(s) for c, s in pairs}
    except ValueError:
        raise AmbientError(f"crop map {text!r}: write it as SIZE:SIGMA_MAX,... e.g. 4:0.1,8:0.175") from None
    if not mapping or any(c < 1 or not (s >= 0 and math.isfinite(s)) for c, s in mapping.items()):
        raise AmbientError(f"crop map {text!r}: need crop sizes >= 1 and finite sigma_max >= 0")
    return mapping


def read_scores(path: str | os.PathLike, n: int) -> QualityScores:
    """A score file (CSV or JSON Lines, module doc) for a dataset of ``n`` images (ids 0..n-1), validated."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise AmbientError(f"{path}: cannot read the score file ({err.strerror})") from None
    rows = _jsonl_rows(path, text) if path.suffix in (".jsonl", ".json") else _csv_rows(path, text)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise AmbientError(f"{path}: duplicated ids {few_ids(unique[counts > 1])}")
    missing = np.setdiff1d(np.arange(n), ids)
    if len(missing):
        raise AmbientError(f"{path}: no score for dataset ids {few_ids(missing)}")
    unknown = np.setdiff1d(ids, np.arange(n))
    if len(unknown):
        raise AmbientError(f"{path}: scores for ids not in the dataset ({n} images): {few_ids(unknown)}")
    order = np.argsort(ids)
    sizes = sorted({c for r in rows for c in r[2]})
    if any(set(r[2]) != set(sizes) for r in rows):
        raise AmbientError(f"{path}: every image needs patch scores at the same crop sizes ({sizes})")
    patches = {c: np.array([rows[k][2][c] for k in order]) for c in sizes}
    try:
        return QualityScores(np.array([rows[k][1] for k in order]), patches, str(path))
    except AmbientError as err:
        raise AmbientError(f"{path}: {err}") from None


def _csv_rows(path: Path, text: str) -> list[tuple[int, float, dict[int, float]]]:
    """``(id, score, {crop size: patch score})`` per CSV row."""
    reader = csv.DictReader(text.splitlines())
    fields = reader.fieldnames or []
    if "id" not in fields or "score" not in fields:
        raise AmbientError(f"{path}: the CSV header needs 'id' and 'score' columns, got {fields}")
    patch_cols = {f: _patch_size(path, f.removeprefix("patch_")) for f in fields if f.startswith("patch_")}
    rows = []
    for line, row in enumerate(reader, start=2):
        try:
            rows.append((int(row["id"]), float(row["score"]), {c: float(row[f]) for f, c in patch_cols.items()}))
        except (TypeError, ValueError):
            raise AmbientError(f"{path}:{line}: id must be an integer and the scores numbers") from None
    return rows


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, float, dict[int, float]]]:
    """``(id, score, {crop size: patch score})`` per JSON line."""
    rows = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            patches = {_patch_size(path, c): float(v) for c, v in (record.get("patches") or {}).items()}
            if isinstance(record["id"], bool) or int(record["id"]) != record["id"]:
                raise ValueError
            rows.append((int(record["id"]), float(record["score"]), patches))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise AmbientError(f"{path}:{line}: need {{\"id\": INT, \"score\": NUMBER, \"patches\": {{SIZE: NUMBER}}}}") \
                from None
    return rows


def _patch_size(path: Path, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise AmbientError(f"{path}: patch column / key {text!r} is not a crop size (a positive integer)")
    return int(text)


def write_scores(path: str | os.PathLike, scores: QualityScores) -> None:
    """The scores as JSON Lines in the format :func:`read_scores` reads (id order)."""
    lines = [json.dumps({"id": i, "score": float(s),
                         **({"patches": {str(c): float(v[i]) for c, v in sorted(scores.patches.items())}}
                            if scores.patches else {})})
             for i, s in enumerate(scores.score)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def dataset_scores(data: Any, scorer: str, crop_sizes: Sequence[int] = (), classifier: str | os.PathLike | None = None,
                   sigma: float = 0.2, draws: int = 4, seed: int = 0) -> QualityScores:
    """Scores of every image of ``data`` (a :class:`~ambient_omni.data.dataset_folder.MixedDataset`) by a built-in scorer
    (:mod:`ambient_omni.annotate.quality_scores`), with best-patch scores at ``crop_sizes``; ``classifier``
    (a noise classifier run or model folder) is needed by, and only by, the ``classifier`` scorer."""
    from ambient_omni.annotate import quality_scores

    if scorer != "classifier" and getattr(data, "latent", None) is not None:
        raise AmbientError(f"{data.path}: a latent dataset; score its pixel dataset instead (ambient annotate quality "
                           "--data PIXELS ... --write-scores FILE) and pass --scores FILE here (the ids are the same)")
    if scorer == "classifier":
        if classifier is None:
            raise AmbientError("the 'classifier' scorer needs a noise classifier (--classifier RUN)")
        if crop_sizes:
            raise AmbientError("patch scores need a pixel scorer (sharpness, blockiness) or a score file: "
                               "a noise classifier trained on whole images does not score patches")
        from ambient_omni.training.checkpoint import load_model, model_folder

        score = quality_scores.classifier_scores(load_model(model_folder(classifier)), data.images,
                                                 data.ids.numpy(), sigma, draws, seed)
        return QualityScores(score, {}, f"classifier:{classifier}@sigma={sigma:g}")
    if classifier is not None:
        raise AmbientError(f"--classifier is for the 'classifier' scorer, not {scorer!r}")
    patches = quality_scores.best_patch_scores(data.images, crop_sizes, scorer) if crop_sizes else {}
    return QualityScores(quality_scores.score_images(data.images, scorer), patches, scorer)


def quality_table(scores: QualityScores, *, clean_fraction: float, rule: str, sigma_min: float | None = None,
                  sigma_range: tuple[float, float] | None = None, crop_map: Mapping[int, float] | None = None,
                  patch_quantile: float = DEFAULT_PATCH_QUANTILE, provenance: Sequence[str] | None = None,
                  dataset_sha256: str | None = None, created_by: Mapping[str, Any] | None = None) -> AnnotationTable:
    """The annotation of every image from its scores: ``(0, 0)`` for the best ``clean_fraction``, ``(sigma_min_i,
    sigma_max_i)`` for the others (``sigma_max`` from the patch scores when ``crop_map`` is given, else 0).
    Extras per image: score, rank, and with patches the chosen crop size; ``provenance`` is kept when given."""
    n = len(scores.score)
    lo = quality_sigma_min(scores.score, clean_fraction, rule, sigma_min, sigma_range)
    clean = lo == 0
    hi, crop = np.zeros(n), np.zeros(n, dtype=np.int64)
    if crop_map is not None:
        if not scores.patches:
            raise AmbientError("a crop map was given but the scores have no patch scores")
        crop, hi = patch_sigma_max(scores.patches, clean, crop_map, patch_quantile)
    ranks = quality_ranks(scores.score)
    extra = [{"score": float(scores.score[i]), "rank": int(ranks[i]),
              **({"crop_size": int(crop[i])} if crop_map is not None else {}),
              **({"provenance": str(provenance[i])} if provenance is not None else {})} for i in range(n)]
    record = {"rule": f"quality-{rule}", "scores": scores.source, "clean_fraction": float(clean_fraction),
              "sigma_min": sigma_min, "sigma_range": list(sigma_range) if sigma_range else None,
              "crop_map": {str(c): float(s) for c, s in sorted(crop_map.items())} if crop_map else None,
              "patch_quantile": float(patch_quantile) if crop_map else None, **(created_by or {})}
    return AnnotationTable(np.arange(n), lo, hi, ["clean" if c else "quality" for c in clean],
                           [None if c else scores.source for c in clean], [None] * n, extra, n, dataset_sha256,
                           record)


__all__ = ["DEFAULT_PATCH_QUANTILE", "RULES", "QualityScores", "best_mask", "dataset_scores", "parse_crop_map",
           "patch_sigma_max", "quality_ranks", "quality_sigma_min", "quality_table", "read_scores", "write_scores"]
