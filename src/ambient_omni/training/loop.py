"""One training loop for every model kind: a :class:`Trainer` runs a *task* under a :class:`TrainConfig`.

A task (see :class:`TrainTask`) owns the model, the data and the per-sample loss; the trainer
owns everything else: Adam with a linear learning-rate warm-up, gradient clipping, EMA, DDP,
bf16 autocast (CUDA, and CPUs with native bf16: :mod:`ambient_omni.device`), NaN/Inf guard, logging,
periodic previews, checkpoints and exact resume (which checkpoint to continue from, and whether it may:
:mod:`ambient_omni.training.resume`).

Math of one step ``k`` (0-based; ``B`` = global batch, ``W`` = number of processes):

- rank ``r`` computes per-sample losses ``l_j`` on its share of batch ``k`` and back-propagates
  ``sum_j l_j * W / B``; DDP averages gradients over the ``W`` ranks, so every rank holds the
  gradient of the GLOBAL batch mean ``(1/B) sum_{all j} l_j`` (the same as one process);
- ``lr_k = lr * min(1, (k + 1) * B / rampup_images)``;
- per-step randomness comes from a generator seeded by ``(seed, k, r)``, and batch ``k`` is a
  pure function of ``k``, so a run resumed from a checkpoint continues exactly.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ambient_omni import seeding
from ambient_omni.device import autocast, uses_bf16
from ambient_omni.networks.fast_ops import fast_ops_enabled, memory_format_for
from ambient_omni.errors import AmbientError
from ambient_omni.files import exclusive_lock, read_json, write_json
from ambient_omni.training import checkpoint as ckpt
from ambient_omni.training import resume
from ambient_omni.training.distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    checked_device,
    init_distributed,
)
from ambient_omni.training.ema import EMA, EMASchedule
from ambient_omni.training.logging import RunLogger, truncate_log

_PURPOSE_STEP = 1
_PURPOSE_GLOBAL = 2


@runtime_checkable
class TrainTask(Protocol):
    """What the trainer needs from a model kind.

    ``config()`` is JSON with at least ``kind`` and ``network``: it becomes the model folder's
    ``config.json`` (so :func:`~ambient_omni.training.checkpoint.load_model` can rebuild the model).
    ``batches(start_step, rank, world_size)`` yields this rank's share of global batches
    ``start_step, start_step + 1, ...`` as dicts of tensors. ``loss`` returns per-sample losses
    ``(B_local,)``. Optional: ``make_preview(ema_model, step, out_dir)`` writes pictures, and
    ``describe() -> str`` is logged at the start (e.g. "no annotations: every image clean").
    """

    model: nn.Module

    def batches(self, start_step: int, rank: int, world_size: int) -> Iterator[dict[str, Any]]: ...

    def loss(self, model: nn.Module, batch: dict[str, Any], generator: torch.Generator) -> torch.Tensor: ...

    def config(self) -> dict[str, Any]: ...


@dataclass
class TrainConfig:
    """Optimization, schedule and bookkeeping settings (all JSON-serializable).

    Length: ``steps`` if given, else ``ceil(total_images / batch_size)``. ``batch_size`` is the
    GLOBAL batch (split over DDP processes). Intervals are in steps; 0 turns a feature off.
    ``bf16``: autocast where :func:`ambient_omni.device.uses_bf16` says so. ``compile``: the loss's forward
    and backward run through ``torch.compile`` (weights, EMA and checkpoints stay the plain module's; a
    compile that fails at the first step falls back to eager with a warning).
    ``resume``: ``"auto"`` continues from the latest complete checkpoint if there is one,
    ``"require"`` fails without one, ``"never"`` fails if the run folder already has one.
    """

    total_images: int = 100_000
    steps: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    lr_rampup_images: int = 10_000
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    grad_clip: float | None = None
    ema_halflife_images: float = 10_000.0
    ema_rampup_ratio: float | None = 0.05
    ema_decay: float | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50
    preview_every: int = 0
    seed: int = 0
    device: str | None = None
    bf16: bool = True
    compile: bool = False
    progress: bool = True
    tensorboard: bool = False
    resume: str = "auto"

    @property
    def total_steps(self) -> int:
        """Number of optimizer steps of the whole run."""
        return self.steps if self.steps is not None else math.ceil(self.total_images / self.batch_size)

    def validate(self) -> None:
        """Raise :class:`AmbientError` naming the first bad setting (also the device: it must exist here)."""
        if self.batch_size <= 0:
            raise AmbientError(f"--batch must be positive, got {self.batch_size}")
        if self.steps is None and not (isinstance(self.total_images, int) and self.total_images > 0):
            raise AmbientError(f"the run length must be a positive number of images (--kimg/--images), "
                               f"got {self.total_images}")
        for ok, message in self._checks():
            if not ok:
                raise AmbientError(message)
        EMASchedule(self.ema_halflife_images, self.ema_rampup_ratio, self.ema_decay)  # raises on bad EMA settings
        if self.device is not None:
            checked_device(self.device)

    def _checks(self) -> list[tuple[bool, str]]:
        """``(ok, message)`` per scalar setting (NaN fails every comparison, so it fails here too)."""
        return [
            (self.total_steps > 0, "the run must have at least one step (--kimg/--images/--steps)"),
            (math.isfinite(self.lr) and self.lr > 0, f"--lr must be positive and finite, got {self.lr}"),
            (self.lr_rampup_images >= 0, f"--lr-rampup must be >= 0, got {self.lr_rampup_images}"),
            (self.resume in ("auto", "require", "never"), "resume must be auto, require or never"),
            (self.keep_checkpoints >= 1, f"--keep must be at least 1, got {self.keep_checkpoints}"),
            (self.grad_clip is None or self.grad_clip > 0, f"--grad-clip must be positive, got {self.grad_clip}"),
            (self.checkpoint_every >= 0, f"--checkpoint-every must be >= 0 (0: only at the end), got {self.checkpoint_every}"),
            (self.log_every >= 0, f"--log-every must be >= 0 (0: only at the end), got {self.log_every}"),
            (self.preview_every >= 0, f"--preview-every must be >= 0 (0: off), got {self.preview_every}"),
        ]

    def to_json(self) -> dict[str, Any]:
        """The config as a JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class NonFiniteError(AmbientError):
    """Training produced a NaN or Inf loss or gradient; nothing of that step was saved."""


def step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """The generator for all random draws of ``step`` on ``rank`` (noise, dropout of labels...)."""
    return seeding.generator(seed, _PURPOSE_STEP, step, rank, device=device)


def learning_rate(step: int, config: TrainConfig) -> float:
    """``lr * min(1, (step + 1) * B / rampup_images)``: linear warm-up over the first images."""
    if config.lr_rampup_images <= 0:
        return config.lr
    return config.lr * min(1.0, (step + 1) * config.batch_size / config.lr_rampup_images)


@contextlib.contextmanager
def _seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with the global torch RNG seeded by ``seed``, restoring the outside state after.

    Modules that draw from the global RNG (``nn.Dropout``, third-party networks) thus depend only
    on (seed, step, rank) too; the state outside training steps is left as it was.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(seed)
        yield


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class _Interval:
    """Running sums for one logging interval."""

    def __init__(self) -> None:
        self.loss_sum = self.loss_sq = self.count = self.grad_sum = 0.0
        self.steps = 0
        self.start = time.perf_counter()

    def add(self, stats: torch.Tensor, grad_norm: float) -> None:
        self.loss_sum += float(stats[0])
        self.loss_sq += float(stats[1])
        self.count += float(stats[2])
        self.grad_sum += grad_norm
        self.steps += 1

    def summary(self) -> dict[str, float]:
        mean = self.loss_sum / max(self.count, 1.0)
        var = max(self.loss_sq / max(self.count, 1.0) - mean * mean, 0.0)
        return {"loss_mean": mean, "loss_std": math.sqrt(var), "grad_norm": self.grad_sum / max(self.steps, 1),
                "seconds": time.perf_counter() - self.start}


class Trainer:
    """Train ``task.model`` into ``run_dir`` (see the module docstring for the math).

    Files (rank 0 only): ``config.json``, ``log.jsonl``, ``checkpoints/``, ``samples/`` (previews),
    and at the end ``model/`` holding the EMA weights as a model folder.
    """

    def __init__(self, task: TrainTask, config: TrainConfig, run_dir: str | Path,
                 dist_info: DistInfo | None = None) -> None:
        config.validate()
        self.task = task
        self.config = config
        self.run_dir = Path(run_dir)
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise AmbientError(f"--out {self.run_dir}: exists and is not a folder (a run folder is created or reused)")
        self.dist = dist_info or init_distributed(config.device)
        if config.batch_size % self.dist.world_size:
            raise AmbientError(f"--batch {config.batch_size} is not divisible by the {self.dist.world_size} processes")
        self.device = self.dist.device
        self.model = task.model.to(self.device).train()
        if not config.compile:  # compiled code runs PyTorch's ops, whose GroupNorm is slow in channels_last
            # channels_last on the CPU for the U-Net with the fused kernels (the same function, +11% per step)
            self.model.to(memory_format=memory_format_for(self.model, self.device))
        self.ema = EMA(self.model, EMASchedule(config.ema_halflife_images, config.ema_rampup_ratio, config.ema_decay))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr,
                                          betas=tuple(config.adam_betas), eps=config.adam_eps)
        self.step = 0

    # ------------------------------------------------------------------ state <-> checkpoint

    def _state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        opt_tensors, opt_meta = ckpt.flatten_optimizer_state(self.optimizer.state_dict())
        tensors = {**ckpt.prefixed("model", self.model.state_dict()),
                   **ckpt.prefixed("ema", self.ema.model.state_dict()),
                   **ckpt.prefixed("optim", opt_tensors)}
        for rank, states in enumerate(all_gather_objects(self._rng_states())):
            tensors.update({f"rng.{name}.rank{rank}": torch.frombuffer(bytearray(b), dtype=torch.uint8)
                            for name, b in states.items()})
        return tensors, opt_meta

    def _rng_states(self) -> dict[str, bytes]:
        states = {"cpu": torch.get_rng_state().numpy().tobytes()}
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device).numpy().tobytes()
        return states

    def save_checkpoint(self) -> None:
        """Checkpoint the current step (collective: every rank must call it; rank 0 writes)."""
        tensors, opt_meta = self._state_tensors()
        if self.dist.is_main:
            meta = {"images_seen": self.step * self.config.batch_size, "world_size": self.dist.world_size,
                    "inputs": self._input_hashes(), "precision": self._precision(),
                    "threads": torch.get_num_threads(), "fast_ops": fast_ops_enabled(),
                    "train_config": self.config.to_json(), "task_config": self.task.config(),
                    "optimizer": opt_meta}
            ckpt.save_checkpoint(self.run_dir, self.step, tensors, meta)
            ckpt.prune_checkpoints(self.run_dir, self.config.keep_checkpoints)
        barrier()

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        resume.check_compatible(self.run_dir, meta, self._trajectory())
        resume.follow_threads(self.run_dir, meta, self.device)
        self.model.load_state_dict(ckpt.unprefixed("model", tensors))
        self.ema.model.load_state_dict(ckpt.unprefixed("ema", tensors))
        self.optimizer.load_state_dict(ckpt.unflatten_optimizer_state(ckpt.unprefixed("optim", tensors), meta["optimizer"]))
        rank = self.dist.rank
        if f"rng.cpu.rank{rank}" in tensors:
            torch.set_rng_state(tensors[f"rng.cpu.rank{rank}"])
        if self.device.type == "cuda" and f"rng.cuda.rank{rank}" in tensors:
            torch.cuda.set_rng_state(tensors[f"rng.cuda.rank{rank}"], self.device)
        self.step = int(meta["step"])

    def _trajectory(self) -> resume.Trajectory:
        """What a checkpoint must agree on to continue this run (the task config as it reads back from JSON)."""
        return resume.Trajectory(self.config.to_json(), json.loads(json.dumps(self.task.config())),
                                 self._precision(), self._input_hashes())

    def _precision(self) -> str:
        """What the loss's forward pass runs in on this device: ``bf16`` or ``fp32``."""
        return "bf16" if uses_bf16(self.device, self.config.bf16) else "fp32"

    def _input_hashes(self) -> dict[str, str]:
        """The task's ``input_hashes()`` (content hashes of input files its config names only by name, e.g.
        the annotation file), recorded in every checkpoint; ``{}`` for a task without the method."""
        return dict(getattr(self.task, "input_hashes", dict)())

    def adopt_shorter_run(self, others: Iterable[str | Path]) -> ckpt.CheckpointRef | None:
        """Start this run from another run's checkpoint on the same trajectory (call before :meth:`run`).

        Nothing happens if this run already has a checkpoint or resuming is off. Otherwise, among the
        newest checkpoints of the run folders ``others``, the latest one with the same trajectory
        settings and task config (what resuming requires) at a step <= ``total_steps`` is copied into
        this run's ``checkpoints/`` with the log lines up to its step, and the run folder records where it
        came from (``adopted.json``: the run and the step). The learning rate and EMA
        schedules depend only on the step, not on the run's length, and resuming is exact, so the result
        equals training this run from scratch: a longer budget costs only the extra steps.
        """
        if self.config.resume == "never" or ckpt.find_latest_checkpoint(self.run_dir) is not None:
            return None
        best = resume.find_adoptable(others, self.config.total_steps, self._trajectory)
        if best is not None and self.dist.is_main:
            resume.adopt_checkpoint(best, self.run_dir)
        barrier()
        return best

    def _maybe_resume(self) -> None:
        """Continue from the newest intact checkpoint (``resume`` allowing: :func:`.resume.resume_point`) or
        start at step 0; the log keeps only the lines up to the step continued from."""
        loaded = resume.resume_point(self.run_dir, self.config.resume, self.dist.is_main)
        if loaded is not None:
            self._restore(loaded[1], loaded[2])
        if self.dist.is_main:
            truncate_log(self.run_dir / "log.jsonl", self.step)

    # ------------------------------------------------------------------ the loop

    def _write_run_config(self) -> None:
        path = self.run_dir / "config.json"
        record = {"format": "ambient-omni-run", "version": 1, "train": self.config.to_json(),
                  "task": self.task.config(), "world_size": self.dist.world_size,
                  "inputs": dict(getattr(self.task, "input_paths", dict)())}
        if path.exists():
            record["previous"] = {k: v for k, v in read_json(path).items() if k != "previous"}
        write_json(path, record)

    def _train_step(self, batch: dict[str, Any], model: nn.Module) -> tuple[torch.Tensor, float]:
        """One optimizer step; returns the all-reduced (sum, sum of squares, count) of the losses and the grad norm."""
        cfg, step = self.config, self.step
        lr = learning_rate(step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        generator = step_generator(cfg.seed, step, self.dist.rank, self.device)
        with _seeded_global_rng(seeding.derive_seed(cfg.seed, _PURPOSE_GLOBAL, step, self.dist.rank), self.device):
            with autocast(self.device, enabled=cfg.bf16):
                losses = self.task.loss(model, _to_device(batch, self.device), generator)
            losses = losses.float()
        if losses.ndim != 1:
            raise AmbientError(f"task loss must return per-sample losses of shape (B,), got {tuple(losses.shape)}")
        (losses.sum() * (self.dist.world_size / cfg.batch_size)).backward()
        stats = torch.stack([losses.sum(), losses.square().sum(), torch.tensor(float(losses.numel()), device=self.device)])
        stats = all_reduce_sum(stats.detach()).cpu()
        max_norm = cfg.grad_clip if cfg.grad_clip is not None else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        loss_mean = float(stats[0] / stats[2])
        if not (math.isfinite(loss_mean) and math.isfinite(grad_norm)):
            raise NonFiniteError(f"step {step}: non-finite {'loss' if not math.isfinite(loss_mean) else 'gradient norm'} "
                                 f"(loss {loss_mean}, grad norm {grad_norm}); training stopped before the update, "
                                 f"the last checkpoint in {self.run_dir / 'checkpoints'} is intact (lower --lr or set --grad-clip)")
        self.optimizer.step()
        self.step += 1
        self.ema.update(self.model, self.step * cfg.batch_size, cfg.batch_size)
        return stats, grad_norm

    def _wrap(self) -> nn.Module:
        """The module the loss calls: ``self.model``, inside DDP with several processes (compiled last)."""
        model: nn.Module = self.model
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            # static_graph: parameters the loss never uses (e.g. a U-Net's encoder-only head) are fine,
            # as long as the used set is the same every step.
            model = DistributedDataParallel(self.model, device_ids=ids, static_graph=True)
        return torch.compile(model) if self.config.compile else model

    def _first_compiled_step(self, batch: dict[str, Any], model: nn.Module) -> tuple[tuple[torch.Tensor, float], nn.Module]:
        """Run the first step through the compiled module; if compiling fails, warn and go on eager."""
        import warnings

        try:
            return self._train_step(batch, model), model
        except (NonFiniteError, AmbientError):
            raise
        except Exception as err:  # noqa: BLE001 - any compiler/backend failure: fall back to eager
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); training eager", stacklevel=2)
            eager = model._orig_mod  # type: ignore[attr-defined]
            return self._train_step(batch, eager), eager

    def _preview(self) -> None:
        make_preview = getattr(self.task, "make_preview", None)
        if make_preview is not None and self.dist.is_main:
            make_preview(self.ema.model, self.step, self.run_dir / "samples")

    def _every(self, interval: int) -> bool:
        return interval > 0 and self.step % interval == 0

    def run(self) -> Path:
        """Train to ``config.total_steps`` (resuming if allowed) and return the final model folder. The run
        folder is locked meanwhile (rank 0): a second trainer on the same folder is an error, not a mix."""
        lock = exclusive_lock(self.run_dir / ".lock", f"run folder {self.run_dir}") if self.dist.is_main \
            else contextlib.nullcontext()
        with lock:
            return self._run()

    def _run(self) -> Path:
        from tqdm.auto import tqdm

        cfg, main = self.config, self.dist.is_main
        self._maybe_resume()
        logger = RunLogger(self.run_dir, enabled=main, tensorboard=cfg.tensorboard)
        if main:
            self._write_run_config()
            logger.log({"step": self.step, "event": "resume" if self.step else "start",
                        "world_size": self.dist.world_size, "device": str(self.device),
                        "precision": self._precision(), "threads": torch.get_num_threads(),
                        "total_steps": cfg.total_steps, "task": getattr(self.task, "describe", lambda: "")()})
        model = self._wrap()
        untried_compile = cfg.compile
        bar = tqdm(total=cfg.total_steps, initial=self.step, disable=not (main and cfg.progress),
                   unit="step", dynamic_ncols=True)
        interval, t0 = _Interval(), time.time()
        batches = self.task.batches(self.step, self.dist.rank, self.dist.world_size)
        try:
            while self.step < cfg.total_steps:
                batch = next(batches, None)
                if batch is None:
                    raise AmbientError(f"the task's data ran out at step {self.step} of {cfg.total_steps}")
                try:
                    if untried_compile:
                        untried_compile = False
                        (stats, grad_norm), model = self._first_compiled_step(batch, model)
                        if not hasattr(model, "_orig_mod"):
                            logger.log({"step": self.step, "event": "compile-fallback"})
                    else:
                        stats, grad_norm = self._train_step(batch, model)
                except NonFiniteError as err:
                    logger.log({"step": self.step, "event": "error", "error": str(err)})
                    raise
                interval.add(stats, grad_norm)
                bar.update(1)
                if self._every(cfg.log_every) or self.step == cfg.total_steps:
                    summary = interval.summary()
                    speed = interval.steps * cfg.batch_size / max(summary.pop("seconds"), 1e-9)
                    logger.log({"step": self.step, "images_seen": self.step * cfg.batch_size,
                                "lr": learning_rate(self.step - 1, cfg), "images_per_s": speed,
                                "time_s": time.time() - t0, **summary})
                    bar.set_postfix(loss=f"{summary['loss_mean']:.4f}", img_s=f"{speed:.0f}")
                    interval = _Interval()
                if self._every(cfg.checkpoint_every) or self.step == cfg.total_steps:
                    self.save_checkpoint()
                if self._every(cfg.preview_every) or (cfg.preview_every > 0 and self.step == cfg.total_steps):
                    self._preview()
        finally:
            bar.close()
            logger.close()
            del batches
        return self._finish()

    def _finish(self) -> Path:
        folder = self.run_dir / "model"
        if self.dist.is_main:
            ckpt.save_model(folder, self.ema.model, self.task.config())
        barrier()
        return folder
