"""Cached reference statistics: features, mean and covariance of a reference image set.

The cache key is ``sha256`` of (format version, sha256 of the reference images, the
extractor's ``settings()`` (name, resolution, weights hash, ...), the metric settings). The
entry ``<cache>/reference-stats/<key[:32]>.safetensors`` holds ``mu`` (float64), ``sigma``
(float64) and, when kept, the features (float32); ``<key[:32]>.json`` repeats the full key and
the settings. Changed images, extractor or settings give a different key and so a different
file: an entry is never reused for other inputs, and never silently overwritten. Features are
rounded to float32 before the statistics are computed, so a cache hit and a fresh computation
give identical numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ambient_omni.errors import AmbientError
from ambient_omni.files import cache_root
from ambient_omni.metrics.features import FeatureExtractor
from ambient_omni.metrics.frechet import feature_statistics

FORMAT_VERSION = 1


@dataclass
class ReferenceStats:
    """Features (float32-rounded, as float64), their mean and covariance, and the cache key."""

    features: np.ndarray | None
    mu: np.ndarray
    sigma: np.ndarray
    key: str


def images_sha256(images: torch.Tensor) -> str:
    """sha256 over the shape and float32 bytes of ``images``."""
    data = torch.as_tensor(images).to(torch.float32).contiguous()
    digest = hashlib.sha256(str(tuple(data.shape)).encode())
    digest.update(data.numpy().tobytes())
    return digest.hexdigest()


def reference_key(images_hash: str, extractor_settings: dict[str, Any],
                  metric_settings: dict[str, Any] | None = None) -> str:
    """sha256 of everything the reference statistics depend on."""
    blob = json.dumps({"version": FORMAT_VERSION, "images": images_hash, "extractor": extractor_settings,
                       "metric": metric_settings or {}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def stats_from_features(features: np.ndarray, key: str, keep_features: bool) -> ReferenceStats:
    """Round ``features`` to float32 and fit ``(mu, sigma)``."""
    rounded = np.asarray(features, dtype=np.float32).astype(np.float64)
    mu, sigma = feature_statistics(rounded)
    return ReferenceStats(rounded if keep_features else None, mu, sigma, key)


def _load(path: Path, meta_path: Path, key: str) -> ReferenceStats | None:
    """The cached entry, or ``None`` when its bytes are not the ones its JSON records (a damaged or rewritten
    entry is computed again, with a warning; entries written before the record existed are recomputed)."""
    import warnings

    from safetensors.numpy import load

    meta = json.loads(meta_path.read_text())
    if meta.get("key") != key:
        raise AmbientError(f"{meta_path}: cache entry has key {meta.get('key')}, expected {key}")
    blob = path.read_bytes()
    if meta.get("sha256") != hashlib.sha256(blob).hexdigest():
        if meta.get("sha256") is not None:
            warnings.warn(f"{path}: reference statistics do not match the SHA-256 in {meta_path.name}; "
                          "computing them again", stacklevel=3)
        return None
    arrays = load(blob)
    feats = arrays["features"].astype(np.float64) if "features" in arrays else None
    return ReferenceStats(feats, arrays["mu"], arrays["sigma"], key)


def reference_statistics(images: torch.Tensor, extractor: FeatureExtractor,
                         cache_dir: str | os.PathLike | None = None,
                         metric_settings: dict[str, Any] | None = None, keep_features: bool = True,
                         batch_size: int = 64, progress: bool = True) -> ReferenceStats:
    """Reference statistics from the cache when the key matches, else computed and stored."""
    from safetensors.numpy import save

    from ambient_omni.files import atomic_write_bytes, write_json

    settings = extractor.settings()
    images_hash = images_sha256(images)
    key = reference_key(images_hash, settings, metric_settings)
    folder = cache_root(cache_dir) / "reference-stats"
    path, meta_path = folder / f"{key[:32]}.safetensors", folder / f"{key[:32]}.json"
    if path.exists() and meta_path.exists():
        stats = _load(path, meta_path, key)
        if stats is not None and (stats.features is not None or not keep_features):
            return stats
    stats = stats_from_features(extractor(images, batch_size=batch_size, progress=progress), key, keep_features)
    arrays = {"mu": stats.mu, "sigma": stats.sigma}
    if stats.features is not None:
        arrays["features"] = stats.features.astype(np.float32)
    blob = save(arrays)
    atomic_write_bytes(path, blob)
    write_json(meta_path, {"key": key, "sha256": hashlib.sha256(blob).hexdigest(),
                           "images_sha256": images_hash, "n": int(images.shape[0]),
                           "extractor": settings, "metric": metric_settings or {},
                           "version": FORMAT_VERSION, "has_features": stats.features is not None})
    return stats
