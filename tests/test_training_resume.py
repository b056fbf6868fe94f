"""Resuming a run (ambient_omni.training.resume through the Trainer): exact resume in-process and after
SIGKILL, adopting a shorter run's checkpoint, refusing changed settings and damaged or leftover folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from _training_helpers import CPU1, ToyTask, assert_same, toy_config, train, weights
from ambient_omni.errors import AmbientError
from ambient_omni.files import read_json
from ambient_omni.training.checkpoint import find_latest_checkpoint, list_checkpoints
from ambient_omni.training.logging import read_log
from ambient_omni.training.loop import Trainer

TESTS = Path(__file__).resolve().parent


def test_in_process_resume_matches_straight_run(tmp_path: Path) -> None:
    straight = train(tmp_path / "s", task=ToyTask(dropout=0.2), steps=8)
    Trainer(ToyTask(dropout=0.2), toy_config(steps=4), tmp_path / "r", dist_info=CPU1).run()
    torch.manual_seed(12345)  # disturb the global RNG: the checkpoint must restore it
    resumed = train(tmp_path / "r", task=ToyTask(dropout=0.2), steps=8, resume="require")
    assert_same(straight, resumed)
    steps = [r["step"] for r in read_log(tmp_path / "r" / "log.jsonl") if "loss_mean" in r]
    assert steps == sorted(set(steps))


def test_a_longer_run_adopting_a_shorter_one_matches_a_straight_run(tmp_path: Path) -> None:
    straight = train(tmp_path / "straight", task=ToyTask(dropout=0.2), steps=8)
    train(tmp_path / "short", task=ToyTask(dropout=0.2), steps=5)  # checkpoints at 3 and 5
    train(tmp_path / "other", task=ToyTask(dropout=0.2, seed=1), steps=6)  # another trajectory
    train(tmp_path / "too-long", task=ToyTask(dropout=0.2), steps=9, checkpoint_every=9, keep_checkpoints=1)
    longer = Trainer(ToyTask(dropout=0.2), toy_config(steps=8), tmp_path / "long", dist_info=CPU1)
    runs = [tmp_path / name for name in ("other", "too-long", "short", "missing")]
    ref = longer.adopt_shorter_run(runs)
    assert ref is not None and ref.step == 5 and ref.json_path.parent.parent == tmp_path / "short"
    assert [r.step for r in list_checkpoints(tmp_path / "long")] == [5]
    assert longer.adopt_shorter_run(runs) is None  # it has a checkpoint of its own now
    torch.manual_seed(12345)  # the adopted checkpoint must carry the RNG state, not this process
    longer.run()
    assert_same(straight, weights(tmp_path / "long"))
    steps = [r["step"] for r in read_log(tmp_path / "long" / "log.jsonl") if "loss_mean" in r]
    assert steps == [2, 4, 5, 6, 8]  # the short run's log up to its last step 5, then this run's own
    fresh = Trainer(ToyTask(dropout=0.2), toy_config(steps=8, resume="never"), tmp_path / "new", dist_info=CPU1)
    assert fresh.adopt_shorter_run(runs) is None and not (tmp_path / "new" / "checkpoints").exists()


def _child_main(run_dir: str, hang_at: int, bf16: bool = False) -> None:
    """Entry point of the subprocess that gets killed (see the SIGKILL test)."""
    Trainer(ToyTask(dropout=0.2, hang_at=hang_at), toy_config(steps=8, checkpoint_every=3, bf16=bf16), run_dir,
            dist_info=CPU1).run()


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_sigkill_then_resume_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bf16: bool) -> None:
    monkeypatch.setenv("AMBIENT_CPU_BF16", "1")  # inherited by the child
    straight = train(tmp_path / "straight", task=ToyTask(dropout=0.2), steps=8, checkpoint_every=3, bf16=bf16)
    run = tmp_path / "killed"
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_training_resume as t; "
            f"t._child_main({str(run)!r}, 5, {bf16})")
    child = subprocess.Popen([sys.executable, "-c", code])
    marker = run / "checkpoints" / "ckpt-00000003.json"
    deadline = time.time() + 120
    while not marker.exists():
        assert child.poll() is None, "child died before its checkpoint"
        assert time.time() < deadline, "child never wrote its checkpoint"
        time.sleep(0.05)
    time.sleep(0.3)  # let it train steps 3-4 past the checkpoint, then block at step 5
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (run / "model").exists() and find_latest_checkpoint(run).step == 3
    resumed = train(run, task=ToyTask(dropout=0.2), steps=8, checkpoint_every=3, bf16=bf16)
    assert_same(straight, resumed)


def test_resume_refuses_changed_settings(tmp_path: Path) -> None:
    train(tmp_path, steps=3)
    with pytest.raises(ValueError, match="lr"):
        train(tmp_path, steps=6, lr=0.5)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(tmp_path, steps=6, resume="never")


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", ["truncate tensors", "delete markers"])
def test_no_intact_checkpoint_left_is_an_error_that_touches_nothing(tmp_path: Path, damage: str) -> None:
    train(tmp_path, steps=6, checkpoint_every=3)
    for ref in list_checkpoints(tmp_path):
        if damage == "truncate tensors":
            ref.tensor_path.write_bytes(ref.tensor_path.read_bytes()[:100])
        else:
            ref.json_path.unlink()
    (tmp_path / "model" / "config.json").unlink()  # only the checkpoint files tell that a run was here
    before = _snapshot(tmp_path)
    with pytest.raises(AmbientError, match=r"nothing to resume from, but the folder holds [24] checkpoint file\(s\) "
                                           r".*use a new --out"):
        train(tmp_path, steps=8, checkpoint_every=3)
    assert _snapshot(tmp_path) == before


def test_a_finished_model_without_checkpoints_is_not_overwritten(tmp_path: Path) -> None:
    train(tmp_path, steps=3)
    for path in (tmp_path / "checkpoints").iterdir():
        path.unlink()
    with pytest.raises(AmbientError, match="a finished model"):
        train(tmp_path, steps=6)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    straight = train(tmp_path / "straight", steps=8, checkpoint_every=3)
    run = tmp_path / "run"
    train(run, steps=6, checkpoint_every=3)
    newest = find_latest_checkpoint(run)
    data = bytearray(newest.tensor_path.read_bytes())
    data[-1] ^= 0x01  # same size, other bytes
    newest.tensor_path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"ckpt-00000006\.safetensors: contents do not match .* step 6"):
        resumed = train(run, steps=8, checkpoint_every=3)
    assert_same(straight, resumed)
    events = [(r["event"], r["step"]) for r in read_log(run / "log.jsonl") if "event" in r]
    assert events == [("start", 0), ("resume", 3)]  # the log reads as one run resumed at step 3


def test_stale_temporary_files_of_a_killed_write_are_removed(tmp_path: Path) -> None:
    train(tmp_path, steps=3)
    stale = [tmp_path / "checkpoints" / ".ckpt-00000006.safetensors.abc123.tmp",
             tmp_path / "checkpoints" / ".ckpt-00000006.json.def456.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    train(tmp_path, steps=6)
    assert not any(path.exists() for path in stale)
    assert find_latest_checkpoint(tmp_path).step == 6


def test_a_log_without_any_checkpoint_restarts_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "log.jsonl").write_text('{"step": 0, "event": "start"}\n{"step": 2, "loss_mean": 1.0}\n')
    with pytest.warns(UserWarning, match=r"log\.jsonl: records training up to step 2, but no checkpoint"):
        train(tmp_path, steps=3)
    assert [r["step"] for r in read_log(tmp_path / "log.jsonl") if "loss_mean" in r] == [2, 3]


def test_resume_keeps_the_precision_and_the_thread_count_of_the_checkpoint(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_CPU_BF16", "1")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        train(tmp_path / "bf16", steps=3, bf16=True)
        with pytest.raises(AmbientError, match=r"precision \(bf16 in the checkpoint, fp32 now"):
            train(tmp_path / "bf16", steps=6, bf16=False)
        torch.set_num_threads(1)
        train(tmp_path / "bf16", steps=6, bf16=True)  # resumes with the checkpoint's 2 threads
        assert torch.get_num_threads() == 2
        assert read_json(find_latest_checkpoint(tmp_path / "bf16").json_path)["threads"] == 2
    finally:
        torch.set_num_threads(threads)
