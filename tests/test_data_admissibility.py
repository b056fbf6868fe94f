"""The admissibility rule: the buffer factor and admissible counts on a hand-computed example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ambient_omni.data.admissibility import admissible_counts, admissible_mask, buffer_factor
from ambient_omni.data.annotations import AnnotationTable
from ambient_omni.errors import AmbientError


def test_admissible_counts_hand_computed() -> None:
    b = buffer_factor(4)
    assert b == pytest.approx(math.sqrt(4 / 3))
    # rows: clean, corrupted 1.0, corrupted 0.3, ood (inf, 0.2), donut (2.0, 0.05)
    table = AnnotationTable([0, 1, 2, 3, 4], [0.0, 1.0, 0.3, math.inf, 2.0], [0.0, 0.0, 0.0, 0.2, 0.05],
                            ["m"] * 5, [None] * 5, [None] * 5)
    sigmas = [0.01, 0.05, 0.2, 0.3, 0.35, 1.0, 1.16, 2.3, 2.31, 80.0]
    # 0.01: clean, ood, donut -> 3;   0.05: clean, ood, donut -> 3;   0.2: clean, ood -> 2;   0.3: clean -> 1
    # 0.35 > 0.3 b = 0.3464: clean, row 2 -> 2;   1.0: -> 2;   1.16 > 1.1547: + row 1 -> 3
    # 2.3 < 2 b = 2.3094 -> 3;   2.31 -> 4;   80 -> 4 (ood never at high noise)
    expected = [3, 3, 2, 1, 2, 2, 3, 3, 4, 4]
    np.testing.assert_array_equal(admissible_counts(table, sigmas), expected)
    np.testing.assert_array_equal(admissible_mask(table, 0.35), [True, False, True, False, False])
    # Larger buffer s -> smaller b -> row 4 is admissible at 2.2 with s = 100 (b = 1.005)
    assert admissible_counts(table, [2.2], buffer_s=100)[0] == 4
    with pytest.raises(AmbientError):
        buffer_factor(1.0)
    with pytest.raises(AmbientError, match="sigma must be > 0"):
        admissible_counts(table, [0.0, 1.0])
