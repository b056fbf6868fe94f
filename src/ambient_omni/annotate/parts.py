"""The part files of a resumable, shardable annotation written to ``out`` (used by :mod:`ambient_omni.annotate.noise`).

The ids to annotate are cut into fixed chunks of ``chunk`` ids (independent of the number of ranks);
rank ``r`` of ``W`` does chunks ``c`` with ``c % W == r`` and writes each finished chunk atomically as
``<out>.parts/chunk-<c>.json`` (its ids, their sigma_min and their classifier calls). A restart skips the
chunks present, so no work is repeated or duplicated, and :func:`read_parts` gives the same columns for
any ``W``. ``<out>.parts/settings.json`` records the settings the parts are made with: parts made with
other settings are never mixed in.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ambient_omni.errors import AmbientError
from ambient_omni.files import atomic_write_text, read_json, write_json

ChunkFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``annotate(ids) -> (sigma_min, classifier calls)``, one value per id of a chunk."""


def parts_dir(out: str | os.PathLike) -> Path:
    """Folder of the finished-chunk files of an annotation written to ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def _chunk_path(folder: Path, c: int) -> Path:
    return folder / f"chunk-{c:06d}.json"


def _check_settings(folder: Path, settings: dict[str, Any]) -> None:
    """Record ``settings`` in a new parts folder; in an existing one, refuse other settings than its own."""
    path = folder / "settings.json"
    if path.exists():
        old = read_json(path)
        if old != settings:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            if diff == ["classifier_sha256"] and "classifier_sha256" not in old:
                raise AmbientError(f"{path}: these unfinished parts were written by an older version that did not "
                                   "record the classifier's weights, so they may come from other weights; delete "
                                   f"{folder} to annotate again")
            raise AmbientError(f"{path}: an unfinished annotation with different settings ({', '.join(diff)}) "
                               f"is in the way; delete {folder} or use the same options")
    else:
        write_json(path, settings)


def run_parts(annotate: ChunkFn, ids: np.ndarray, out: str | os.PathLike, settings: dict[str, Any],
              chunk: int = 64, rank: int = 0, world_size: int = 1, progress: bool = True,
              desc: str = "annotate") -> int:
    """Run ``annotate`` on this rank's unfinished chunks of ``ids`` and write each as a part file (rank 0
    first checks ``settings`` against the folder's); returns how many chunks it computed now."""
    from tqdm.auto import tqdm

    folder = parts_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        _check_settings(folder, settings)
    chunks = [c for c in range(math.ceil(len(ids) / chunk)) if c % world_size == rank
              and not _chunk_path(folder, c).exists()]
    total = sum(min(chunk, len(ids) - c * chunk) for c in chunks)
    bar = tqdm(total=total, disable=not progress, unit="img", desc=desc)
    for c in chunks:
        part = ids[c * chunk : (c + 1) * chunk]
        sig, calls = annotate(part)
        record = {"ids": part.tolist(), "sigma_min": sig.tolist(), "calls": calls.tolist()}
        atomic_write_text(_chunk_path(folder, c), json.dumps(record))
        bar.update(len(part))
    bar.close()
    return len(chunks)


def read_parts(out: str | os.PathLike, ids: np.ndarray, n: int, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(sigma_min, calls)`` of images ``0 .. n-1`` from the part files of ``ids`` (0 for the images not in
    ``ids``); an error if any chunk is missing."""
    folder = parts_dir(out)
    n_chunks = math.ceil(len(ids) / chunk)
    missing = [c for c in range(n_chunks) if not _chunk_path(folder, c).exists()]
    if missing:
        raise AmbientError(f"{folder}: chunks {missing[:5]} are not finished (run the annotation again to resume)")
    sigma_min, calls = np.zeros(n), np.zeros(n, dtype=np.int64)
    for c in range(n_chunks):
        record = read_json(_chunk_path(folder, c))
        sigma_min[record["ids"]] = record["sigma_min"]
        calls[record["ids"]] = record["calls"]
    return sigma_min, calls
