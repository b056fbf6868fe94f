"""The generic Trainer: determinism, 1-vs-2-process DDP, NaN guard, settings, compile, the run-folder lock
(resuming: test_training_resume)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from _training_helpers import ToyTask, assert_same, toy_config, train, weights
from ambient_omni.errors import AmbientError
from ambient_omni.training.checkpoint import find_latest_checkpoint, list_checkpoints
from ambient_omni.training.logging import read_log
from ambient_omni.training.loop import (
    NonFiniteError,
    Trainer,
    TrainTask,
    learning_rate,
)


def test_task_satisfies_protocol() -> None:
    assert isinstance(ToyTask(), TrainTask)


def test_learning_rate_warmup_is_linear_then_flat() -> None:
    cfg = toy_config(lr=1.0, lr_rampup_images=32, batch_size=8)
    assert [learning_rate(k, cfg) for k in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_same_seed_same_weights_and_training_reduces_loss(tmp_path: Path) -> None:
    a = train(tmp_path / "a", steps=30)
    b = train(tmp_path / "b", steps=30)
    assert_same(a, b)
    c = train(tmp_path / "c", task=ToyTask(seed=1), steps=30)
    assert not torch.equal(a["0.weight"], c["0.weight"])
    log = [r for r in read_log(tmp_path / "a" / "log.jsonl") if "loss_mean" in r]
    assert log[-1]["loss_mean"] < 0.7 * log[0]["loss_mean"]
    assert {"step", "images_seen", "loss_std", "lr", "images_per_s", "grad_norm", "time_s"} <= log[0].keys()


def test_run_folder_layout_and_keep_last_k(tmp_path: Path) -> None:
    train(tmp_path, steps=8, checkpoint_every=2, keep_checkpoints=2)
    assert [r.step for r in list_checkpoints(tmp_path)] == [6, 8]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "ckpt-00000006.json", "ckpt-00000006.safetensors", "ckpt-00000008.json", "ckpt-00000008.safetensors"]
    run_cfg = json.loads((tmp_path / "config.json").read_text())
    assert run_cfg["train"]["steps"] == 8 and run_cfg["task"]["kind"] == "toy"
    assert json.loads((tmp_path / "model" / "config.json").read_text())["kind"] == "toy"


def test_ema_weights_differ_from_raw_and_follow_halflife(tmp_path: Path) -> None:
    train(tmp_path, steps=6, checkpoint_every=6)
    state = load_file(str(find_latest_checkpoint(tmp_path).tensor_path))
    assert not torch.equal(state["model.0.weight"], state["ema.0.weight"])
    torch.testing.assert_close(state["ema.0.weight"], weights(tmp_path)["0.weight"], atol=0.0, rtol=0.0)


def test_bf16_path_is_taken_and_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_CPU_BF16", "1")  # the default path on CPUs with native bf16
    a = train(tmp_path / "a", steps=12, bf16=True)
    assert_same(a, train(tmp_path / "b", steps=12, bf16=True))
    fp32 = train(tmp_path / "fp32", steps=12, bf16=False)
    assert not torch.equal(a["0.weight"], fp32["0.weight"])  # bf16 rounding changed the trajectory...
    torch.testing.assert_close(a["0.weight"], fp32["0.weight"], atol=0.05, rtol=0.05)  # ...but not by much
    assert read_log(tmp_path / "a" / "log.jsonl")[0]["precision"] == "bf16"
    assert read_log(tmp_path / "fp32" / "log.jsonl")[0]["precision"] == "fp32"


def test_non_finite_loss_stops_with_step_and_keeps_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteError, match="step 4: non-finite loss"):
        train(tmp_path, task=ToyTask(nan_at=4), steps=8, checkpoint_every=2)
    assert [r.step for r in list_checkpoints(tmp_path)] == [2, 4]
    assert not (tmp_path / "model").exists()
    assert read_log(tmp_path / "log.jsonl")[-1]["event"] == "error"
    state = load_file(str(find_latest_checkpoint(tmp_path).tensor_path))
    assert all(torch.isfinite(v.float()).all() for v in state.values())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, run_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from ambient_omni.training.distributed import shutdown_distributed

    try:
        Trainer(ToyTask(use_generator=False), toy_config(steps=6, device="cpu"), run_dir).run()
    finally:
        shutdown_distributed()


def test_two_process_ddp_matches_one_process(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    one = train(tmp_path / "one", task=ToyTask(use_generator=False), steps=6)
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "two")), nprocs=2, join=True)
    two = weights(tmp_path / "two")
    assert_same(one, two, atol=1e-5)
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2


@pytest.mark.parametrize("kw, option", [
    ({"ema_halflife_images": float("nan")}, "--ema-halflife"), ({"ema_decay": 2.0}, "--ema-decay"),
    ({"checkpoint_every": -1}, "--checkpoint-every"), ({"log_every": -1}, "--log-every"),
    ({"preview_every": -2}, "--preview-every"), ({"lr": float("inf")}, "--lr"), ({"lr": float("nan")}, "--lr"),
    ({"device": "banana"}, "not a torch device"), ({"steps": None, "total_images": -5}, "run length"),
])
def test_validate_refuses_settings_that_make_garbage(kw: dict, option: str) -> None:
    with pytest.raises(AmbientError, match=option):
        toy_config(**kw).validate()


def test_validate_refuses_cuda_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(AmbientError, match="cuda: CUDA is not available"):
        toy_config(device="cuda").validate()
    toy_config(device="cpu").validate()


def test_a_run_folder_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(AmbientError, match="afile: exists and is not a folder"):
        train(tmp_path / "afile", steps=1)
    assert (tmp_path / "afile").read_text() == "mine"


class _FakeCompiled(torch.nn.Module):
    """What ``torch.compile`` returns, minus the compiler: ``_orig_mod`` and a forward that may fail."""

    def __init__(self, model: torch.nn.Module, fail: bool) -> None:
        super().__init__()
        self._orig_mod, self.fail, self.calls = model, fail, 0

    def forward(self, *args: Any) -> torch.Tensor:
        self.calls += 1
        if self.fail:
            raise RuntimeError("no C++ compiler")
        return self._orig_mod(*args)


@pytest.mark.parametrize("fail", [False, True], ids=["compiled", "fallback"])
def test_compile_option_trains_the_same_weights_or_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              fail: bool) -> None:
    eager = train(tmp_path / "eager", steps=6)
    made: list[_FakeCompiled] = []
    monkeypatch.setattr(torch, "compile", lambda model: made.append(_FakeCompiled(model, fail)) or made[-1])
    if fail:
        with pytest.warns(UserWarning, match="torch.compile failed"):
            compiled = train(tmp_path / "compiled", steps=6, compile=True)
        assert made[0].calls == 1 and read_log(tmp_path / "compiled" / "log.jsonl")[1]["event"] == "compile-fallback"
    else:
        compiled = train(tmp_path / "compiled", steps=6, compile=True)
        assert made[0].calls == 6
    assert_same(eager, compiled)  # checkpoints and the model folder hold the plain module's weights


def test_a_second_trainer_on_a_locked_run_folder_is_an_error(tmp_path: Path) -> None:
    import fcntl

    run = tmp_path / "run"
    run.mkdir()
    with open(run / ".lock", "a+") as other:  # another process's trainer holds the folder
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        other.write("4242\n")
        other.flush()
        with pytest.raises(AmbientError, match=r"in use by process 4242"):
            train(run, steps=2)
        assert not (run / "checkpoints").exists() and not (run / "log.jsonl").exists()
    train(run, steps=2)  # released: the folder trains normally
    assert (run / "model" / "model.safetensors").is_file()
