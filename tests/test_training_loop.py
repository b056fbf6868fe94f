"""The generic Trainer: determinism, exact resume after SIGKILL, 1-vs-2-process DDP, NaN guard."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from ambient_omni.errors import AmbientError
from ambient_omni.files import read_json
from ambient_omni.seeding import generator
from ambient_omni.training.checkpoint import find_latest_checkpoint, list_checkpoints
from ambient_omni.training.distributed import DistInfo
from ambient_omni.training.logging import read_log
from ambient_omni.training.loop import (
    NonFiniteError,
    Trainer,
    TrainConfig,
    TrainTask,
    learning_rate,
)

TESTS = Path(__file__).resolve().parent
CPU1 = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


class ToyNet(nn.Sequential):
    """A tiny MLP plus a parameter the loss never uses (DDP must cope with it)."""

    def __init__(self, dropout: float) -> None:
        super().__init__(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 4))
        self.unused = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)


class ToyTask:
    """Regress a fixed linear map of noisy inputs with a tiny MLP.

    Batch ``k`` is a pure function of ``(seed, k)``; rank ``r`` of ``W`` gets rows ``r*B/W ...``.
    ``use_generator`` draws the input noise from the trainer's per-step generator (rank-dependent)
    instead of the batch; ``dropout`` uses the global RNG (so resume must restore it);
    ``nan_at`` poisons that step's loss; ``hang_at`` blocks forever before yielding that batch.
    """

    def __init__(self, batch_size: int = 8, seed: int = 0, use_generator: bool = True, dropout: float = 0.0,
                 nan_at: int | None = None, hang_at: int | None = None) -> None:
        self.batch_size, self.seed = batch_size, seed
        self.use_generator, self.dropout = use_generator, dropout
        self.nan_at, self.hang_at = nan_at, hang_at
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = ToyNet(dropout)

    def batches(self, start_step: int, rank: int, world_size: int) -> Iterator[dict[str, Any]]:
        share = self.batch_size // world_size
        step = start_step
        while True:
            if step == self.hang_at:
                time.sleep(3600)
            g = generator(self.seed, 7, step)
            x = torch.randn(self.batch_size, 4, generator=g)
            noise = torch.randn(self.batch_size, 4, generator=g)
            rows = slice(rank * share, (rank + 1) * share)
            yield {"x": x[rows], "noise": noise[rows], "step": torch.full((share,), step)}
            step += 1

    def loss(self, model: nn.Module, batch: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
        x = batch["x"]
        noise = torch.randn(x.shape, generator=generator) if self.use_generator else batch["noise"]
        target = x.flip(1) * 2.0
        per_sample = (model(x + 0.3 * noise) - target).square().mean(1)
        if self.nan_at is not None and int(batch["step"][0]) == self.nan_at:
            per_sample = per_sample * float("nan")
        return per_sample

    def config(self) -> dict[str, Any]:
        return {"kind": "toy", "network": {"dropout": self.dropout}, "seed": self.seed}


def toy_config(**kw: Any) -> TrainConfig:
    base = dict(steps=8, batch_size=8, lr=1e-2, lr_rampup_images=32, checkpoint_every=3, keep_checkpoints=5,
                log_every=2, ema_halflife_images=16.0, progress=False, bf16=False, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def train(run: Path, task: ToyTask | None = None, **kw: Any) -> dict[str, torch.Tensor]:
    Trainer(task or ToyTask(), toy_config(**kw), run, dist_info=CPU1).run()
    return weights(run)


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0.0, msg=k)


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


def test_bf16_path_is_taken_and_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_CPU_BF16", "1")  # the default path on CPUs with native bf16
    a = train(tmp_path / "a", steps=12, bf16=True)
    assert_same(a, train(tmp_path / "b", steps=12, bf16=True))
    fp32 = train(tmp_path / "fp32", steps=12, bf16=False)
    assert not torch.equal(a["0.weight"], fp32["0.weight"])  # bf16 rounding changed the trajectory...
    torch.testing.assert_close(a["0.weight"], fp32["0.weight"], atol=0.05, rtol=0.05)  # ...but not by much
    assert read_log(tmp_path / "a" / "log.jsonl")[0]["precision"] == "bf16"
    assert read_log(tmp_path / "fp32" / "log.jsonl")[0]["precision"] == "fp32"


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_sigkill_then_resume_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bf16: bool) -> None:
    monkeypatch.setenv("AMBIENT_CPU_BF16", "1")  # inherited by the child
    straight = train(tmp_path / "straight", task=ToyTask(dropout=0.2), steps=8, checkpoint_every=3, bf16=bf16)
    run = tmp_path / "killed"
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_training_loop as t; "
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


def test_non_finite_loss_stops_with_step_and_keeps_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteError, match="step 4: non-finite loss"):
        train(tmp_path, task=ToyTask(nan_at=4), steps=8, checkpoint_every=2)
    assert [r.step for r in list_checkpoints(tmp_path)] == [2, 4]
    assert not (tmp_path / "model").exists()
    assert read_log(tmp_path / "log.jsonl")[-1]["event"] == "error"
    state = load_file(str(find_latest_checkpoint(tmp_path).tensor_path))
    assert all(torch.isfinite(v.float()).all() for v in state.values())


def test_resume_refuses_changed_settings(tmp_path: Path) -> None:
    train(tmp_path, steps=3)
    with pytest.raises(ValueError, match="lr"):
        train(tmp_path, steps=6, lr=0.5)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(tmp_path, steps=6, resume="never")


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
