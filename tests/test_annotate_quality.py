"""Quality-score annotation (ambient_omni.annotate.quality): ranks, the two rules, the crops variant, score files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ambient_omni.annotate.quality import (
    QualityScores,
    best_mask,
    parse_crop_map,
    patch_sigma_max,
    quality_ranks,
    quality_sigma_min,
    quality_table,
    read_scores,
    write_scores,
)
from ambient_omni.data.annotations import read_annotations, write_annotations
from ambient_omni.errors import AmbientError

# The issue's example of the authors' ranking defect (PAPER.md section 5).
Q = [0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0]


def test_the_top_30_percent_are_the_three_best_scores_not_the_sort_permutation() -> None:
    assert set(np.flatnonzero(best_mask(Q, 0.3))) == {1, 6, 4}
    authors_rank = np.arange(len(Q))[np.argsort(-np.asarray(Q))]  # the permutation taken for the rank
    assert set(np.flatnonzero(authors_rank < 3)) == {0, 4, 8}


def test_ranks_are_a_permutation_with_ties_broken_by_id() -> None:
    ranks = quality_ranks(Q)
    assert sorted(ranks.tolist()) == list(range(10))
    assert ranks[9] == 0 and ranks[1] == 9
    assert quality_ranks([0.5, 0.5, 0.1]).tolist() == [1, 2, 0]


def test_clean_count_rounds_like_ambient_corrupt() -> None:
    assert best_mask(np.arange(100.0), 0.29).sum() == 29  # 0.29 * 100 = 28.999999999999996
    assert best_mask(np.arange(10.0), 0.25).sum() == 3  # floor(2.5 + 0.5)
    assert best_mask(np.arange(10.0), 0.0).sum() == 0 and best_mask(np.arange(10.0), 1.0).all()
    with pytest.raises(AmbientError, match="clean fraction"):
        best_mask(Q, 1.5)


def test_fraction_rule_is_the_papers() -> None:
    lo = quality_sigma_min(Q, 0.1, "fraction", sigma_min=0.2)
    assert lo[1] == 0 and np.count_nonzero(lo == 0) == 1
    assert np.all(lo[np.arange(10) != 1] == 0.2)
    for bad in (None, 0.0, math.inf):
        with pytest.raises(AmbientError, match="sigma_min"):
            quality_sigma_min(Q, 0.1, "fraction", sigma_min=bad)
    with pytest.raises(AmbientError, match="unknown quality rule"):
        quality_sigma_min(Q, 0.1, "median", sigma_min=0.2)


def test_quantile_rule_is_monotone_and_geometric_between_its_ends() -> None:
    lo = quality_sigma_min(Q, 0.2, "quantile", sigma_range=(0.5, 8.0))
    order = np.argsort(Q)  # worst first
    assert lo[1] == 0 and lo[6] == 0  # the two best are clean
    rest = lo[order[:-2]]
    assert rest[0] == pytest.approx(8.0) and rest[-1] == pytest.approx(0.5)
    assert np.all(np.diff(rest) < 0)  # a better score never gets a larger sigma_min
    np.testing.assert_allclose(np.diff(np.log(rest)), np.log(0.5 / 8.0) / 7)  # equal steps in log sigma
    with pytest.raises(AmbientError, match="sigma range"):
        quality_sigma_min(Q, 0.2, "quantile", sigma_range=(2.0, 1.0))


def test_patch_rule_compares_patches_with_the_clean_images_patches() -> None:
    clean = np.array([True, True, False, False, False])
    patches = {4: np.array([1.0, 3.0, 2.5, 1.5, 0.0]), 8: np.array([1.0, 3.0, 2.0, 0.0, 9.0])}
    crop, hi = patch_sigma_max(patches, clean, {4: 0.1, 8: 0.3, 16: 1.0})  # bars: median 2.0 at both sizes
    assert crop.tolist() == [0, 0, 8, 0, 8] and hi.tolist() == [0.0, 0.0, 0.3, 0.0, 0.3]
    crop, _ = patch_sigma_max(patches, clean, {4: 0.1, 8: 0.3}, quantile=0.0)  # bar: the worst clean patch
    assert crop.tolist() == [0, 0, 8, 4, 8]
    with pytest.raises(AmbientError, match="no sigma_max for crop size"):
        patch_sigma_max(patches, clean, {4: 0.1})
    with pytest.raises(AmbientError, match="no image is clean"):
        patch_sigma_max(patches, np.zeros(5, dtype=bool), {4: 0.1, 8: 0.3})


def test_parse_crop_map() -> None:
    assert parse_crop_map("4:0.1, 8:0.175,16:0.2,32:1") == {4: 0.1, 8: 0.175, 16: 0.2, 32: 1.0}
    for bad in ("4=0.1", "0:0.1", "4:-1", "", "4:inf"):
        with pytest.raises(AmbientError, match="crop map"):
            parse_crop_map(bad)


def test_score_files_round_trip_in_both_formats(tmp_path: Path) -> None:
    scores = QualityScores([0.3, -1.0, 2.5], {8: [1.0, 2.0, 3.0], 4: [0.5, 0.0, 1.0]}, "mine")
    write_scores(tmp_path / "s.jsonl", scores)
    back = read_scores(tmp_path / "s.jsonl", 3)
    np.testing.assert_array_equal(back.score, scores.score)
    assert sorted(back.patches) == [4, 8] and back.patches[8].tolist() == [1.0, 2.0, 3.0]
    (tmp_path / "s.csv").write_text("id,score,patch_8\n2,2.5,3\n0,0.3,1\n1,-1,2\n")  # any row order
    csv_scores = read_scores(tmp_path / "s.csv", 3)
    np.testing.assert_array_equal(csv_scores.score, scores.score)
    assert csv_scores.patches[8].tolist() == [1.0, 2.0, 3.0] and csv_scores.source == str(tmp_path / "s.csv")


@pytest.mark.parametrize("text, needle", [
    ("id,score\n0,1\n0,2\n1,3\n", "duplicated ids 0"),
    ("id,score\n0,1\n", "no score for dataset ids 1, 2"),
    ("id,score\n0,1\n1,2\n2,3\n7,4\n", "not in the dataset"),
    ("id,score\n0,1\n1,nan\n2,3\n", "not finite for ids 1"),
    ("id,quality\n0,1\n", "needs 'id' and 'score'"),
    ("id,score\n0,1\nx,2\n2,3\n", ":3: id must be an integer"),
    ("id,score,patch_big\n0,1,1\n", "not a crop size"),
])
def test_bad_score_files_are_errors_naming_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "s.csv"
    path.write_text(text)
    with pytest.raises(AmbientError, match=needle):
        read_scores(path, 3)


def test_jsonl_score_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": 0, "score": 1}\n{"id": 1.5, "score": 2}\n')
    with pytest.raises(AmbientError, match=":2: need"):
        read_scores(path, 2)
    path.write_text('{"id": 0, "score": 1, "patches": {"8": 1}}\n{"id": 1, "score": 2}\n')
    with pytest.raises(AmbientError, match="same crop sizes"):
        read_scores(path, 2)
    with pytest.raises(AmbientError, match="cannot read"):
        read_scores(tmp_path / "missing.jsonl", 2)


def test_quality_table_is_a_valid_annotation_file(tmp_path: Path) -> None:
    scores = QualityScores(Q, {4: np.array(Q) * 0 + 1.0}, "sharpness")
    provenance = ["clean" if q >= 0.8 else "corrupted:blur:sigma=1" for q in Q]
    table = quality_table(scores, clean_fraction=0.2, rule="fraction", sigma_min=0.2, crop_map={4: 0.1},
                          provenance=provenance, dataset_sha256="ab" * 32)
    write_annotations(tmp_path / "a.jsonl", table)
    back = read_annotations(tmp_path / "a.jsonl", dataset_sha256="ab" * 32)
    assert back.sigma_min[1] == 0 and back.sigma_min[6] == 0 and np.count_nonzero(back.sigma_min == 0.2) == 8
    assert np.all(back.sigma_max[back.sigma_min > 0] == 0.1)  # every patch equals the clean median: all pass
    assert back.method[1] == "clean" and back.method[0] == "quality" and back.classifier[0] == "sharpness"
    assert back.extra[1] == {"score": 0.9, "rank": 9, "crop_size": 0, "provenance": "clean"}
    assert back.created_by["rule"] == "quality-fraction" and back.created_by["crop_map"] == {"4": 0.1}
    with pytest.raises(AmbientError, match="no patch scores"):
        quality_table(QualityScores(Q), clean_fraction=0.2, rule="fraction", sigma_min=0.2, crop_map={4: 0.1})
