"""Merging, flooring and summarising annotation tables (ambient_omni.data.annotation_ops)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ambient_omni.data.annotation_ops import floor_sigma_min, merge_annotations, summarize
from ambient_omni.data.annotations import AnnotationTable
from ambient_omni.errors import AmbientError

SHA = "0123456789abcdef" * 4
PROVENANCE = ["clean", "corrupted:blur:sigma=1", "ood:sandal", "clean", "corrupted:jpeg:quality=10"]


def _noise_table() -> AnnotationTable:
    """A noise-classifier table: sigma_min for everything, sigma_max 0."""
    return AnnotationTable([0, 1, 2, 3], [0.0, 1.2, 0.7, 0.1], [0, 0, 0, 0], ["dense"] * 4, ["noise"] * 4, [0.45] * 4)


def _crop_table() -> AnnotationTable:
    """A crop-classifier table: id 2 is OOD (inf, 0.15), the rest target images (0, 0)."""
    return AnnotationTable([3, 2, 1, 0], [0.0, math.inf, 0.0, 0.0], [0, 0.15, 0, 0], ["crop"] * 4, ["crops"] * 4, [0.25] * 4)


def test_merge_rules() -> None:
    merged = merge_annotations(_noise_table(), _crop_table(), sigma_min="max", sigma_max="b")
    np.testing.assert_array_equal(merged.ids, [0, 1, 2, 3])
    np.testing.assert_array_equal(merged.sigma_min, [0.0, 1.2, math.inf, 0.1])
    np.testing.assert_array_equal(merged.sigma_max, [0, 0, 0.15, 0])
    assert merged.method == ["dense+crop"] * 4 and merged.classifier == ["noise+crops"] * 4
    assert merged.threshold == [0.45] * 4 and merged.extra[0] == {"threshold_b": 0.25}
    a_only = merge_annotations(_noise_table(), _crop_table(), sigma_min="a", sigma_max="max")
    np.testing.assert_array_equal(a_only.sigma_min, [0.0, 1.2, 0.7, 0.1])
    np.testing.assert_array_equal(a_only.sigma_max, [0, 0, 0.15, 0])
    low = merge_annotations(_noise_table(), _crop_table(), sigma_min="min", sigma_max="a")
    np.testing.assert_array_equal(low.sigma_min, [0.0, 0.0, 0.7, 0.0])
    same = merge_annotations(_noise_table(), _noise_table())  # "agree" passes when equal
    np.testing.assert_array_equal(same.sigma_min, _noise_table().sigma_min)
    assert same.method == ["dense"] * 4 and same.extra == [{}] * 4


def test_floor_sigma_min_raises_only_positive_values_below_the_floor() -> None:
    table = AnnotationTable([0, 1, 2, 3], [0.0, 0.3, 2.5, math.inf], [0.0, 0.0, 0.0, 0.2], ["dense"] * 4,
                            ["noise"] * 4, [0.45] * 4, created_by={"grid_size": 64})
    floored = floor_sigma_min(table, 1.5)
    np.testing.assert_array_equal(floored.sigma_min, [0.0, 1.5, 2.5, math.inf])
    np.testing.assert_array_equal(floored.sigma_max, table.sigma_max)
    assert floored.created_by == {"grid_size": 64, "sigma_min_floor": 1.5}
    assert table.sigma_min[1] == 0.3  # the input is not changed
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(AmbientError, match="floor"):
            floor_sigma_min(table, bad)


def test_merge_errors() -> None:
    with pytest.raises(AmbientError, match=r"disagree on sigma_min for ids 1 \(1.2 vs 0\), 2 \(0.7 vs inf\)"):
        merge_annotations(_noise_table(), _crop_table(), sigma_max="b")
    with pytest.raises(AmbientError, match="unknown rule 'left'"):
        merge_annotations(_noise_table(), _crop_table(), sigma_min="left")
    fewer = AnnotationTable([0, 1, 2], [0.0] * 3, [0.0] * 3, ["crop"] * 3, [None] * 3, [None] * 3, dataset_n=4)
    with pytest.raises(AmbientError, match="no annotation for dataset ids 3"):
        merge_annotations(_noise_table(), fewer, sigma_min="a", sigma_max="a")
    other = _crop_table()
    other.dataset_sha256 = "f" * 64
    first = _noise_table()
    first.dataset_sha256 = SHA
    with pytest.raises(AmbientError, match="different datasets"):
        merge_annotations(first, other, sigma_min="a", sigma_max="a")


def test_summary_counts_and_stats() -> None:
    table = AnnotationTable(
        [0, 1, 2, 3, 4, 5],
        [0.0, 1.0, 3.0, math.inf, math.inf, 2.0],
        [0.0, 0.0, 0.0, 0.2, 0.0, 0.1],
        ["a", "a", "a", "b", "b", "a"], [None] * 6, [None] * 6,
    )
    summary = summarize(table, provenance=["clean", "corrupted:x", "corrupted:x", "ood:y", "ood:y", "corrupted:x"])
    assert (summary["n"], summary["clean"], summary["corrupted"], summary["donut"]) == (6, 1, 3, 1)
    assert (summary["ood_like"], summary["unusable"]) == (1, 1)
    assert summary["sigma_min"]["mean"] == pytest.approx(2.0) and summary["sigma_min"]["median"] == pytest.approx(2.0)
    assert summary["sigma_min"]["q25"] == pytest.approx(1.5) and summary["sigma_min"]["max"] == 3.0
    assert summary["sigma_max"]["mean"] == pytest.approx(0.15)
    assert summary["methods"] == {"a": 4, "b": 2}
    assert summary["by_provenance"]["corrupted:x"] == {"n": 3, "clean": 0, "mean_sigma_min": pytest.approx(2.0), "ood_like": 0}
    assert summary["by_provenance"]["ood:y"]["ood_like"] == 1
    # Provenance is taken from the table itself when it carries it.
    assert set(summarize(AnnotationTable.fixed(np.arange(5), PROVENANCE, 1.5, 0.2))["by_provenance"]) == set(PROVENANCE)
    assert summarize(AnnotationTable.all_clean([0, 1]))["sigma_min"] is None
