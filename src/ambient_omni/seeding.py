"""Stateless, counter-based randomness: every draw is a pure function of its keys.

A key tuple such as ``(seed, "sigma", step, j, attempt)`` is hashed to a 64-bit integer with
SplitMix64 mixing (Steele, Lea, Flood 2014):

    h_0 = 0x9E3779B97F4A7C15,   h_{k+1} = mix(h_k XOR mix(key_k + 0x9E3779B97F4A7C15))
    mix(x) = x3 where x1 = (x ^ x >> 30) * 0xBF58476D1CE4E5B9,
                      x2 = (x1 ^ x1 >> 27) * 0x94D049BB133111EB,  x3 = x2 ^ x2 >> 31   (mod 2^64)

String keys are first reduced to 64 bits with BLAKE2b (Python's ``hash`` is salted per
process, so it is never used). Integer keys may be numpy arrays; they broadcast, which makes
a whole batch of draws one vectorized call. Nothing here touches global RNG state.

This is the one place seeds are derived (data, diffusion, training, annotate all use it):
``generator(*keys)`` is a ``torch.Generator`` for one key tuple, ``derive_seed(*keys)`` the
63-bit integer behind it (for APIs that take a seed, e.g. ``torch.manual_seed`` in a forked RNG).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

KeyLike = int | str | np.ndarray

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer on a uint64 array (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _as_u64(key: KeyLike) -> np.ndarray:
    """Key -> uint64 array: strings via BLAKE2b, integers modulo 2^64 (negatives wrap)."""
    if isinstance(key, str):
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
        return np.asarray([int.from_bytes(digest, "little")], dtype=np.uint64)
    if isinstance(key, (int, np.integer)):
        return np.asarray([int(key) & _MASK64], dtype=np.uint64)
    arr = np.asarray(key)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"seed keys must be integers or strings, got dtype {arr.dtype}")
    return arr.astype(np.int64).view(np.uint64) if arr.dtype != np.uint64 else arr


def hash64(*keys: KeyLike) -> np.ndarray:
    """Hash a key tuple (integers, strings or broadcastable integer arrays) to uint64 (>= 1-D)."""
    h = np.atleast_1d(_GOLDEN.copy())
    with np.errstate(over="ignore"):
        for key in keys:
            h = _mix(h ^ _mix(_as_u64(key) + _GOLDEN))
    return h


def uniform(*keys: KeyLike) -> np.ndarray:
    """Uniform float64 in the OPEN interval (0, 1): ``((hash64(keys) >> 11) + 0.5) / 2^53``."""
    return ((hash64(*keys) >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def torch_seeds(*keys: KeyLike) -> list[int]:
    """Seeds for ``torch.Generator.manual_seed``: ``hash64(keys)`` truncated to 63 bits."""
    return [int(h) >> 1 for h in hash64(*keys)]


def derive_seed(*keys: KeyLike) -> int:
    """One 63-bit seed from scalar keys: ``torch_seeds(*keys)[0]``; array keys must give one value."""
    seeds = torch_seeds(*keys)
    if len(seeds) != 1:
        raise ValueError(f"derive_seed needs scalar keys, got {len(seeds)} values (use torch_seeds for arrays)")
    return seeds[0]


def generator(*keys: KeyLike, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with :func:`derive_seed` ``(*keys)``."""
    return torch.Generator(device=device).manual_seed(derive_seed(*keys))


def generators(*keys: KeyLike, device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One fresh generator per value of the broadcast keys (``torch_seeds(*keys)``), in order."""
    return [torch.Generator(device=device).manual_seed(s) for s in torch_seeds(*keys)]
