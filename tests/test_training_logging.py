"""Run log: JSON lines, truncation on resume, optional TensorBoard."""

import importlib.util
from pathlib import Path

import pytest

from ambient_omni.errors import AmbientError
from ambient_omni.training.logging import RunLogger, read_log, truncate_log


def test_log_lines_and_truncation(tmp_path: Path) -> None:
    logger = RunLogger(tmp_path)
    for step in range(5):
        logger.log({"step": step, "loss": step * 0.5})
    with open(tmp_path / "log.jsonl", "a") as handle:
        handle.write('{"step": 9, "lo')  # torn last line of a killed run
    truncate_log(tmp_path / "log.jsonl", last_step=2)
    assert [r["step"] for r in read_log(tmp_path / "log.jsonl")] == [0, 1, 2]


def test_disabled_logger_writes_nothing(tmp_path: Path) -> None:
    RunLogger(tmp_path, enabled=False).log({"step": 1})
    assert not (tmp_path / "log.jsonl").exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="tensorboard installed")
def test_tensorboard_requested_but_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AmbientError, match="tensorboard"):
        RunLogger(tmp_path, tensorboard=True)


@pytest.mark.parametrize("line", ['{"step": "3"}', "[1, 2]", '{"step": 1.5}'])
def test_truncation_refuses_records_of_the_wrong_type(tmp_path: Path, line: str) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 0}\n' + line + "\n")
    with pytest.raises(AmbientError, match=r"log\.jsonl:2: a log record must be a JSON object with an integer 'step'"):
        truncate_log(log, last_step=5)
    assert log.read_text() == '{"step": 0}\n' + line + "\n"
