"""Captions of a dataset folder's images: the caption file, template captions, and cached caption embeddings.

A caption file is JSON Lines, one ``{"id": <image id>, "text": <caption>}`` per image; every id of the dataset
exactly once (missing, duplicated or unknown ids are errors). For Fashion-MNIST, which has no captions,
:func:`template_captions` writes them from the class names and a few fixed templates: the captions then carry no
more than the class label does, said in words (the honest limit of text conditioning on this data).

Embeddings (:func:`caption_embeddings`) are all-MiniLM-L6-v2's 384-d unit vectors
(:mod:`ambient_omni.networks.text_encoder`), cached by the SHA-256 of each caption's UTF-8 bytes under
``<cache>/caption-embeddings/`` (shards of ``digests`` uint8 (M, 32) and ``embeddings`` float32 (M, 384)), so a
caption is encoded once however many datasets or runs use it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ambient_omni.data.annotations import few_ids
from ambient_omni.errors import AmbientError
from ambient_omni.files import atomic_write_text
from ambient_omni.seeding import hash64

TEMPLATES = ("a photo of a {}", "a {}", "a picture of a {}", "a black and white photo of a {}",
             "a small grey image of a {}")


def read_captions(path: str | os.PathLike, n: int) -> list[str]:
    """The captions of images ``0..n-1`` from a caption file, validated (module doc)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise AmbientError(f"{path}: cannot read the caption file ({err.strerror})") from None
    found: dict[int, str] = {}
    duplicated = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            i, text = record["id"], record["text"]
            if not isinstance(i, int) or isinstance(i, bool) or not isinstance(text, str):
                raise TypeError
        except (json.JSONDecodeError, KeyError, TypeError):
            raise AmbientError(f'{path}:{number}: need {{"id": INT, "text": STRING}}') from None
        if i in found:
            duplicated.append(i)
        found[i] = text
    if duplicated:
        raise AmbientError(f"{path}: duplicated ids {few_ids(sorted(set(duplicated)))}")
    missing = sorted(set(range(n)) - set(found))
    if missing:
        raise AmbientError(f"{path}: no caption for dataset ids {few_ids(missing)}")
    unknown = sorted(set(found) - set(range(n)))
    if unknown:
        raise AmbientError(f"{path}: captions for ids not in the dataset ({n} images): {few_ids(unknown)}")
    return [found[i] for i in range(n)]


def write_captions(path: str | os.PathLike, texts: Sequence[str]) -> None:
    """A caption file of ``texts`` (image ``i`` gets ``texts[i]``)."""
    atomic_write_text(path, "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))


def template_captions(labels: Sequence[int], class_names: Sequence[str], seed: int = 0) -> list[str]:
    """``TEMPLATES[k].format(class name)`` per image, ``k`` chosen by a hash of ``(seed, image id)``; a class
    name like ``T-shirt/top`` reads ``t-shirt or top``. Unlabelled images (-1) are an error."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise AmbientError(f"template captions need a class name for every label (labels {labels.min()}.."
                           f"{labels.max()}, {len(class_names)} class names)")
    names = [name.lower().replace("/", " or ") for name in class_names]
    picks = hash64(seed, "caption-template", np.arange(len(labels))) % np.uint64(len(TEMPLATES))
    return [TEMPLATES[int(k)].format(names[c]) for k, c in zip(picks, labels)]


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def caption_embeddings(texts: Sequence[str], cache_dir: str | os.PathLike | None = None) -> torch.Tensor:
    """Embeddings ``(len(texts), 384)`` of ``texts``: cached ones read, the others encoded and cached."""
    from safetensors.numpy import load_file, save_file

    from ambient_omni.files import cache_root

    folder = cache_root(cache_dir) / "caption-embeddings"
    known: dict[bytes, np.ndarray] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        data = load_file(str(shard))
        known.update(zip((bytes(d) for d in data["digests"]), data["embeddings"]))
    digests = [_digest(t) for t in texts]
    todo = sorted({d: t for d, t in zip(digests, texts) if d not in known}.items())
    if todo:
        from ambient_omni.networks.text_encoder import TextEncoder

        vectors = TextEncoder(cache_dir).encode([t for _, t in todo]).numpy()
        folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(b"".join(d for d, _ in todo)).hexdigest()[:32]
        tmp = folder / f".{name}.tmp"
        save_file({"digests": np.frombuffer(b"".join(d for d, _ in todo), dtype=np.uint8).reshape(-1, 32),
                   "embeddings": vectors.astype(np.float32)}, str(tmp))
        os.replace(tmp, folder / f"{name}.safetensors")
        known.update(zip((d for d, _ in todo), vectors))
    if not texts:
        return torch.zeros(0, 384)
    return torch.from_numpy(np.stack([known[d] for d in digests]).astype(np.float32))


__all__ = ["TEMPLATES", "caption_embeddings", "read_captions", "template_captions", "write_captions"]
