"""Checkpoints and model folders: safetensors for tensors, JSON for everything else, no pickles.

A checkpoint of step ``k`` is two files in ``RUN/checkpoints/``:

- ``ckpt-<k:08d>.safetensors``: every tensor (``model.*``, ``ema.*``, ``optim.state.<i>.<key>``,
  RNG states ``rng.*`` as uint8 tensors);
- ``ckpt-<k:08d>.json``: step, configs, the optimizer's non-tensor state, and the byte size and
  SHA-256 of the safetensors file.

Both are written atomically (temporary file + ``os.replace``), the JSON LAST: it is the commit
marker, so a checkpoint whose JSON is missing or disagrees with its tensor file is incomplete and
ignored by :func:`find_latest_checkpoint`.

A model folder holds ``config.json`` (``{"kind": ..., "network": {...}, ..., "sha256": ...}``) and
``model.safetensors``; :func:`load_model` rebuilds the module from the JSON alone and checks the weights
against the recorded SHA-256.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ambient_omni.errors import AmbientError
from ambient_omni.files import atomic_write_bytes, read_json, write_json

CHECKPOINT_FORMAT = "ambient-omni-checkpoint"
MODEL_FORMAT = "ambient-omni-model"
FORMAT_VERSION = 1
ADOPTED_RECORD = "adopted.json"
"""A run folder's record of the run whose checkpoint it started from (:meth:`Trainer.adopt_shorter_run`)."""
_CKPT_RE = re.compile(r"^ckpt-(\d{8})\.json$")

ModelBuilder = Callable[[dict[str, Any]], nn.Module]
_MODEL_BUILDERS: dict[str, ModelBuilder] = {}


# ----------------------------------------------------------------------------- tensors <-> bytes


def _cpu_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies (safetensors refuses shared or strided storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{prefix + "." + key: tensor}``."""
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of ``tensors`` under ``prefix.``, with the prefix removed."""
    head = prefix + "."
    return {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}


# ----------------------------------------------------------------------------- optimizer state


def flatten_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (``state.<param>.<key>``) and JSON.

    Non-tensor per-parameter values (plain numbers) and the ``param_groups`` go to JSON; tuples
    become lists and are turned back by :func:`unflatten_optimizer_state`.
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state`, ready for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, entry in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# ----------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class CheckpointRef:
    """A complete checkpoint on disk."""

    step: int
    json_path: Path
    tensor_path: Path


def checkpoint_paths(run_dir: str | Path, step: int) -> tuple[Path, Path]:
    """``(tensor file, json file)`` of step ``step`` in ``run_dir/checkpoints``."""
    base = Path(run_dir) / "checkpoints" / f"ckpt-{step:08d}"
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def save_checkpoint(run_dir: str | Path, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> CheckpointRef:
    """Write the checkpoint of ``step`` atomically: tensor file first, JSON commit marker last."""
    tensor_path, json_path = checkpoint_paths(run_dir, step)
    data = st_save(_cpu_tensors(tensors))
    atomic_write_bytes(tensor_path, data)
    record = dict(meta, format=CHECKPOINT_FORMAT, version=FORMAT_VERSION, step=step,
                  tensors={"file": tensor_path.name, "bytes": len(data), "sha256": _sha256(data)})
    write_json(json_path, record)
    return CheckpointRef(step, json_path, tensor_path)


def _complete(json_path: Path) -> CheckpointRef | None:
    """The checkpoint behind ``json_path`` if its JSON parses and its tensor file has the right size."""
    try:
        meta = read_json(json_path)
        tensor_path = json_path.with_name(meta["tensors"]["file"])
        if meta.get("format") != CHECKPOINT_FORMAT or tensor_path.stat().st_size != meta["tensors"]["bytes"]:
            return None
        return CheckpointRef(int(meta["step"]), json_path, tensor_path)
    except (ValueError, KeyError, TypeError, OSError):
        return None


def list_checkpoints(run_dir: str | Path) -> list[CheckpointRef]:
    """Complete checkpoints of a run, oldest first (incomplete ones are skipped)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    refs = [_complete(p) for p in folder.iterdir() if _CKPT_RE.match(p.name)]
    return sorted((r for r in refs if r is not None), key=lambda r: r.step)


def find_latest_checkpoint(run_dir: str | Path) -> CheckpointRef | None:
    """The newest complete checkpoint of a run, or None."""
    refs = list_checkpoints(run_dir)
    return refs[-1] if refs else None


def copy_checkpoint(ref: CheckpointRef, run_dir: str | Path) -> CheckpointRef:
    """Copy a complete checkpoint into ``run_dir/checkpoints`` (tensor file first, JSON marker last)."""
    tensor_path, json_path = checkpoint_paths(run_dir, ref.step)
    tensor_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(tensor_path, ref.tensor_path.read_bytes())
    atomic_write_bytes(json_path, ref.json_path.read_bytes())
    return CheckpointRef(ref.step, json_path, tensor_path)


def load_checkpoint(ref: CheckpointRef) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint, verifying the tensor file against the SHA-256 in its JSON."""
    meta = read_json(ref.json_path)
    data = ref.tensor_path.read_bytes()
    if _sha256(data) != meta["tensors"]["sha256"]:
        raise AmbientError(f"{ref.tensor_path}: contents do not match the SHA-256 in {ref.json_path.name}")
    try:
        return st_load(data), meta
    except Exception as err:  # safetensors raises its own error types on a malformed header
        raise AmbientError(f"{ref.tensor_path}: not a readable safetensors file ({err})") from None


def load_latest_intact(run_dir: str | Path) -> tuple[CheckpointRef, dict[str, torch.Tensor], dict[str, Any]] | None:
    """The newest checkpoint whose tensor file matches its SHA-256, loaded: ``(ref, tensors, meta)``, or None.

    A newer one that fails the check (same size, other bytes: damaged on disk) is skipped with a warning
    naming it, so a run resumes from the intact one before it instead of stopping.
    """
    for ref in reversed(list_checkpoints(run_dir)):
        try:
            tensors, meta = load_checkpoint(ref)
        except (AmbientError, OSError, ValueError, KeyError, TypeError) as err:
            warnings.warn(f"{err}; skipping the damaged checkpoint of step {ref.step} and resuming from an "
                          "earlier one", UserWarning, stacklevel=2)
            continue
        return ref, tensors, meta
    return None


def checkpoint_files(run_dir: str | Path) -> list[Path]:
    """Every ``ckpt-*`` file in ``run_dir/checkpoints`` (complete or not), sorted by name."""
    folder = Path(run_dir) / "checkpoints"
    return sorted(folder.glob("ckpt-*")) if folder.is_dir() else []


def remove_stale_temporaries(run_dir: str | Path) -> list[Path]:
    """Delete the ``.ckpt-*.tmp`` files a process killed mid-write left in ``run_dir/checkpoints``; returns them.
    Call it only where no other process writes checkpoints into the same folder (rank 0, at the start)."""
    folder = Path(run_dir) / "checkpoints"
    stale = sorted(folder.glob(".ckpt-*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` complete checkpoints (JSON first, so none is half-present)."""
    if keep <= 0:
        return
    for ref in list_checkpoints(run_dir)[:-keep]:
        ref.json_path.unlink(missing_ok=True)
        ref.tensor_path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- model folders


def register_model_kind(kind: str, builder: ModelBuilder) -> None:
    """Teach :func:`build_model` a model kind: ``builder(config) -> nn.Module``."""
    _MODEL_BUILDERS[kind] = builder


def build_model(config: dict[str, Any]) -> nn.Module:
    """Build an untrained module from a model config (``kind`` + ``network``).

    Kinds registered with :func:`register_model_kind` use their builder; every other kind is
    ``networks.registry.build_network(config["network"])`` (whose ``denoiser`` network kind is
    already ``EDMPrecond(UNet)``).
    """
    if "network" not in config:
        raise AmbientError("model config has no 'network' entry")
    builder = _MODEL_BUILDERS.get(str(config.get("kind")))
    if builder is not None:
        return builder(config)
    from ambient_omni.networks.registry import build_network

    return build_network(config["network"])


def save_model(folder: str | Path, model: nn.Module, config: dict[str, Any]) -> Path:
    """Write ``model`` as a model folder: ``model.safetensors`` then ``config.json`` (the marker)."""
    folder = Path(folder)
    data = st_save(_cpu_tensors(model.state_dict()))
    atomic_write_bytes(folder / "model.safetensors", data)
    write_json(folder / "config.json", dict(config, format=MODEL_FORMAT, version=FORMAT_VERSION,
                                            sha256=_sha256(data)))
    return folder


def read_model_config(folder: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a model folder, with a clear error when it is not one."""
    path = Path(folder) / "config.json"
    if not path.is_file() or not (Path(folder) / "model.safetensors").is_file():
        raise AmbientError(f"{folder}: not a model folder (needs config.json and model.safetensors)")
    return read_json(path)


def model_folder(path: str | Path) -> Path:
    """A run folder's ``model/`` or the folder itself when it is a model folder."""
    p = Path(path)
    return p / "model" if (p / "model" / "config.json").is_file() else p


def read_model_weights(folder: str | Path, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of ``folder/model.safetensors``, verified against the SHA-256 that ``config`` (its
    ``config.json``) records: a changed file is an :class:`AmbientError` naming it (folders whose config
    records no digest are read as they are)."""
    path = Path(folder) / "model.safetensors"
    data = path.read_bytes()
    expected = config.get("sha256")
    if expected is not None and _sha256(data) != expected:
        raise AmbientError(f"{path}: contents do not match the SHA-256 recorded in {path.with_name('config.json')} "
                           "(the file was changed or damaged after it was saved)")
    try:
        return st_load(data)
    except Exception as err:  # safetensors raises its own error types on a malformed header
        raise AmbientError(f"{path}: not a readable safetensors file ({err})") from None


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a saved model from its folder (no pickles; the weights verified against the SHA-256 in
    ``config.json``) and return it in eval mode on ``device``."""
    config = read_model_config(folder)
    model = build_model(config)
    state = read_model_weights(folder, config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise AmbientError(f"{folder}/model.safetensors: does not match config.json "
                           f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})")
    return model.to(device).eval()
