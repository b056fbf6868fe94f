"""The crossing rule: one sigma_min for every low-quality image, from the theory's bias and variance bounds.

The paper's classifier rule admits an image at the first sigma where a noise classifier can no longer tell
it from clean ones; it never asks how many clean images there are to learn that level from. Section 4 of the
paper does (:mod:`ambient_omni.theory.crossing`): with ``n1`` clean and ``n2`` corrupted images, ``N = n1 + n2``,

    B1(sigma) = K(sigma, n1)                                clean only: variance alone
    B2(sigma) = (n2 / N) d_TV(p_sigma, q_sigma) + K(sigma, N)   clean + corrupted: bias plus less variance

(``K``: the Theorem 4.1 KDE bound), and mixed data pays from ``sigma* = inf {sigma : B2 < B1 above sigma}``.
This rule measures the bias term instead of bounding it: ``d_TV >= 2 acc - 1`` with ``acc`` the noise
classifier's balanced accuracy on HELD-OUT clean and corrupted images (images it did not train on, so the
estimate is not inflated by memorisation), at a grid of sigmas, averaged over noise draws; between grid
points the curve is interpolated in log sigma, above the grid it decays as ``1 / sigma`` (Theorem 4.2's shape).
Every low-quality image then gets ``sigma_min = sigma*``; if mixed data never has the better bound, the
low-quality images are not used (``sigma_min = inf``) and the rule says so. It is a rule for the whole set,
not per image: the clean count enters through ``K``, which no per-image classifier rule can see.

The estimate is noisy where few clean images are held out (with 30 clean images and the default 20%, six):
the annotation records the measured curve so that a user can judge it. ``confidence = q`` makes the rule
conservative there: each class's held-out accuracy is replaced by its one-sided Wilson upper bound at level
``q`` for the number of held-out images of that class, ``(p + z^2/2n + z sqrt(p(1 - p)/n + z^2/4n^2)) / (1 + z^2/n)``
with ``z = Phi^-1(q)``, so a small held-out set can only raise the measured bias, and with it ``sigma*``.
Cross-fitting removes the small held-out set instead: ``K`` classifiers, classifier ``k`` trained without fold
``k`` of a ``K``-way partition of the clean and of the corrupted images (:func:`fold_mask`), each scored on its
own fold, hold out every image once; their per-class accuracies are pooled weighted by the images scored,

    acc_c = sum_k n_kc acc_kc / sum_k n_kc,

an estimate of the accuracy of a classifier trained on ``(K - 1) / K`` of the data from all ``n1`` clean images
rather than a fifth of them (each ``2 acc_kc - 1`` bounds ``d_TV`` from below; pooled with per-class weights that
differ by at most one image per fold, the pooled curve is such a bound up to that rounding).
"""

from __future__ import annotations

import math
import os
from statistics import NormalDist
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ambient_omni.annotate.classifier_task import accuracy_at
from ambient_omni.data.annotations import AnnotationTable
from ambient_omni.data.mixed import LOW_QUALITY_KINDS
from ambient_omni.errors import AmbientError
from ambient_omni.files import read_json
from ambient_omni.seeding import generator
from ambient_omni.theory.crossing import crossing_sigma, informative_from, setup_from_accuracy

HOLDOUT_FRACTION = 0.2
"""Share of the clean and of the low-quality images kept from the classifier to measure its accuracy on."""
CURVE_SIGMAS = tuple(float(s) for s in np.geomspace(0.05, 20.0, 12))
"""Where the held-out accuracy is measured (12 log-spaced levels from 0.05 to 20)."""
CURVE_DRAWS = 16
MAX_HELD_OUT = 512
"""Held-out images of each kind scored at most (a seeded subset of the larger kind)."""


def _kinds(provenance: Sequence[str], least: int, what: str) -> list[tuple[str, np.ndarray]]:
    """The indices of the clean and of the low-quality images (``ood`` and other kinds are never held out), each
    kind with at least ``least`` members or an error naming ``what`` needs them."""
    kinds = np.array([str(p).split(":", 1)[0] for p in provenance])
    out = []
    for name, members in (("clean", kinds == "clean"), ("low-quality", np.isin(kinds, LOW_QUALITY_KINDS))):
        index = np.flatnonzero(members)
        if len(index) < least:
            raise AmbientError(f"{what} needs at least {least} {name} images, got {len(index)}")
        out.append((name, index))
    return out


def holdout_mask(provenance: Sequence[str], fraction: float = HOLDOUT_FRACTION, seed: int = 0) -> np.ndarray:
    """Boolean mask of the images held out from classifier training: ``round(fraction * count)`` of the clean
    and of the low-quality images (at least one of each kind that has two or more), chosen by a seeded
    permutation within each kind; other kinds (``ood``) are never held out."""
    if not 0 < fraction < 1:
        raise AmbientError(f"held-out fraction must lie strictly between 0 and 1, got {fraction}")
    mask = np.zeros(len(provenance), dtype=bool)
    for name, index in _kinds(provenance, 2, "the crossing rule"):
        count = min(len(index) - 1, max(1, round(fraction * len(index))))
        order = torch.randperm(len(index), generator=generator(seed, "holdout", name)).numpy()
        mask[index[order[:count]]] = True
    return mask


def fold_mask(provenance: Sequence[str], folds: int, fold: int, seed: int = 0) -> np.ndarray:
    """Boolean mask of fold ``fold`` of a ``folds``-way partition of the clean and of the low-quality images:
    within each kind a seeded permutation, whose ``j``-th member lies in fold ``j mod folds`` (fold sizes differ
    by at most one); the masks of folds ``0 .. folds - 1`` are disjoint and cover both kinds."""
    if folds < 2 or not 0 <= fold < folds:
        raise AmbientError(f"cross-fitting needs folds >= 2 and 0 <= fold < folds, got folds {folds}, fold {fold}")
    mask = np.zeros(len(provenance), dtype=bool)
    for name, index in _kinds(provenance, folds, f"{folds}-fold cross-fitting"):
        order = torch.randperm(len(index), generator=generator(seed, "folds", name)).numpy()
        mask[index[order[fold::folds]]] = True
    return mask


def holdout_record(seed: int, dataset_sha256: str, fraction: float | None = None, folds: int | None = None,
                   fold: int | None = None) -> dict[str, Any]:
    """What a classifier trained without held-out images stores (``classifier.holdout`` of its model config):
    a held-out ``fraction`` (:func:`holdout_mask`) or fold ``fold`` of ``folds`` (:func:`fold_mask`), so that the
    crossing rule can rebuild the same mask later (:func:`holdout_from_record`). The values themselves are
    checked where the mask is built (:func:`holdout_mask`, :func:`fold_mask`; :func:`training_split` does both)."""
    if (fraction is None) == (folds is None) or (folds is None) != (fold is None):
        raise AmbientError("hold out exactly one of: a fraction, or one fold of a partition (folds and fold together); "
                           f"got fraction {fraction}, folds {folds}, fold {fold}")
    spec = {"fraction": float(fraction)} if fraction is not None else {"folds": int(folds), "fold": int(fold)}
    return {**spec, "seed": int(seed), "dataset_sha256": dataset_sha256}


def holdout_from_record(record: dict[str, Any], provenance: Sequence[str]) -> np.ndarray:
    """The held-out mask that a :func:`holdout_record` describes, built on ``provenance``."""
    if "folds" in record:
        return fold_mask(provenance, int(record["folds"]), int(record["fold"]), int(record["seed"]))
    return holdout_mask(provenance, float(record["fraction"]), int(record["seed"]))


def training_split(provenance: Sequence[str], dataset_sha256: str, seed: int, fraction: float | None = None,
                   folds: int | None = None, fold: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The images a noise classifier trains on (a boolean mask: all but the held-out ones) and the
    :func:`holdout_record` it stores, for a held-out ``fraction`` or fold ``fold`` of ``folds``."""
    record = holdout_record(seed, dataset_sha256, fraction, folds, fold)
    return ~holdout_from_record(record, provenance), record


def _holdout_of(model_dir: str | os.PathLike, data: Any) -> dict[str, Any]:
    """The ``classifier.holdout`` record of a noise classifier, checked to belong to ``data``."""
    from ambient_omni.training.checkpoint import model_folder

    config = read_json(Path(model_folder(model_dir)) / "config.json")
    record = config.get("classifier", {}).get("holdout")
    if record is None:
        raise AmbientError(f"{model_dir}: this classifier trained on every image, so its accuracy cannot be measured "
                           "on images it did not see; train it with `ambient classifier train --holdout 0.2` (or one "
                           "classifier per fold with --folds K --fold k)")
    if record["dataset_sha256"] != data.sha256:
        raise AmbientError(f"{model_dir}: trained on another dataset (sha256 {record['dataset_sha256'][:12]}, this "
                           f"one {data.sha256[:12]}): its held-out images are not this set's")
    return record


def recorded_holdout(model_dir: str | os.PathLike, data: Any) -> np.ndarray:
    """The held-out mask a noise classifier was trained without (its ``classifier.holdout`` record), rebuilt on
    ``data``, which must be the dataset it was trained on (same sha256)."""
    return holdout_from_record(_holdout_of(model_dir, data), data.provenance)


def _check_partition(records: list[dict[str, Any]], model_dirs: Sequence[Any]) -> None:
    """Several classifiers are pooled only as the complete set of folds of one partition."""
    folds = {(r.get("folds"), r.get("seed")) for r in records}
    got = sorted(int(r.get("fold", -1)) for r in records)
    if len(folds) != 1 or None in next(iter(folds)) or got != list(range(int(records[0]["folds"]))):
        raise AmbientError("several classifiers are pooled only as every fold of one cross-fitting partition (trained "
                           "with `--folds K --fold 0` ... `--fold K-1` and one --seed); got "
                           + ", ".join(f"{d}: " + (f"fold {r['fold']} of {r['folds']}" if "folds" in r else
                                                    f"held-out fraction {r.get('fraction')}") + f" (seed {r.get('seed')})"
                                       for d, r in zip(model_dirs, records)))


def held_out_accuracy(model: nn.Module, clean: torch.Tensor, corrupted: torch.Tensor,
                      sigmas: Sequence[float] = CURVE_SIGMAS, draws: int = CURVE_DRAWS, seed: int = 0) -> np.ndarray:
    """Balanced accuracy ``(acc_clean + acc_corrupted) / 2`` of ``model`` at each sigma, each class's accuracy
    averaged over ``draws`` noise draws; at most :data:`MAX_HELD_OUT` images of each class (seeded subset).
    Balanced, so that the lower bound ``d_TV >= 2 acc - 1`` holds however unequal the two counts are."""
    return held_out_class_accuracy(model, clean, corrupted, sigmas, draws, seed).mean(axis=1)


def held_out_class_accuracy(model: nn.Module, clean: torch.Tensor, corrupted: torch.Tensor,
                            sigmas: Sequence[float] = CURVE_SIGMAS, draws: int = CURVE_DRAWS,
                            seed: int = 0) -> np.ndarray:
    """``(len(sigmas), 2)``: the accuracy on the clean and on the corrupted held-out images at each sigma
    (:func:`held_out_accuracy` is their mean)."""
    if len(clean) == 0 or len(corrupted) == 0:
        raise AmbientError("held-out accuracy needs clean and corrupted images")
    if draws < 1:
        raise AmbientError(f"draws must be at least 1, got {draws}")
    gen = generator(seed, "held-out-accuracy")
    pick = lambda x: x[torch.randperm(len(x), generator=gen)[:MAX_HELD_OUT]].float()  # noqa: E731
    clean, corrupted = pick(clean), pick(corrupted)
    model.eval()
    out = []
    for sigma in sigmas:
        out.append([float(np.mean([accuracy_at(model, pos, neg, float(sigma), gen) for _ in range(draws)]))
                    for pos, neg in ((clean, clean[:0]), (corrupted[:0], corrupted))])
    return np.asarray(out)


def wilson_upper(accuracy: np.ndarray, n: int, confidence: float) -> np.ndarray:
    """The one-sided Wilson upper bound at level ``confidence`` of accuracies measured on ``n`` images."""
    if not 0.5 <= confidence < 1 or n < 1:
        raise AmbientError(f"crossing confidence must lie in [0.5, 1) and the held-out set be non-empty, got "
                           f"{confidence}, {n} images")
    z = NormalDist().inv_cdf(confidence)
    p = np.clip(np.asarray(accuracy, dtype=np.float64), 0.0, 1.0)
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.minimum(1.0, (centre + spread) / (1 + z * z / n))


@dataclass(frozen=True)
class CrossingRule:
    """The rule's inputs and result (stored in the annotation file's ``created_by``).

    ``sigma_min``: the crossing ``sigma*`` (``inf``: mixed data never has the better bound, the low-quality
    images are not used); ``status``: ``crossing``, ``always`` or ``never`` (:class:`~ambient_omni.theory.
    crossing.CrossingResult`); ``vacuous``: the clean-only bound is trivial (1) at ``sigma*``; ``held_out``: the
    clean and corrupted images the accuracies were measured on, pooled over ``classifiers`` (cross-fitting);
    ``informative``: a vacuous crossing was raised to where the clean-only bound leaves 1 (``vacuous_sigma``:
    the crossing before it was raised, ``None`` if it was not)."""

    n_clean: int
    n_corrupted: int
    sigmas: tuple[float, ...]
    accuracies: tuple[float, ...]
    sigma_min: float
    status: str
    vacuous: bool
    kde: str = "paper"
    confidence: float | None = None
    held_out: tuple[int, int] | None = None
    classifiers: int = 1
    informative: bool = False
    vacuous_sigma: float | None = None

    def record(self) -> dict[str, Any]:
        """JSON-ready form (``inf`` as the string ``"inf"``)."""
        rec = asdict(self)
        rec["sigma_min"] = "inf" if math.isinf(self.sigma_min) else self.sigma_min
        if not self.informative:  # only the --informative rule records what it raised
            for key in ("informative", "vacuous_sigma"):
                rec.pop(key)
        return {"rule": "crossing", **rec, "sigmas": list(self.sigmas), "accuracies": list(self.accuracies)}


def crossing_rule(n_clean: int, n_corrupted: int, sigmas: Sequence[float], accuracies: Sequence[float],
                  kde: str = "paper", confidence: float | None = None, held_out: tuple[int, int] | None = None,
                  classifiers: int = 1, informative: bool = False) -> CrossingRule:
    """``sigma*`` of the theory's bounds with the bias measured as ``max(0, 2 acc - 1)`` (module doc);
    ``confidence``, ``held_out`` and ``classifiers`` only record how ``accuracies`` were measured. With
    ``informative``, a vacuous crossing (the clean-only bound trivial, 1, at ``sigma*``: the mixed bound then
    "wins" only against a bound that says nothing) is raised to the smallest sigma where the clean-only bound is
    below 1 (:func:`~ambient_omni.theory.crossing.informative_from`); mixed data still wins there."""
    setup = setup_from_accuracy(sigmas, accuracies, n_clean=int(n_clean), n_corrupted=int(n_corrupted), kde=kde)
    result = crossing_sigma(setup)
    sigma, vacuous, raised = result.sigma, result.vacuous, None
    if informative and vacuous:
        sigma, raised = informative_from(setup, result.sigma), result.sigma
        vacuous = bool(math.isfinite(sigma) and setup.clean_bound(np.asarray(sigma)) >= 1.0)
    return CrossingRule(int(n_clean), int(n_corrupted), tuple(float(s) for s in sigmas),
                        tuple(float(a) for a in accuracies), sigma, result.status, vacuous, kde,
                        confidence, None if held_out is None else (int(held_out[0]), int(held_out[1])), int(classifiers),
                        bool(informative), raised)


def pooled_class_accuracy(model_dirs: Sequence[str | os.PathLike], data: Any, draws: int = CURVE_DRAWS,
                          seed: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """``(len(CURVE_SIGMAS), 2)`` per-class held-out accuracy of one classifier, or of the complete folds of a
    cross-fitting partition pooled as ``sum_k n_kc acc_kc / sum_k n_kc`` (module doc), and the pooled counts
    ``(n_clean, n_corrupted)`` of held-out images scored."""
    from ambient_omni.training.checkpoint import load_model, model_folder

    if not model_dirs:
        raise AmbientError("the crossing rule needs a noise classifier")
    records = [_holdout_of(d, data) for d in model_dirs]
    if len(records) > 1 or "folds" in records[0]:  # a lone fold would measure only 1/K of the images
        _check_partition(records, model_dirs)
    kinds = [str(p).split(":", 1)[0] for p in data.provenance]
    clean = torch.tensor([k == "clean" for k in kinds])
    low = torch.tensor([k in LOW_QUALITY_KINDS for k in kinds])
    accuracies, counts = [], []
    for model_dir, record in zip(model_dirs, records):
        held = torch.from_numpy(holdout_from_record(record, data.provenance))
        counts.append([min(int((mask & held).sum()), MAX_HELD_OUT) for mask in (clean, low)])
        accuracies.append(held_out_class_accuracy(load_model(model_folder(model_dir)), data.images[clean & held],
                                                  data.images[low & held], draws=draws, seed=seed))
    n = np.asarray(counts, dtype=np.float64)  # (classifiers, 2)
    pooled = accuracies[0] if len(accuracies) == 1 else np.einsum("kc,ksc->sc", n, np.stack(accuracies)) / n.sum(0)
    return pooled, (int(n[:, 0].sum()), int(n[:, 1].sum()))


def annotate_crossing(model_dirs: str | os.PathLike | Sequence[str | os.PathLike], data: Any,
                      draws: int = CURVE_DRAWS, seed: int = 0, kde: str = "paper",
                      confidence: float | None = None, informative: bool = False) -> tuple[AnnotationTable, CrossingRule]:
    """The whole rule on a dataset (:class:`~ambient_omni.data.mixed.MixedData`): the balanced accuracy of one
    classifier, or of the folds of a cross-fitting partition pooled (:func:`pooled_class_accuracy`), on the
    images it was trained without (with ``confidence``, each class's Wilson upper bound for the pooled count:
    module doc), the crossing for the set's clean and low-quality counts (``informative``: a vacuous one raised,
    :func:`crossing_rule`), and the annotation table."""
    dirs = [model_dirs] if isinstance(model_dirs, (str, os.PathLike)) else list(model_dirs)
    per_class, held_out = pooled_class_accuracy(dirs, data, draws, seed)
    if confidence is not None:
        per_class = np.stack([wilson_upper(per_class[:, k], held_out[k], confidence) for k in (0, 1)], axis=1)
    kinds = [str(p).split(":", 1)[0] for p in data.provenance]
    n_clean, n_low = kinds.count("clean"), sum(k in LOW_QUALITY_KINDS for k in kinds)
    rule = crossing_rule(n_clean, n_low, CURVE_SIGMAS, per_class.mean(axis=1), kde, confidence, held_out, len(dirs),
                         informative)
    return crossing_annotation(data.ids.numpy(), data.provenance, rule, data.sha256), rule


def crossing_annotation(ids: Any, provenance: list[str], rule: CrossingRule,
                        dataset_sha256: str | None = None) -> AnnotationTable:
    """Clean images ``(0, 0)``; every low-quality image ``(sigma*, 0)``, or ``(inf, 0)`` (unused) when the rule
    found no crossing; ``ood:*`` images are not this rule's business and are an error."""
    kinds = {str(p).split(":", 1)[0] for p in provenance}
    if "ood" in kinds:
        raise AmbientError("the crossing rule annotates clean and low-quality images only; the set has ood:* images")
    rule_map = {"clean": (0.0, 0.0), **{kind: (rule.sigma_min, 0.0) for kind in LOW_QUALITY_KINDS}}
    return AnnotationTable.by_provenance(ids, provenance, rule_map, "crossing", dataset_sha256, rule.record())
