"""Cache keys of the benchmark stages: a stage's output folder is reused only when its marker holds the same key.

``config_hash(obj)`` = the first 12 hex digits of sha256 of ``obj``'s key-sorted JSON; ``stage.json`` in a
stage's folder records the key it was made with.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ambient_omni.files import read_json, write_json


def config_hash(obj: Any) -> str:
    """Short sha256 of the JSON form of ``obj`` (key-sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def stage_done(folder: Path, key: str) -> bool:
    """Whether ``folder`` holds a finished stage made with ``key``."""
    marker = folder / "stage.json"
    return marker.is_file() and read_json(marker).get("key") == key


def mark_stage(folder: Path, key: str, **info: Any) -> None:
    """Record that ``folder`` holds the finished stage of ``key`` (with ``info`` beside it)."""
    write_json(folder / "stage.json", {"key": key, **info})
