"""Mixed-quality datasets in memory: build them (clean + corrupted + out-of-distribution) and combine parts.

:class:`MixedData` is a dataset exactly as :mod:`ambient_omni.data.dataset_folder` writes it (uint8 codes, one
record per image). Provenance is ``clean``, ``corrupted:<corruption spec>``, ``synthetic:<model>`` (a generator's samples,
:mod:`ambient_omni.data.synthetic`; low-quality data like corrupted images) or ``ood:<source>``. Image ids are
``0..N-1`` in file order; a corruption sees ``ids`` = these positions, so image ``i`` of a folder
is reproducible from ``(source image, i, seed)`` alone. The same inputs and seed give the same
bytes in every file (nothing time- or path-dependent is written).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ambient_omni.data.imageset import ImageSet, to_uint8
from ambient_omni.errors import AmbientError
from ambient_omni.seeding import generator

PROVENANCE_PATTERN = re.compile(r"^(clean|corrupted:.+|synthetic:.+|ood:.+)$")
LOW_QUALITY_KINDS = ("corrupted", "synthetic")
"""Provenance kinds (the part before ``:``) of images used at high noise only, with ``sigma_min > 0``."""
_BATCH = 256


class Corruption(Protocol):
    """What :func:`build_mixed` needs from ``ambient_omni.data.corruptions.parse_corruption``."""

    @property
    def spec(self) -> str: ...

    def __call__(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor: ...


def round_half_up(x: float) -> int:
    """``floor(x + 0.5)``: the clean count for a fraction (0.5 rounds up, unlike ``round``)."""
    return int(math.floor(x + 0.5))


@dataclass
class MixedData:
    """A dataset in memory, exactly as it is written: uint8 codes and one record per image.

    A latent dataset (:mod:`ambient_omni.latents`) holds float32 latents instead, with ``latent`` describing the
    autoencoder and the latent scale; an image dataset has ``latent = None``."""

    images: np.ndarray
    labels: np.ndarray
    sources: list[str]
    source_index: np.ndarray
    provenance: list[str]
    seed: int
    recipe: list[dict[str, Any]] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    latent: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        kind = "uint8" if self.latent is None else "float32"
        if self.images.dtype != np.dtype(kind) or self.images.ndim != 4:
            raise ValueError(f"MixedData.images must be {kind} (N, C, H, W), got {self.images.dtype} "
                             f"{self.images.shape}")
        if self.latent is not None and not np.isfinite(self.images).all():
            raise AmbientError("latent dataset: the latents must be finite")
        if not (self.labels.shape == self.source_index.shape == (n,)
                and len(self.sources) == len(self.provenance) == n):
            raise ValueError("MixedData: labels, sources, source_index and provenance need one entry per image")
        bad = next((p for p in self.provenance if not PROVENANCE_PATTERN.match(p)), None)
        if bad is not None:
            raise AmbientError(f"invalid provenance {bad!r}: use clean, corrupted:<spec>, synthetic:<model> "
                               "or ood:<source>")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def counts(self) -> dict[str, int]:
        """Number of images per provenance string (sorted by provenance)."""
        return dict(sorted(Counter(self.provenance).items()))

    def take(self, index: np.ndarray) -> MixedData:
        """The records at ``index`` (in that order); the recipe and seed are kept."""
        index = np.asarray(index, dtype=np.int64)
        return MixedData(self.images[index], self.labels[index], [self.sources[i] for i in index],
                         self.source_index[index], [self.provenance[i] for i in index], self.seed,
                         list(self.recipe), list(self.class_names), self.latent)


def from_image_set(images: ImageSet, provenance: str, source: str, seed: int = 0) -> MixedData:
    """Quantize an ImageSet to uint8 and give every image the same ``provenance``."""
    assert images.source_index is not None
    n = len(images)
    return MixedData(to_uint8(images.images).numpy(), images.labels.numpy().copy(), [source] * n,
                     images.source_index.numpy().copy(), [provenance] * n, seed,
                     [{"source": source, "provenance": provenance, "n": n}], list(images.class_names))


def _choose(total: int, count: int, gen: torch.Generator) -> np.ndarray:
    """``count`` distinct positions of ``0..total-1`` drawn uniformly, returned sorted."""
    return np.sort(torch.randperm(total, generator=gen)[:count].numpy())


def _resolve_count(total: int, fraction: float | None, count: int | None, what: str) -> int:
    """``count`` if given, else ``round_half_up(fraction * total)``; both range-checked."""
    if count is not None:
        if not 0 <= count <= total:
            raise AmbientError(f"{what} count {count} must lie in 0..{total}")
        return int(count)
    if fraction is None or not 0.0 <= fraction <= 1.0:
        raise AmbientError(f"{what} fraction must lie in [0, 1], got {fraction}")
    return round_half_up(fraction * total)


def _corrupt(images: torch.Tensor, ids: torch.Tensor, corruption: Corruption, seed: int) -> torch.Tensor:
    """Apply ``corruption`` in batches (ids = dataset positions), returning uint8 codes."""
    from tqdm import tqdm

    out = torch.empty(images.shape, dtype=torch.uint8)
    starts = range(0, images.shape[0], _BATCH)
    for start in tqdm(starts, desc=f"corrupting ({corruption.spec})", unit="batch",
                      disable=len(starts) < 8, leave=False):
        batch = slice(start, start + _BATCH)
        corrupted = corruption(images[batch], ids[batch], seed)
        if corrupted.shape != images[batch].shape:
            raise ValueError(f"corruption {corruption.spec} changed the shape {tuple(images[batch].shape)} "
                             f"to {tuple(corrupted.shape)}")
        out[batch] = to_uint8(corrupted)
    return out


def build_mixed(source: ImageSet, corruption: Corruption | Sequence[Corruption] | None, clean_fraction: float | None,
                seed: int, source_name: str, n: int | None = None, clean_count: int | None = None) -> MixedData:
    """Keep ``K`` images clean, corrupt the rest: the mixed-quality dataset of the paper.

    1. With ``n``, a uniform random subset of ``n`` source images (kept in source order).
    2. ``K = clean_count`` or ``round_half_up(clean_fraction * N)`` positions drawn uniformly
       (generator ``(seed, "clean")``) stay clean; the others get
       ``corruption(images, ids=positions, seed)`` and provenance ``corrupted:<spec>``. Several corruptions
       (a sequence: unknown, mixed corruptions) take the corrupted positions in turn: the ``j``-th corrupted
       position in order gets ``corruption[j mod len(corruption)]``.
    3. Everything is quantized to uint8 (:func:`~ambient_omni.data.imageset.to_uint8`).
    """
    total = len(source)
    if n is not None:
        if not 1 <= n <= total:
            raise AmbientError(f"--n {n} must lie in 1..{total} (images in {source_name})")
        source = source.subset(_choose(total, n, generator(seed, "subset")))
    size = len(source)
    k = _resolve_count(size, clean_fraction, clean_count, "clean")
    clean = np.zeros(size, dtype=bool)
    clean[_choose(size, k, generator(seed, "clean"))] = True
    codes = to_uint8(source.images)
    stages = [] if corruption is None else [corruption] if hasattr(corruption, "spec") else list(corruption)
    dirty = np.flatnonzero(~clean)
    provenance = ["clean"] * size
    if len(dirty) and not stages:
        raise AmbientError("a corruption is needed unless every image is clean")
    for j, stage in enumerate(stages):
        mine = torch.from_numpy(dirty[j :: len(stages)])
        if mine.numel():
            codes[mine] = _corrupt(source.images[mine], mine, stage, seed)
        for i in mine.tolist():
            provenance[i] = f"corrupted:{stage.spec}"
    assert source.source_index is not None
    specs = [stage.spec for stage in stages]
    recipe = {"source": source_name, "n": size, "subset_of": total if n is not None else None,
              "clean": k, "corruption": (specs[0] if len(specs) == 1 else specs) if specs else None, "seed": seed}
    return MixedData(codes.numpy(), source.labels.numpy().copy(), [source_name] * size,
                     source.source_index.numpy().copy(), provenance, seed, [recipe], list(source.class_names))


@dataclass
class Part:
    """One ingredient of :func:`combine_datasets`.

    ``data`` is an ImageSet (then ``provenance``, e.g. ``"clean"`` or ``"ood:<source>"``, and
    ``source`` are required) or a :class:`MixedData` (it keeps its own records). ``count`` or
    ``fraction`` keeps a uniform random subset; neither keeps everything.
    """

    data: ImageSet | MixedData
    provenance: str | None = None
    source: str = ""
    count: int | None = None
    fraction: float | None = None


def _part_data(part: Part, seed: int, position: int) -> MixedData:
    """The part as MixedData, subsampled with generator ``(seed, "part", position)``."""
    if isinstance(part.data, ImageSet):
        if part.provenance is None or not part.source:
            raise AmbientError(f"part {position}: an ImageSet part needs a provenance and a source name")
        data = from_image_set(part.data, part.provenance, part.source, seed)
    elif part.provenance is not None:
        raise AmbientError(f"part {position}: a dataset part keeps its own provenance; do not set one")
    else:
        data = part.data
    if part.count is None and part.fraction is None:
        return data
    k = _resolve_count(len(data), part.fraction, part.count, f"part {position} ({part.source or 'dataset'})")
    chosen = data.take(_choose(len(data), k, generator(seed, "part", position)))
    chosen.recipe = [{"kept": k, "of": len(data), "recipe": data.recipe}]
    return chosen


def combine_datasets(parts: Sequence[Part], seed: int) -> MixedData:
    """Concatenate parts (in order) into one dataset; all must share ``(C, H, W)``.

    Example (the paper's OOD setting at small scale): 10% of the Sneaker images as ``clean``
    plus every Sandal image as ``ood:fashion-mnist:train@class=Sandal``.
    """
    if not parts:
        raise AmbientError("combine needs at least one part")
    pieces = [_part_data(part, seed, i) for i, part in enumerate(parts)]
    shape = pieces[0].images.shape[1:]
    for i, piece in enumerate(pieces[1:], start=1):
        if piece.images.shape[1:] != shape:
            raise AmbientError(f"part {i} has images of shape {piece.images.shape[1:]} (C, H, W), "
                               f"part 0 has {shape}; all parts need one shape")
    if any(piece.latent != pieces[0].latent for piece in pieces[1:]):
        raise AmbientError("combine: the parts are not all images, or not latents of one autoencoder at one scale")
    class_names = next((p.class_names for p in pieces if p.class_names), [])
    return MixedData(
        images=np.concatenate([p.images for p in pieces]),
        labels=np.concatenate([p.labels for p in pieces]),
        sources=[s for p in pieces for s in p.sources],
        source_index=np.concatenate([p.source_index for p in pieces]),
        provenance=[s for p in pieces for s in p.provenance],
        seed=seed,
        recipe=[{"part": i, "recipe": p.recipe, "n": len(p)} for i, p in enumerate(pieces)],
        class_names=list(class_names),
        latent=pieces[0].latent,
    )
