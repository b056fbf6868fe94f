"""Per-image noise-level windows (sigma_min, sigma_max): the validated annotation file.

Clean images have ``sigma_min = 0``; low-quality images ``0 < sigma_min < inf, sigma_max = 0``;
out-of-distribution images ``sigma_min = inf, sigma_max > 0``. At which noise levels a window makes an
image usable: :mod:`ambient_omni.data.admissibility`.

The file (``annotations.jsonl``) is JSON Lines: a header line, then one record per image.
``docs/ANNOTATIONS.md`` describes it; :func:`read_annotations` checks everything listed there.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import ambient_omni
from ambient_omni.data.mixed import LOW_QUALITY_KINDS
from ambient_omni.errors import AmbientError
from ambient_omni.files import atomic_write_text

FORMAT = "ambient-omni-annotations"
VERSION = 1
CORE_KEYS = ("id", "sigma_min", "sigma_max", "method", "classifier", "threshold")
_SHOW = 5  # how many offending ids an error message lists


def few_ids(values: Any) -> str:
    """The first few items of ``values`` as text, with the total when there are more."""
    values = list(values)
    shown = ", ".join(str(v) for v in values[:_SHOW])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _SHOW else "")


@dataclass
class AnnotationTable:
    """Annotations of a set of images, one row per image id (numpy columns, python lists).

    ``sigma_min`` may be ``inf`` (never usable at high noise); ``sigma_max`` is finite, ``0``
    meaning no low-noise use. ``extra[k]`` holds the record's optional fields (e.g.
    ``provenance``). ``dataset_n`` / ``dataset_sha256`` identify the dataset the table was
    made for (``sha256`` of its ``images.npy``, or ``None`` when unknown).
    """

    ids: np.ndarray
    sigma_min: np.ndarray
    sigma_max: np.ndarray
    method: list[str]
    classifier: list[str | None]
    threshold: list[float | None]
    extra: list[dict[str, Any]] = field(default_factory=list)
    dataset_n: int | None = None
    dataset_sha256: str | None = None
    created_by: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64).reshape(-1)
        self.sigma_min = np.asarray(self.sigma_min, dtype=np.float64).reshape(-1)
        self.sigma_max = np.asarray(self.sigma_max, dtype=np.float64).reshape(-1)
        n = len(self.ids)
        if not self.extra:
            self.extra = [{} for _ in range(n)]
        if self.dataset_n is None:
            self.dataset_n = n
        lengths = {len(col) for col in (self.sigma_min, self.sigma_max, self.method, self.classifier, self.threshold, self.extra)}
        if lengths != {n}:
            raise AmbientError(f"annotation table: columns have different lengths {sorted(lengths | {n})}")
        _check_values("annotation table", self.ids, self.sigma_min, self.sigma_max)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def all_clean(cls, ids: Any, dataset_sha256: str | None = None) -> AnnotationTable:
        """Every image clean: ``sigma_min = 0`` (usable at every sigma), ``sigma_max = 0``."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        n = len(ids)
        return cls(ids, np.zeros(n), np.zeros(n), ["all-clean"] * n, [None] * n, [None] * n,
                   dataset_sha256=dataset_sha256, created_by={"rule": "all-clean"})

    @classmethod
    def fixed(
        cls,
        ids: Any,
        provenance: list[str],
        sigma_min: float,
        sigma_max: float = 0.0,
        dataset_sha256: str | None = None,
    ) -> AnnotationTable:
        """The paper's fixed baseline, from each image's provenance (dataset manifest).

        ``clean`` -> (0, 0); ``corrupted:<spec>`` and ``synthetic:<model>`` -> (``sigma_min``, 0);
        ``ood:<source>`` -> (inf, ``sigma_max``). The provenance is kept in ``extra``.
        """
        if not (math.isfinite(sigma_min) and sigma_min > 0) or not (math.isfinite(sigma_max) and sigma_max >= 0):
            raise AmbientError(f"fixed annotations: need 0 < sigma_min < inf and 0 <= sigma_max < inf, got {sigma_min}, {sigma_max}")
        rule = {"clean": (0.0, 0.0), **{kind: (sigma_min, 0.0) for kind in LOW_QUALITY_KINDS},
                "ood": (math.inf, sigma_max)}
        return cls.by_provenance(ids, provenance, rule, "fixed", dataset_sha256,
                                 {"rule": "fixed", "sigma_min": sigma_min, "sigma_max": sigma_max})

    @classmethod
    def by_provenance(
        cls,
        ids: Any,
        provenance: list[str],
        rule: dict[str, tuple[float, float]],
        method: str,
        dataset_sha256: str | None = None,
        created_by: dict[str, Any] | None = None,
    ) -> AnnotationTable:
        """Every image gets ``rule[kind] = (sigma_min, sigma_max)`` by its provenance kind
        (``clean`` / ``corrupted`` / ``synthetic`` / ``ood``, the part before ``:``); a kind without a rule
        is an error. The provenance is kept in ``extra``."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(provenance) != len(ids):
            raise AmbientError(f"{method} annotations: {len(provenance)} provenance entries for {len(ids)} ids")
        lo, hi = np.zeros(len(ids)), np.zeros(len(ids))
        for k, prov in enumerate(provenance):
            kind = str(prov).split(":", 1)[0]
            if kind not in rule:
                raise AmbientError(f"{method} annotations: image {ids[k]} has unknown provenance {prov!r} "
                                   f"(expected {', '.join(sorted(rule))})")
            lo[k], hi[k] = rule[kind]
        n = len(ids)
        return cls(ids, lo, hi, [method] * n, [None] * n, [None] * n, [{"provenance": str(p)} for p in provenance],
                   dataset_sha256=dataset_sha256, created_by=created_by or {"rule": method})

    def select(self, ids: Any, where: str = "annotation table") -> AnnotationTable:
        """The rows of ``ids``, in that order; missing or unknown ids are errors naming ``where``."""
        want = np.asarray(ids, dtype=np.int64).reshape(-1)
        _check_same_ids(where, self.ids, want)
        order = np.argsort(self.ids, kind="stable")
        rows = order[np.searchsorted(self.ids, want, sorter=order)]
        return AnnotationTable(
            self.ids[rows], self.sigma_min[rows], self.sigma_max[rows],
            [self.method[r] for r in rows], [self.classifier[r] for r in rows],
            [self.threshold[r] for r in rows], [dict(self.extra[r]) for r in rows],
            self.dataset_n, self.dataset_sha256, dict(self.created_by),
        )

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per row (``sigma_min = inf`` written as the string ``"inf"``)."""
        return [
            {
                "id": int(self.ids[k]),
                "sigma_min": "inf" if math.isinf(self.sigma_min[k]) else float(self.sigma_min[k]),
                "sigma_max": float(self.sigma_max[k]),
                "method": self.method[k],
                "classifier": self.classifier[k],
                "threshold": self.threshold[k],
                **self.extra[k],
            }
            for k in range(len(self))
        ]


def _check_values(where: str, ids: np.ndarray, sigma_min: np.ndarray, sigma_max: np.ndarray) -> None:
    """Raise on NaN / negative sigmas, infinite sigma_max or duplicated ids."""
    bad_min = ids[np.isnan(sigma_min) | (sigma_min < 0)]
    if bad_min.size:
        raise AmbientError(f"{where}: sigma_min is NaN or negative for ids {few_ids(bad_min)}")
    bad_max = ids[~np.isfinite(sigma_max) | (sigma_max < 0)]
    if bad_max.size:
        raise AmbientError(f"{where}: sigma_max must be a finite number >= 0; ids {few_ids(bad_max)}")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise AmbientError(f"{where}: duplicated ids {few_ids(unique[counts > 1])}")


def _check_same_ids(where: str, have: np.ndarray, want: np.ndarray) -> None:
    """Raise when ``have`` lacks ids of ``want`` (missing) or holds ids outside it (unknown)."""
    missing = np.setdiff1d(want, have)
    if missing.size:
        raise AmbientError(f"{where}: no annotation for dataset ids {few_ids(missing)}")
    unknown = np.setdiff1d(have, want)
    if unknown.size:
        raise AmbientError(f"{where}: annotations for ids not in the dataset: {few_ids(unknown)}")


def write_annotations(path: str | os.PathLike, table: AnnotationTable) -> None:
    """Atomically write ``table`` as an annotation file (header line + one record per image)."""
    header = {
        "format": FORMAT,
        "version": VERSION,
        "dataset": {"n": int(table.dataset_n or len(table)), "sha256": table.dataset_sha256},
        "created_by": {"package": "ambient_omni", "version": ambient_omni.__version__, **table.created_by},
    }
    lines = [json.dumps(header)]
    lines.extend(json.dumps(record, allow_nan=False) for record in table.records())
    atomic_write_text(path, "\n".join(lines) + "\n")


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name} (write an infinite sigma_min as the string \"inf\")")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_line(where: str, text: str) -> Any:
    """JSON decoding refusing NaN/Infinity, with the file and line number in errors."""
    try:
        return _DECODER.decode(text)
    except ValueError as err:
        raise AmbientError(f"{where}: malformed line ({err})") from None


def _number(where: str, record: dict, key: str, allow_inf_string: bool = False) -> float:
    """A record's numeric field; ``"inf"`` is accepted only where ``allow_inf_string``."""
    value = record[key]
    if allow_inf_string and value == "inf":
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        extra = ' or "inf"' if allow_inf_string else ""
        raise AmbientError(f"{where}: {key} must be a number{extra}, got {value!r}")
    if value < 0:
        raise AmbientError(f"{where}: {key} is negative ({value})")
    return float(value)


def _parse_record(where: str, record: Any) -> tuple[int, float, float, str, str | None, float | None, dict]:
    """Check one record's keys and types and return its fields."""
    if not isinstance(record, dict):
        raise AmbientError(f"{where}: a record must be a JSON object")
    missing = [key for key in CORE_KEYS if key not in record]
    if missing:
        raise AmbientError(f"{where}: missing field(s) {', '.join(missing)}")
    image_id = record["id"]
    if isinstance(image_id, bool) or not isinstance(image_id, int):
        raise AmbientError(f"{where}: id must be an integer, got {image_id!r}")
    if not isinstance(record["method"], str):
        raise AmbientError(f"{where}: method must be a string")
    classifier = record["classifier"]
    if classifier is not None and not isinstance(classifier, str):
        raise AmbientError(f"{where}: classifier must be a string or null")
    threshold = record["threshold"]
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise AmbientError(f"{where}: threshold must be a number or null")
    sigma_min = _number(where, record, "sigma_min", allow_inf_string=True)
    sigma_max = _number(where, record, "sigma_max")
    extra = {key: value for key, value in record.items() if key not in CORE_KEYS}
    return image_id, sigma_min, sigma_max, record["method"], classifier, threshold, extra


def _parse_header(path: Path, header: Any) -> tuple[int, str | None, dict]:
    """Check the header line; return (dataset n, dataset sha256, created_by)."""
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise AmbientError(f"{path}: line 1 is not an annotation header (expected \"format\": \"{FORMAT}\")")
    if header.get("version") != VERSION:
        raise AmbientError(f"{path}: unsupported annotation format version {header.get('version')!r} (this reader knows {VERSION})")
    dataset = header.get("dataset")
    if not isinstance(dataset, dict) or isinstance(dataset.get("n"), bool) or not isinstance(dataset.get("n"), int) or dataset["n"] < 0:
        raise AmbientError(f"{path}: header needs \"dataset\": {{\"n\": <int>, \"sha256\": <str or null>}}")
    sha = dataset.get("sha256")
    if sha is not None and not isinstance(sha, str):
        raise AmbientError(f"{path}: header dataset.sha256 must be a string or null")
    created_by = header.get("created_by", {})
    return dataset["n"], sha, created_by if isinstance(created_by, dict) else {"value": created_by}


def _check_dataset_sha(path: Path, n: int, sha: str | None, dataset_sha256: str | None) -> None:
    """A different dataset sha256 is an error; a file that records none (``null``, allowed for producers that
    did not know it) is checked only by its count, so reading it against a known dataset warns."""
    if dataset_sha256 is None:
        return
    if sha is None:
        warnings.warn(f"{path}: the header records no dataset sha256 (null), so nothing shows that it was made "
                      f"for this dataset (sha256 {dataset_sha256[:12]}...) beyond its {n} images; if it belongs to "
                      "another dataset of that size its sigmas are wrong (rewrite it with the dataset's sha256)",
                      UserWarning, stacklevel=3)
    elif sha != dataset_sha256:
        raise AmbientError(f"{path}: made for a different dataset (sha256 {sha[:12]}... != {dataset_sha256[:12]}...)")


def read_annotations(
    path: str | os.PathLike,
    ids: Any = None,
    dataset_sha256: str | None = None,
) -> AnnotationTable:
    """Read and validate an annotation file; the result is ordered like ``ids``.

    ``ids`` defaults to ``0 .. n-1`` with ``n`` from the header (the dataset convention).
    Errors (all :class:`AmbientError` naming the file): unreadable file, wrong format or
    version, malformed line (with its number), missing/mistyped fields, NaN, ``Infinity`` or
    negative sigmas, duplicated ids, a record count different from the header's ``n``, ids
    missing from the file, ids not in the dataset, and a dataset ``sha256`` mismatch (checked
    when both the file and the caller give one). A file whose header has ``"sha256": null`` read
    against a caller's ``dataset_sha256`` gives a ``UserWarning``: only its count could be checked.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise AmbientError(f"{path}: cannot read annotation file ({err})") from None
    if not lines or not lines[0].strip():
        raise AmbientError(f"{path}: empty annotation file (line 1 must be the header)")
    n, sha, created_by = _parse_header(path, _parse_line(f"{path}:1", lines[0]))
    rows = [
        _parse_record(f"{path}:{number}", _parse_line(f"{path}:{number}", text))
        for number, text in enumerate(lines[1:], start=2)
        if text.strip()
    ]
    columns = list(zip(*rows)) if rows else [()] * 7
    file_ids = np.asarray(columns[0], dtype=np.int64)
    _check_values(str(path), file_ids, np.asarray(columns[1], dtype=np.float64), np.asarray(columns[2], dtype=np.float64))
    if len(rows) != n:
        raise AmbientError(f"{path}: header says dataset.n = {n} but the file has {len(rows)} records")
    _check_dataset_sha(path, n, sha, dataset_sha256)
    table = AnnotationTable(file_ids, columns[1], columns[2], list(columns[3]), list(columns[4]), list(columns[5]),
                            list(columns[6]), n, sha, created_by)
    return table.select(np.arange(n) if ids is None else ids, where=str(path))


__all__ = [
    "FORMAT",
    "VERSION",
    "AnnotationTable",
    "few_ids",
    "read_annotations",
    "write_annotations",
]
