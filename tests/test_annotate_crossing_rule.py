"""The crossing rule: held-out split, balanced held-out accuracy on an oracle classifier, the crossing of the
theory's bounds (where B1 = B2, and how it moves with the clean count), and the annotation it writes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_omni.annotate.crossing_rule import (
    crossing_annotation,
    crossing_rule,
    fold_mask,
    held_out_accuracy,
    holdout_from_record,
    holdout_mask,
    holdout_record,
    training_split,
)
from ambient_omni.data.annotations import read_annotations, write_annotations
from ambient_omni.errors import AmbientError
from ambient_omni.theory.crossing import setup_from_accuracy

# held-out accuracies of a 300-clean Fashion-MNIST blur-1.0 noise classifier (docs/RESULTS.md section 7)
SIGMAS, ACCURACIES = [0.2, 0.5, 1.0, 2.0, 4.0], [1.0, 0.99, 0.865, 0.655, 0.55]


def test_holdout_mask_holds_out_a_share_of_each_kind_reproducibly() -> None:
    provenance = ["clean"] * 30 + ["corrupted:blur:sigma=1"] * 60 + ["synthetic:edm"] * 40 + ["ood:x"] * 5
    mask = holdout_mask(provenance, 0.2, seed=3)
    kinds = np.array([p.split(":")[0] for p in provenance])
    assert mask[kinds == "clean"].sum() == 6 and mask[np.isin(kinds, ["corrupted", "synthetic"])].sum() == 20
    assert not mask[kinds == "ood"].any()
    assert np.array_equal(mask, holdout_mask(provenance, 0.2, seed=3))
    assert not np.array_equal(mask, holdout_mask(provenance, 0.2, seed=4))
    tiny = holdout_mask(["clean", "clean", "corrupted:x", "corrupted:x", "corrupted:x"], 0.01)
    assert tiny.tolist().count(True) == 2  # at least one of each kind, never all of it
    with pytest.raises(AmbientError, match="at least 2 clean images"):
        holdout_mask(["clean", "corrupted:x", "corrupted:x"])
    with pytest.raises(AmbientError, match="strictly between 0 and 1"):
        holdout_mask(provenance, 1.0)


def test_folds_partition_each_kind_into_near_equal_disjoint_parts() -> None:
    provenance = ["clean"] * 31 + ["corrupted:blur:sigma=1"] * 50 + ["synthetic:edm"] * 14 + ["ood:x"] * 5
    kinds = np.array([p.split(":")[0] for p in provenance])
    masks = np.stack([fold_mask(provenance, 5, k, seed=1) for k in range(5)])
    assert np.array_equal(masks.sum(0), (kinds != "ood").astype(int))  # every clean and low-quality image once
    assert sorted(masks[:, kinds == "clean"].sum(1).tolist()) == [6, 6, 6, 6, 7]
    assert sorted(masks[:, kinds != "clean"].sum(1).tolist()) == [12, 13, 13, 13, 13]  # 64 low-quality, 5 ood apart
    assert np.array_equal(masks[2], fold_mask(provenance, 5, 2, seed=1))
    assert not np.array_equal(masks[2], fold_mask(provenance, 5, 2, seed=2))
    with pytest.raises(AmbientError, match="at least 40 clean images"):
        fold_mask(provenance, 40, 0)
    with pytest.raises(AmbientError, match="folds >= 2"):
        fold_mask(provenance, 1, 0)


def test_holdout_records_rebuild_their_mask_and_reject_bad_specs() -> None:
    provenance = ["clean"] * 10 + ["corrupted:x"] * 10
    used, record = training_split(provenance, "abc", 4, folds=3, fold=2)
    assert record == {"folds": 3, "fold": 2, "seed": 4, "dataset_sha256": "abc"}
    assert np.array_equal(~used, fold_mask(provenance, 3, 2, seed=4))
    assert np.array_equal(holdout_from_record(holdout_record(4, "abc", fraction=0.3), provenance),
                          holdout_mask(provenance, 0.3, seed=4))
    for bad in ({}, {"fraction": 0.2, "folds": 3, "fold": 0}, {"folds": 3}, {"folds": 3, "fold": 3},
                {"fraction": 1.5}):
        with pytest.raises(AmbientError):
            training_split(provenance, "abc", 0, **bad)


class MeanSign(torch.nn.Module):
    """An oracle for constant images: clean ones are +0.5, corrupted ones -0.5; the logit is the image mean."""

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))


class AlwaysCorrupted(torch.nn.Module):
    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return -torch.ones(len(x))


def test_held_out_accuracy_is_balanced_and_falls_to_chance_with_noise() -> None:
    clean, corrupted = torch.full((3, 1, 4, 4), 0.5), torch.full((50, 1, 4, 4), -0.5)
    acc = held_out_accuracy(MeanSign(), clean, corrupted, sigmas=[0.01, 0.5, 200.0], draws=64, seed=0)
    assert acc[0] == 1.0
    # sigma 0.5 on 16 pixels: the mean's noise has std 0.125, 4 std from the decision boundary
    assert acc[1] > 0.99
    assert acc[2] == pytest.approx(0.5, abs=0.06)
    # a constant answer scores exactly 0.5 however unequal the counts (plain accuracy would be 50/53)
    assert held_out_accuracy(AlwaysCorrupted(), clean, corrupted, sigmas=[0.1], draws=2).tolist() == [0.5]
    with pytest.raises(AmbientError, match="clean and corrupted"):
        held_out_accuracy(MeanSign(), clean[:0], corrupted)


def test_crossing_is_where_the_bounds_meet_and_rises_with_the_clean_count() -> None:
    rules = {n1: crossing_rule(n1, 9000, SIGMAS, ACCURACIES) for n1 in (30, 300, 3000)}
    for n1, rule in rules.items():
        assert rule.status == "crossing" and math.isfinite(rule.sigma_min)
        setup = setup_from_accuracy(SIGMAS, ACCURACIES, n_clean=n1, n_corrupted=9000)
        s = np.asarray(rule.sigma_min)
        assert float(setup.clean_bound(s)) == pytest.approx(float(setup.mixed_bound(s)), rel=1e-6)
        above = np.geomspace(rule.sigma_min * 1.01, 1e5, 50)
        assert np.all(setup.mixed_bound(above) < setup.clean_bound(above))
    assert rules[30].sigma_min < rules[300].sigma_min < rules[3000].sigma_min
    # no measurable difference between the noisy distributions: mixed data wins wherever the bounds say anything
    # (below 0.07 both are trivial, 1), so the crossing is vacuous and tiny
    same = crossing_rule(300, 2700, SIGMAS, [0.5] * 5)
    assert same.vacuous and same.sigma_min < 0.1 and not rules[300].vacuous
    assert "informative" not in same.record() and "vacuous_sigma" not in same.record()


def test_informative_raises_a_vacuous_crossing_to_where_the_clean_bound_says_something() -> None:
    # the pooled held-out curve of a 5-fold cross-fitted classifier at 30 clean + 9,970 blurred images
    # (docs/RESULTS.md section 1): 0.93 at the lowest levels, so the mixed bound is below 1 where the clean-only
    # bound for 30 images is still trivial
    sigmas = np.geomspace(0.05, 20.0, 12)
    accuracies = [0.933, 0.933, 0.933, 0.936, 0.923, 0.834, 0.665, 0.527, 0.517, 0.522, 0.486, 0.473]
    plain = crossing_rule(30, 9970, sigmas, accuracies)
    raised = crossing_rule(30, 9970, sigmas, accuracies, informative=True)
    setup = setup_from_accuracy(sigmas, accuracies, n_clean=30, n_corrupted=9970)
    assert plain.vacuous and plain.sigma_min < 0.3
    assert not raised.vacuous and raised.vacuous_sigma == plain.sigma_min and raised.informative
    assert float(setup.clean_bound(np.asarray(raised.sigma_min * 0.999))) == 1.0
    assert float(setup.clean_bound(np.asarray(raised.sigma_min))) < 1.0
    above = np.asarray(raised.sigma_min * 1.001)
    assert float(setup.mixed_bound(above)) < float(setup.clean_bound(above)) < 1
    assert raised.sigma_min == pytest.approx(0.565, rel=0.01)
    assert raised.record()["vacuous_sigma"] == plain.sigma_min
    kept = crossing_rule(30, 9970, SIGMAS, ACCURACIES, informative=True)  # not vacuous: nothing to raise
    assert kept.sigma_min == crossing_rule(30, 9970, SIGMAS, ACCURACIES).sigma_min and kept.vacuous_sigma is None


def test_annotation_gives_every_low_quality_image_the_crossing(tmp_path: Path) -> None:
    provenance = ["clean", "corrupted:blur:sigma=1", "synthetic:edm", "clean"]
    rule = crossing_rule(2, 2, SIGMAS, ACCURACIES)
    table = crossing_annotation(np.arange(4), provenance, rule)
    assert table.sigma_min.tolist() == [0.0, rule.sigma_min, rule.sigma_min, 0.0]
    write_annotations(tmp_path / "a.jsonl", table)
    made = read_annotations(tmp_path / "a.jsonl").created_by
    assert made["rule"] == "crossing" and made["accuracies"] == ACCURACIES and made["n_clean"] == 2
    never = crossing_rule(2, 2, SIGMAS, ACCURACIES)
    never = type(never)(**{**never.__dict__, "sigma_min": math.inf, "status": "never"})
    unused = crossing_annotation(np.arange(4), provenance, never)
    assert np.isinf(unused.sigma_min[[1, 2]]).all() and unused.created_by["sigma_min"] == "inf"
    write_annotations(tmp_path / "b.jsonl", unused)  # an unusable set is still a valid file
    with pytest.raises(AmbientError, match="ood"):
        crossing_annotation(np.arange(2), ["clean", "ood:x"], rule)


def test_wilson_upper_bound_is_conservative_and_tightens_with_more_images() -> None:
    from ambient_omni.annotate.crossing_rule import wilson_upper

    p = np.array([0.5, 0.85, 1.0])
    six, many = wilson_upper(p, 6, 0.9), wilson_upper(p, 512, 0.9)
    assert np.all(six >= p) and np.all(many >= p) and np.all(six >= many)
    assert six[2] == 1.0 and many[1] == pytest.approx(0.85 + 1.2816 * math.sqrt(0.85 * 0.15 / 512), abs=2e-3)
    assert wilson_upper(np.array([0.5]), 6, 0.5)[0] == pytest.approx(0.5)  # z = 0: the estimate itself
    with pytest.raises(AmbientError, match="confidence"):
        wilson_upper(p, 6, 1.0)


def test_a_conservative_crossing_lies_above_the_plain_one() -> None:
    from ambient_omni.annotate.crossing_rule import wilson_upper

    plain = crossing_rule(30, 9970, SIGMAS, ACCURACIES)
    # both classes measured on 6 images: the balanced upper bound of equal class accuracies
    upper = wilson_upper(np.array(ACCURACIES), 6, 0.9)
    careful = crossing_rule(30, 9970, SIGMAS, upper, confidence=0.9)
    assert careful.sigma_min > plain.sigma_min and careful.record()["confidence"] == 0.9
