"""Where a run starts: find, check and adopt an earlier checkpoint (the :class:`~ambient_omni.training.loop.Trainer`
then restores its tensors).

A checkpoint continues a run exactly only if it lies on the run's trajectory (:class:`Trajectory`): the same
settings that change the optimization (:data:`TRAJECTORY_KEYS`), the same task config, the same precision
and the same contents of the input files the task config names only by name. The learning-rate and EMA
schedules depend only on the step, not on the run's length, so a checkpoint of a shorter run on the same
trajectory is as good as one of this run (:func:`find_adoptable`, :func:`adopt_checkpoint`).
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ambient_omni.errors import AmbientError
from ambient_omni.files import exclusive_lock, read_json, write_json
from ambient_omni.training import checkpoint as ckpt
from ambient_omni.training.logging import truncate_log

TRAJECTORY_KEYS = ("batch_size", "lr", "lr_rampup_images", "adam_betas", "adam_eps", "grad_clip",
                   "ema_halflife_images", "ema_rampup_ratio", "ema_decay", "seed")
"""Settings that change the trajectory: a resumed run must agree with the checkpoint on them."""


@dataclass(frozen=True)
class Trajectory:
    """What a checkpoint must agree on with a run to continue it.

    ``train_config``: the run's ``TrainConfig.to_json()``; ``task_config``: the task config as it reads
    back from a checkpoint's JSON; ``precision``: ``bf16`` or ``fp32``, what the loss's forward pass runs
    in; ``inputs``: content hashes of the input files (the task's ``input_hashes()``).
    """

    train_config: dict[str, Any]
    task_config: Any
    precision: str
    inputs: dict[str, str]

    def differences(self, meta: dict[str, Any]) -> list[str]:
        """What makes the checkpoint ``meta`` lie on another trajectory than this one (empty: the same)."""
        saved = meta["train_config"]
        diffs = [k for k in TRAJECTORY_KEYS if saved.get(k) != self.train_config.get(k)]
        if meta["task_config"] != self.task_config:
            diffs.append("task/data/network settings")
        if meta.get("precision", self.precision) != self.precision:  # older checkpoints: not recorded
            diffs.append(f"precision ({meta['precision']} in the checkpoint, {self.precision} now; --no-bf16 "
                         "and AMBIENT_CPU_BF16 choose)")
        # checkpoints from before the record carry no input hashes: nothing to compare
        changed = [k for k in meta.get("inputs", {}) if meta["inputs"][k] != self.inputs.get(k)]
        if changed:
            diffs.append(f"contents of {', '.join(changed)} (a file of the same name now holds other data)")
        return diffs


def check_compatible(run_dir: Path, meta: dict[str, Any], trajectory: Trajectory) -> None:
    """Raise :class:`AmbientError` naming what differs when the checkpoint ``meta`` of ``run_dir`` cannot
    continue a run on ``trajectory``."""
    diffs = trajectory.differences(meta)
    if diffs:
        raise AmbientError(f"{run_dir}: cannot resume, the checkpoint was made with different "
                           f"{', '.join(diffs)}; use the same settings or a new --out folder")


def follow_threads(run_dir: Path, meta: dict[str, Any], device: torch.device) -> None:
    """On CPU, resume with the torch thread count the checkpoint was made with: float sums differ
    between thread counts, so an exact resume needs the same count (older checkpoints: not recorded)."""
    saved = meta.get("threads")
    if device.type == "cpu" and isinstance(saved, int) and saved != torch.get_num_threads():
        print(f"{run_dir}: resuming with {saved} torch thread(s), as the checkpoint was made "
              f"(not {torch.get_num_threads()}), so that the run continues exactly")
        torch.set_num_threads(saved)


def find_adoptable(others: Iterable[str | Path], total_steps: int,
                   trajectory: Callable[[], Trajectory]) -> ckpt.CheckpointRef | None:
    """Among the newest checkpoints at a step <= ``total_steps`` of the run folders ``others``, the latest
    one on the trajectory that ``trajectory()`` gives (called only if some run has such a checkpoint: it
    hashes the input files), or None."""
    expected, candidates = None, []
    for other in others:  # a run's checkpoints share one trajectory: check its newest usable one
        usable = [r for r in ckpt.list_checkpoints(other) if r.step <= total_steps]
        if usable:
            expected = expected or trajectory()
            if not expected.differences(read_json(usable[-1].json_path)):
                candidates.append(usable[-1])
    return max(candidates, key=lambda r: r.step, default=None)


def adopt_checkpoint(ref: ckpt.CheckpointRef, run_dir: Path) -> None:
    """Copy another run's checkpoint ``ref`` into ``run_dir/checkpoints`` with that run's log lines up to its
    step, recording where it came from (``adopted.json``: the run and the step). Rank 0 only; the run folder
    is locked meanwhile."""
    with exclusive_lock(run_dir / ".lock", f"run folder {run_dir}"):
        write_json(run_dir / ckpt.ADOPTED_RECORD,  # the record first: a kill mid-copy leaves
                   {"run": str(ref.json_path.parent.parent.resolve()), "step": ref.step})  # it behind
        ckpt.copy_checkpoint(ref, run_dir)
        log = ref.json_path.parent.parent / "log.jsonl"
        if log.is_file():
            shutil.copyfile(log, run_dir / "log.jsonl")
            truncate_log(run_dir / "log.jsonl", ref.step)


def resume_point(run_dir: Path, mode: str, is_main: bool
                 ) -> tuple[ckpt.CheckpointRef, dict[str, torch.Tensor], dict[str, Any]] | None:
    """The newest intact checkpoint of ``run_dir`` to continue from, loaded (``(ref, tensors, meta)``), or
    None to start at step 0. ``mode`` is ``TrainConfig.resume``: ``never`` refuses a folder with
    checkpoints, ``require`` a folder without one. Stale temporary files of a killed write are removed first
    (rank 0). With none to continue from, the folder must hold no trace of an earlier run that starting over
    would overwrite (:func:`_refuse_leftovers`)."""
    if is_main:
        ckpt.remove_stale_temporaries(run_dir)
    if mode == "never" and ckpt.find_latest_checkpoint(run_dir) is not None:
        raise AmbientError(f"{run_dir}: already holds checkpoints; resume it or choose a new --out")
    loaded = ckpt.load_latest_intact(run_dir) if mode != "never" else None
    if loaded is None and mode == "require":
        raise AmbientError(f"{run_dir}: --resume given but there is no complete checkpoint")
    if loaded is None:
        _refuse_leftovers(run_dir, is_main)
    return loaded


def _refuse_leftovers(run_dir: Path, is_main: bool) -> None:
    """Starting at step 0 in a folder with checkpoint files (truncated, damaged or without their JSON
    marker) or a finished model would overwrite them: an error saying what is there and how to start
    over. A log of steps that no checkpoint saved (a run stopped before its first one) only warns."""
    files = ckpt.checkpoint_files(run_dir)
    model = run_dir / "model" / "config.json"
    if files or model.is_file():
        what = (f"{len(files)} checkpoint file(s) that make no intact checkpoint "
                f"({', '.join(p.name for p in files[:3])}{', ...' if len(files) > 3 else ''}: truncated, damaged "
                "or without their .json marker)" if files else f"a finished model ({model.parent})")
        raise AmbientError(f"{run_dir}: nothing to resume from, but the folder holds {what}; starting over "
                           f"here would overwrite them and truncate log.jsonl. To start over, use a new --out "
                           f"(or delete {run_dir}); to resume, restore the damaged files")
    last = _last_logged_step(run_dir / "log.jsonl")
    if last > 0 and is_main:  # stacklevel 4: Trainer._run (past resume_point, _maybe_resume)
        warnings.warn(f"{run_dir / 'log.jsonl'}: records training up to step {last}, but no checkpoint was "
                      "saved; starting again at step 0 (those log lines are dropped)", UserWarning, stacklevel=4)


def _last_logged_step(path: Path) -> int:
    """The largest ``step`` that a run log records (0 without a log; torn or odd lines are ignored)."""
    if not path.is_file():
        return 0
    steps = [0]
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            step = json.loads(line).get("step", 0)
        except (json.JSONDecodeError, AttributeError):
            continue
        steps.append(step if isinstance(step, int) else 0)
    return max(steps)
