"""Dataset folders on disk: write a :class:`~ambient_omni.data.mixed.MixedData`, load and validate one.

A dataset folder (docs/ARCHITECTURE.md) holds

    images.npy      uint8 (N, C, H, W); pixel code u means u / 127.5 - 1
    labels.npy      int64 (N,), -1 = no label
    manifest.jsonl  one line per image: id, source, source_index, label, provenance
    dataset.json    format "ambient-omni-dataset", version 1, seed, sources, specs, counts,
                    recipe, command and the sha256 of images.npy, labels.npy and manifest.jsonl
    README.md       a human summary

A latent dataset folder (``ambient latents encode``, :mod:`ambient_omni.latents`) is the same with float32
latents in ``images.npy`` and a ``latent`` entry in dataset.json (the autoencoder and the per-channel scale).

Image ids are ``0..N-1`` in file order. The same data gives the same bytes in every file (nothing time- or
path-dependent is written); :func:`load_dataset` checks every file against its recorded sha256, the manifest
against the labels and the counts against dataset.json.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ambient_omni.data.imageset import from_uint8
from ambient_omni.data.mixed import PROVENANCE_PATTERN, MixedData
from ambient_omni.errors import AmbientError
from ambient_omni.files import atomic_write_bytes, atomic_write_text, read_json, write_json

FORMAT = "ambient-omni-dataset"
VERSION = 1
FILES = ("images.npy", "labels.npy", "manifest.jsonl", "dataset.json")


# ----------------------------------------------------------------------------- writing

def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest_bytes(data: MixedData) -> bytes:
    lines = [json.dumps({"id": i, "source": data.sources[i], "source_index": int(data.source_index[i]),
                         "label": int(data.labels[i]), "provenance": data.provenance[i]}, sort_keys=True)
             for i in range(len(data))]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _images_line(info: dict[str, Any]) -> str:
    """What images.npy holds: uint8 pixel codes, or the latents of an autoencoder."""
    if "latent" not in info:
        return "uint8 (N, C, H, W); code u is the value u / 127.5 - 1."
    return ("float32 (N, C, H, W) latents of the autoencoder in dataset.json['latent'], scaled per channel to the "
            "standard deviation sigma_data; decode with `ambient_omni.latents.decode_latents`.")


def _readme(info: dict[str, Any]) -> str:
    """The human summary: counts, shape, how it was made and the command."""
    c, h, w = info["shape"]
    rows = "\n".join(f"| `{name}` | {count} |" for name, count in info["counts"].items())
    recipe = json.dumps(info["recipe"], indent=2, sort_keys=True)
    command = info["command"] or "(built through the Python API)"
    return (f"# Mixed-quality dataset\n\n{info['n']} images of {h}x{w} pixels with {c} channel(s), "
            f"seed {info['seed']}.\n\n| provenance | images |\n|---|---|\n{rows}\n\n"
            f"Sources: {', '.join(f'`{s}`' for s in info['sources'])}.\n"
            f"Corruptions: {', '.join(f'`{s}`' for s in info['specs']) or 'none'}.\n\n"
            f"## How it was made\n\n    {command}\n\nRecipe:\n\n```json\n{recipe}\n```\n\n"
            f"## Files\n\n- `images.npy`: {_images_line(info)}\n"
            "- `labels.npy`: int64 (N,), -1 = no label.\n"
            "- `manifest.jsonl`: per image id, source, source_index, label, provenance.\n"
            "- `dataset.json`: format, seed, counts, recipe and sha256 checksums.\n\n"
            "Load with `ambient_omni.data.dataset_folder.load_dataset(folder)`.\n")


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise AmbientError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise AmbientError(f"{folder}: folder is not empty; choose another or pass overwrite (--overwrite)")
        (folder / "dataset.json").unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)


def write_dataset(folder: str | os.PathLike, data: MixedData, command: str | None = None,
                  overwrite: bool = False) -> dict[str, Any]:
    """Write ``data`` as a dataset folder (atomic files, ``dataset.json`` last); return its info.

    A non-empty folder is refused unless ``overwrite``. ``command`` (no output path in it, so
    the bytes do not depend on where the folder is) is recorded in dataset.json and README.md.
    """
    folder = Path(folder)
    if len(data) == 0:
        raise AmbientError(f"{folder}: no images to write (an empty dataset; check the source, its @class= filter "
                           "and --n)")
    _prepare_folder(folder, overwrite)
    blobs = {"images.npy": _npy_bytes(data.images), "labels.npy": _npy_bytes(data.labels.astype(np.int64)),
             "manifest.jsonl": _manifest_bytes(data)}
    info = {"format": FORMAT, "version": VERSION, "n": len(data), "shape": list(data.images.shape[1:]),
            "seed": data.seed, "sources": _unique(data.sources),
            "specs": _unique([p.partition(":")[2] for p in data.provenance if p.startswith("corrupted:")]),
            "counts": data.counts(), "class_names": data.class_names, "recipe": data.recipe,
            "command": command, "sha256": {name: _sha256(blob) for name, blob in blobs.items()},
            **({"latent": data.latent} if data.latent is not None else {})}
    for name, blob in blobs.items():
        atomic_write_bytes(folder / name, blob)
    atomic_write_text(folder / "README.md", _readme(info))
    write_json(folder / "dataset.json", info)
    return info


# ----------------------------------------------------------------------------- loading

class MixedDataset(Dataset):
    """A loaded dataset folder. ``images`` (N, C, H, W) float32 in [-1, 1] (converted once; a latent folder's
    latents as they are), ``labels`` and ``ids`` int64 tensors, ``provenance``/``sources`` lists, ``source_index``,
    ``info`` (dataset.json), ``latent`` (its ``latent`` entry, None for images), ``sha256`` (hex digest of
    images.npy), ``path``."""

    def __init__(self, path: Path, codes: np.ndarray, labels: np.ndarray, records: list[dict[str, Any]],
                 info: dict[str, Any]) -> None:
        self.path = path
        self.codes = codes
        self.latent: dict[str, Any] | None = info.get("latent")
        self.images = from_uint8(codes) if self.latent is None else torch.from_numpy(codes.copy())
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.ids = torch.arange(len(records), dtype=torch.int64)
        self.provenance = [r["provenance"] for r in records]
        self.sources = [r["source"] for r in records]
        self.source_index = np.array([r["source_index"] for r in records], dtype=np.int64)
        self.info = info
        self.sha256: str = info["sha256"]["images.npy"]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "label": int(self.labels[i]), "id": int(self.ids[i])}

    def to_mixed(self) -> MixedData:
        """The records as :class:`MixedData` (e.g. to combine it with other parts)."""
        return MixedData(self.codes, self.labels.numpy(), list(self.sources), self.source_index.copy(),
                         list(self.provenance), int(self.info["seed"]),
                         [{"dataset": self.path.name, "seed": self.info["seed"], "recipe": self.info["recipe"]}],
                         list(self.info.get("class_names", [])), self.latent)


def _read_checked(folder: Path, name: str, expected: str) -> bytes:
    blob = (folder / name).read_bytes()
    if _sha256(blob) != expected:
        raise AmbientError(f"{folder / name}: sha256 does not match dataset.json (the file was modified "
                           "or replaced after the dataset was written)")
    return blob


def _load_npy(blob: bytes, path: Path) -> np.ndarray:
    try:
        return np.load(io.BytesIO(blob), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise AmbientError(f"{path}: not a readable .npy array ({err})") from None


def _check_record(record: Any, i: int, labels: np.ndarray, where: str) -> None:
    """Record ``i`` must be an object with every key, id ``i``, label ``labels[i]``, valid provenance."""
    if not isinstance(record, dict):
        raise AmbientError(f"{where}: not a JSON object")
    missing = {"id", "source", "source_index", "label", "provenance"} - set(record)
    if missing:
        raise AmbientError(f"{where}: missing keys {sorted(missing)}")
    if record["id"] != i or (i < len(labels) and record["label"] != int(labels[i])):
        raise AmbientError(f"{where}: expected id {i} with label from labels.npy, got "
                           f"id {record['id']} label {record['label']}")
    if not PROVENANCE_PATTERN.match(str(record["provenance"])):
        raise AmbientError(f"{where}: invalid provenance {record['provenance']!r}")


def _parse_manifest(blob: bytes, path: Path, labels: np.ndarray) -> list[dict[str, Any]]:
    """One record per line with ids 0..N-1 in order and labels equal to labels.npy.

    The lines are decoded in one ``json.loads`` call (fast); only when that fails are they
    decoded one by one to name the bad line.
    """
    lines = blob.decode("utf-8").splitlines()
    try:
        records = json.loads("[" + ",".join(lines) + "]")
    except json.JSONDecodeError:
        for line_no, line in enumerate(lines, start=1):
            try:
                json.loads(line)
            except json.JSONDecodeError as err:
                raise AmbientError(f"{path}:{line_no}: not valid JSON ({err})") from None
        raise AmbientError(f"{path}: not one JSON object per line") from None
    if len(records) != len(labels):
        raise AmbientError(f"{path}: {len(records)} lines for {len(labels)} images")
    for i, record in enumerate(records):
        _check_record(record, i, labels, f"{path}:{i + 1}")
    return records


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# dataset.json fields the code reads, with the type each must have (checked when present; seed always).
_INFO_TYPES: dict[str, tuple[Any, str]] = {
    "seed": (_is_int, "an integer"), "n": (_is_int, "an integer"), "class_names": (_is_str_list, "a list of strings"),
    "sources": (_is_str_list, "a list of strings"), "specs": (_is_str_list, "a list of strings"),
    "counts": (lambda v: isinstance(v, dict), "an object"),
    "shape": (lambda v: isinstance(v, list) and len(v) == 3 and all(_is_int(x) for x in v), "a list of 3 integers"),
}


def _check_info_types(info: dict[str, Any], path: Path) -> None:
    """Every field of ``dataset.json`` that the code reads has its type (an :class:`AmbientError` naming it)."""
    if "seed" not in info:
        raise AmbientError(f"{path}: no 'seed' entry")
    for key, (ok, kind) in _INFO_TYPES.items():
        if key in info and not ok(info[key]):
            raise AmbientError(f"{path}: '{key}' must be {kind}, got {info[key]!r}")
    bad = [name for name in FILES[:3] if not isinstance(info["sha256"][name], str)]
    if bad:
        raise AmbientError(f"{path}: sha256 of {', '.join(bad)} must be a hex string")


def _check_info_size(info: dict[str, Any], path: Path, shape: tuple[int, ...]) -> None:
    """``n`` and ``shape`` of ``dataset.json`` (when present) agree with ``images.npy``'s ``shape``."""
    if "n" in info and info["n"] != shape[0]:
        raise AmbientError(f"{path}: 'n' is {info['n']} but images.npy holds {shape[0]} images")
    if "shape" in info and tuple(info["shape"]) != tuple(shape[1:]):
        raise AmbientError(f"{path}: 'shape' is {info['shape']} but images.npy has {list(shape[1:])}")


def _check_images(codes: np.ndarray, info: dict[str, Any], path: Path) -> None:
    """uint8 (N, C, H, W) pixel codes, or with a ``latent`` entry (an object) finite float32 latents."""
    latent = "latent" in info
    if latent and not isinstance(info["latent"], dict):
        raise AmbientError(f"{path.parent / 'dataset.json'}: 'latent' must be an object, got {info['latent']!r}")
    kind = np.float32 if latent else np.uint8
    if codes.dtype != kind or codes.ndim != 4:
        raise AmbientError(f"{path}: expected {np.dtype(kind).name} (N, C, H, W){' latents' if latent else ''}, "
                           f"got {codes.dtype} {codes.shape}")
    if latent and not np.isfinite(codes).all():
        raise AmbientError(f"{path}: the latents are not all finite")


def load_dataset(folder: str | os.PathLike) -> MixedDataset:
    """Load and validate a dataset folder: files present, format/version, sha256 of each data
    file, dtypes and shapes, manifest ids/labels, counts equal to dataset.json."""
    folder = Path(folder)
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise AmbientError(f"{folder}: not a dataset folder (missing {', '.join(missing)})")
    try:
        info = read_json(folder / "dataset.json")
    except ValueError as err:
        raise AmbientError(str(err)) from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or info.get("version") != VERSION:
        raise AmbientError(f"{folder / 'dataset.json'}: expected format {FORMAT!r} version {VERSION}")
    sums = info.get("sha256", {})
    if not isinstance(sums, dict) or any(name not in sums for name in FILES[:3]):
        raise AmbientError(f"{folder / 'dataset.json'}: sha256 entries missing")
    _check_info_types(info, folder / "dataset.json")
    codes = _load_npy(_read_checked(folder, "images.npy", sums["images.npy"]), folder / "images.npy")
    labels = _load_npy(_read_checked(folder, "labels.npy", sums["labels.npy"]), folder / "labels.npy")
    _check_images(codes, info, folder / "images.npy")
    if labels.dtype != np.int64 or labels.shape != (codes.shape[0],):
        raise AmbientError(f"{folder / 'labels.npy'}: expected int64 ({codes.shape[0]},), got "
                           f"{labels.dtype} {labels.shape}")
    _check_info_size(info, folder / "dataset.json", codes.shape)
    records = _parse_manifest(_read_checked(folder, "manifest.jsonl", sums["manifest.jsonl"]),
                              folder / "manifest.jsonl", labels)
    counts = dict(sorted(Counter(r["provenance"] for r in records).items()))
    if counts != info.get("counts"):
        raise AmbientError(f"{folder / 'dataset.json'}: counts {info.get('counts')} differ from the "
                           f"manifest's {counts}")
    return MixedDataset(folder, codes, labels, records, info)
