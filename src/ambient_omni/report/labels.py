"""What the folders under a report's root are, and the names a reader knows them by.

A benchmark or demo folder holds ``cells/<setting>__<method>__seed<N>/`` (``result.json`` names the
setting, method and seed; without it they are read from the folder name). A cell is labelled by its
method, plus its setting when the folder has several settings and its seed when it has several
seeds. A training run folder (``log.jsonl``) is a denoiser or a classifier by its ``config.json``
(``task.kind``); a denoiser is an *ambient* run when its annotations give some image
``0 < sigma_min < inf`` (``task.annotation_counts.high_noise > 0``), i.e. it regresses onto noisy targets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CellInfo:
    """One benchmark cell: its folder name, setting, method and training seed."""

    name: str
    setting: str
    method: str
    seed: int | None


@dataclass(frozen=True)
class RunInfo:
    """A training run folder: ``kind`` ``denoiser`` or ``classifier``; ``ambient``: trained on noisy targets."""

    kind: str
    ambient: bool


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cell_info(folder: Path) -> CellInfo:
    """The cell in ``folder``, from its ``result.json`` or else its name ``setting__method__seedN``."""
    result = _read(folder / "result.json")
    if {"setting", "method"} <= set(result):
        return CellInfo(folder.name, str(result["setting"]), str(result["method"]), result.get("seed"))
    parts = folder.name.split("__")
    seed = int(parts[-1][4:]) if parts[-1].startswith("seed") and parts[-1][4:].isdigit() else None
    if len(parts) >= 3:
        return CellInfo(folder.name, parts[0], "__".join(parts[1:-1]), seed)
    return CellInfo(folder.name, "", folder.name, seed)


def cell_labels(root: Path) -> dict[Path, str]:
    """``{cell folder: label}`` for every ``root/cells/*`` folder (module doc)."""
    folders = sorted(p for p in (root / "cells").glob("*") if p.is_dir()) if (root / "cells").is_dir() else []
    infos = {p: cell_info(p) for p in folders}
    several_settings = len({i.setting for i in infos.values()}) > 1
    several_seeds = len({i.seed for i in infos.values()}) > 1
    labels = {}
    for path, info in infos.items():
        extra = [info.setting] * several_settings + [f"seed {info.seed}"] * (several_seeds and info.seed is not None)
        labels[path] = info.method + (f" ({', '.join(extra)})" if extra else "")
    return labels


def label_for(path: Path, root: Path, labels: dict[Path, str]) -> str:
    """The label of the cell ``path`` lies in, else ``path`` relative to ``root`` (``.`` for the root)."""
    for parent in [path, *path.parents]:
        if parent in labels:
            return labels[parent]
    return str(path.relative_to(root)) if path != root else "."


def run_info(run: Path) -> RunInfo:
    """What the training run in ``run`` trained (module doc); a run without ``config.json`` counts as a denoiser."""
    task = _read(run / "config.json").get("task") or {}
    counts = task.get("annotation_counts") or {}
    return RunInfo(str(task.get("kind", "denoiser")), int(counts.get("high_noise", 0) or 0) > 0)


def annotation_methods(root: Path) -> dict[str, list[str]]:
    """``{annotation file name: methods of the cells that trained on it}`` from the cells' ``result.json``
    (by name: the pipeline's names carry a content hash, and the recorded paths are relative to where
    the benchmark ran)."""
    found: dict[str, list[str]] = {}
    for result_path in sorted((root / "cells").glob("*/result.json")) if (root / "cells").is_dir() else []:
        result = _read(result_path)
        file = (result.get("paths") or {}).get("annotations")
        if file and result.get("method"):
            methods = found.setdefault(Path(file).name, [])
            if result["method"] not in methods:
                methods.append(str(result["method"]))
    return found
