"""The admissibility rule (PAPER 2.1, 2.2): at which noise levels an annotated image may be trained on.

Image ``i`` is usable at noise level ``sigma`` when

    sigma > b * sigma_min[i]   (high-noise use, ambient loss with sigma_tn = sigma_min[i]), or
    sigma <= sigma_max[i]      (low-noise use, plain loss with sigma_tn = 0),

with the buffer ``b = sqrt(s / (s - 1))``, ``s = 4``. The windows ``(sigma_min, sigma_max)`` come from an
:class:`~ambient_omni.data.annotations.AnnotationTable`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ambient_omni.data.annotations import AnnotationTable
from ambient_omni.errors import AmbientError


def buffer_factor(buffer_s: float | None = 4.0) -> float:
    """``b = sqrt(s / (s - 1))``: high-noise use needs ``sigma > b sigma_min`` (then ``w_amb <= s^2``).

    Needs ``s > 1``; ``s`` None or inf disables the buffer: ``b = 1``.
    """
    if buffer_s is None or math.isinf(buffer_s):
        return 1.0
    if not buffer_s > 1:
        raise AmbientError(f"buffer_s must be > 1 (or None/inf to disable), got {buffer_s}")
    return math.sqrt(buffer_s / (buffer_s - 1.0))


def admissible(sigma: Any, sigma_min: Any, sigma_max: Any, buffer_s: float | None = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """The admissibility rule, elementwise with numpy broadcasting: ``(mask, sigma_tn)`` (float64).

    ``mask = (sigma > b sigma_min) | (sigma <= sigma_max)``; ``sigma_tn = 0`` where the low-noise
    rule holds (preferred when both hold), ``sigma_min`` where only the high-noise rule holds, NaN
    where not admissible. ``sigma_min = 0`` is usable at every ``sigma > 0`` with ``sigma_tn = 0``;
    ``inf`` never at high noise.
    """
    b = buffer_factor(buffer_s)
    s = np.asarray(sigma, dtype=np.float64)
    smin, smax = np.asarray(sigma_min, dtype=np.float64), np.asarray(sigma_max, dtype=np.float64)
    low = s <= smax
    with np.errstate(invalid="ignore"):
        high = s > b * smin
    sigma_tn = np.where(low, 0.0, np.where(high, smin, math.nan))
    return low | high, sigma_tn


def _check_sigma(sigmas: np.ndarray) -> None:
    """``sigma = 0`` is refused: ``0 <= sigma_max`` would hold for every image."""
    bad = ~(sigmas > 0)
    if bad.any():
        raise AmbientError(f"admissibility: sigma must be > 0, got {sigmas[bad][0]}")


def admissible_mask(table: AnnotationTable, sigma: float, buffer_s: float | None = 4.0) -> np.ndarray:
    """Boolean per row: ``sigma > b * sigma_min`` or ``sigma <= sigma_max`` (``sigma > 0``)."""
    _check_sigma(np.asarray([sigma], dtype=np.float64))
    return admissible(sigma, table.sigma_min, table.sigma_max, buffer_s)[0]


def admissible_counts(table: AnnotationTable, sigmas: Any, buffer_s: float | None = 4.0) -> np.ndarray:
    """Number of images usable at each sigma in ``sigmas`` (int64 array of the same length).

    Vectorized: the ``(sigmas, images)`` mask is built in blocks of about 2^22 entries.
    """
    s = np.ravel(np.asarray(sigmas, dtype=np.float64))
    _check_sigma(s)
    block = max(1, (1 << 22) // max(1, len(table)))
    counts = [admissible(s[i : i + block, None], table.sigma_min, table.sigma_max, buffer_s)[0].sum(axis=1)
              for i in range(0, len(s), block)]
    return np.concatenate(counts).astype(np.int64) if counts else np.zeros(0, dtype=np.int64)
