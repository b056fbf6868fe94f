"""Process-group setup for ``torchrun`` (DDP) and the few collectives the training loop needs.

A run started by ``torchrun --nproc_per_node K`` has ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``
in its environment; a plain ``python`` run has none and is rank 0 of 1. The backend is gloo on
CPU and nccl on CUDA. Rank 0 is the only process that writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ambient_omni.device import pick_device
from ambient_omni.errors import AmbientError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` processes, computing on ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def checked_device(name: str | None = None) -> torch.device:
    """:func:`~ambient_omni.device.pick_device` with a clear :class:`AmbientError` for a name torch does not
    know (``banana``) or a device this machine lacks (``cuda`` on a CPU-only torch, ``cuda:3`` with 2 GPUs)."""
    source = "--device" if name else "$AMBIENT_DEVICE"
    try:
        dev = pick_device(name)
    except RuntimeError:
        raise AmbientError(f"{source} {name or os.environ.get('AMBIENT_DEVICE')!r}: not a torch device "
                           "(expected cpu, cuda, cuda:N, mps, ...)") from None
    if dev.type == "cuda":
        _check_cuda(dev, source)
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise AmbientError(f"{source} {dev}: MPS is not available on this machine")
    return dev


def _check_cuda(dev: torch.device, source: str) -> None:
    """Raise when ``dev`` (a CUDA device) does not exist here."""
    if not torch.cuda.is_available():
        why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise AmbientError(f"{source} {dev}: CUDA is not available ({why}); use --device cpu")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise AmbientError(f"{source} {dev}: this machine has {count} CUDA device(s)")


def init_distributed(device: str | None = None) -> DistInfo:
    """Read RANK / WORLD_SIZE / LOCAL_RANK and join the process group when WORLD_SIZE > 1.

    On CUDA each process takes ``cuda:LOCAL_RANK`` (unless ``device`` names one explicitly) and
    nccl; on CPU gloo. Calling it again in a process that already joined reuses the group.
    """
    rank = _env_int("RANK", 0)
    world_size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = checked_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def shutdown_distributed() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place, and returned); identity with one process."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: Any) -> list[Any]:
    """Collect one small Python object from every rank (in rank order)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send one small Python object from rank ``src`` to every rank."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    """Wait for every process (no-op without a process group)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
