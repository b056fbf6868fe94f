"""Run log: one JSON object per line in ``RUN/log.jsonl``, optionally mirrored to TensorBoard.

Only rank 0 logs. On resume from step ``k`` the lines of steps after ``k`` (written by the run
that was killed) are dropped, so the log reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ambient_omni.errors import AmbientError
from ambient_omni.files import atomic_write_text


def truncate_log(path: Path, last_step: int) -> None:
    """Keep only the records of ``path`` whose ``step`` is at most ``last_step`` (and drop torn lines).

    A line that parses but is no object with an integer ``step`` (an edited log) is an :class:`AmbientError`
    naming the file and line: the log is left as it is."""
    if not path.exists():
        return
    kept = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if _record_step(record, f"{path}:{number}") <= last_step:
            kept.append(line)
    atomic_write_text(path, "".join(k + "\n" for k in kept))


def _record_step(record: Any, where: str) -> int:
    """The ``step`` of a log record (0 when it has none); a record of another shape is an error naming ``where``."""
    step = record.get("step", 0) if isinstance(record, dict) else None
    if isinstance(step, bool) or not isinstance(step, int):
        raise AmbientError(f"{where}: a log record must be a JSON object with an integer 'step', got {record!r:.80}")
    return step


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``log.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


class RunLogger:
    """Append JSON-lines records (flushed and fsynced) and, if asked, TensorBoard scalars."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = False) -> None:
        self.path = Path(run_dir) / "log.jsonl"
        self.enabled = enabled
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise AmbientError("--tensorboard: the tensorboard package is not installed "
                                   "(pip install 'ambient_omni[tensorboard]')") from None
            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def log(self, record: dict[str, Any]) -> None:
        """Write one record; numeric fields also go to TensorBoard under ``train/<name>``."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self._tb is not None and "step" in record:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self._tb.add_scalar(f"train/{key}", value, record["step"])

    def close(self) -> None:
        """Flush and close TensorBoard, if open."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None
