"""The noise-classifier stages of a bench cell: one classifier per seed (cached), the ``classifier`` annotation and
its metrics, the floored copy, and the ``crossing`` annotation from a classifier trained without held-out images."""

import math
from pathlib import Path

import numpy as np
import pytest

from ambient_omni.annotate.curves import lognormal_grid
from ambient_omni.data.annotations import read_annotations
from ambient_omni.errors import AmbientError
from ambient_omni.experiments import classifier_stage, pipeline
from ambient_omni.files import read_json

TINY_NET = {"model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1}


def _fail(*args: object, **kwargs: object) -> None:
    raise AssertionError("a cached stage ran again")


def _classifier_cell(tmp_path: Path, method: str = "classifier") -> dict:
    """40 random 12x12 images, 8 clean and 32 blurred, a tiny noise classifier."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "src.npy", rng.integers(0, 256, (40, 12, 12)).astype(np.uint8))
    return {"source": f"array:{tmp_path / 'src.npy'}", "n": 40, "clean_count": 8, "corruption": "blur:sigma=1.0",
            "data_seed": 0, "method": method, "seed": 0,
            "classifier": {"preset": "fmnist-classifier-small", "network": TINY_NET, "images": 256, "batch": 16,
                           "draws": 1, "max_points": 32, "stride": 128, "window": 16, "back": 12}}


def test_crossing_cells_hold_images_out_of_the_classifier_and_give_one_sigma_min(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, root = _classifier_cell(tmp_path, "crossing"), tmp_path / "root"
    dataset = pipeline.make_dataset(cfg, root)
    path = pipeline.make_annotations(cfg, dataset, root)
    table = read_annotations(path)
    clean = np.array([e["provenance"] == "clean" for e in table.extra])
    made = table.created_by
    assert made["rule"] == "crossing" and (made["n_clean"], made["n_corrupted"]) == (8, 32)
    assert len(made["accuracies"]) == len(made["sigmas"]) == 12
    expected = math.inf if made["sigma_min"] == "inf" else made["sigma_min"]
    assert np.all(table.sigma_min[clean] == 0) and np.all(table.sigma_min[~clean] == expected)
    (check,) = (root / "classifiers").glob("*/check.json")
    assert read_json(check)["images"] == 6  # 2 of the 8 clean images held out of the classifier's training
    metrics = pipeline.annotation_metrics(cfg, path)
    at_1 = made["accuracies"][int(np.argmin(np.abs(np.log(made["sigmas"]))))]
    assert metrics["crossing_status"] == made["status"] and metrics["held_out_accuracy_at_1"] == at_1
    assert metrics.get("mean_sigma_min", math.inf) == expected
    # cached: another cell of the same seed trains nothing and measures nothing
    monkeypatch.setattr(classifier_stage, "_train_noise_classifier", _fail)
    monkeypatch.setattr("ambient_omni.annotate.crossing_rule.annotate_crossing", _fail)
    assert pipeline.make_annotations({**cfg, "train": {"images": 10}}, dataset, root) == path


def test_cross_fitted_crossing_trains_one_classifier_per_fold_and_measures_every_image(tmp_path: Path) -> None:
    cfg, root = {**_classifier_cell(tmp_path, "crossing"), "crossing": {"folds": 2}}, tmp_path / "root"
    dataset = pipeline.make_dataset(cfg, root)
    path = pipeline.make_annotations(cfg, dataset, root)
    made = read_annotations(path).created_by
    assert path.stem.endswith("-k2") and made["classifiers"] == 2 and made["held_out"] == [8, 32]
    checks = sorted(read_json(c)["images"] for c in (root / "classifiers").glob("*/check.json"))
    assert checks == [4, 4]  # each classifier trained on the 4 clean images of the other fold
    plain = pipeline.make_annotations({**cfg, "crossing": {}}, dataset, root)
    assert plain != path and read_annotations(plain).created_by["held_out"] == [2, 6]
    for bad, message in (({"folds": 1}, "at least 2 folds"), ({"fold": 2}, "crossing.fold: not a crossing setting")):
        with pytest.raises(AmbientError, match=message):
            pipeline.make_annotations({**cfg, "crossing": bad}, dataset, root)
    with pytest.raises(AmbientError, match="replaces classifier.holdout"):
        pipeline.make_annotations({**cfg, "classifier": {**cfg["classifier"], "holdout": 0.2}}, dataset, root)


def test_classifier_cells_train_one_classifier_per_seed_and_report_the_annotation(tmp_path: Path) -> None:
    cfg = _classifier_cell(tmp_path)
    root = tmp_path / "root"
    dataset = pipeline.make_dataset(cfg, root)
    paths = [pipeline.make_annotations({**cfg, "seed": seed}, dataset, root) for seed in (0, 1)]
    assert paths[0] != paths[1] and len(list((root / "classifiers").glob("*/model"))) == 2
    table = read_annotations(paths[0])
    clean = np.array([e["provenance"] == "clean" for e in table.extra])
    assert clean.sum() == 8 and np.all(table.sigma_min[clean] == 0)
    assert np.all(table.sigma_min[~clean] > 0) and np.all(np.isfinite(table.sigma_min[~clean]))
    metrics = pipeline.annotation_metrics(cfg, paths[0])
    assert metrics["mean_sigma_min"] == pytest.approx(float(table.sigma_min[~clean].mean()))
    assert metrics["median_sigma_min"] == pytest.approx(float(np.median(table.sigma_min[~clean])))
    top = lognormal_grid(2048, -1.2, 1.2, 0).max()  # the default grid: the classifier trained on (-1.2, 1.2)
    assert metrics["never_crossed_share"] == pytest.approx(float(np.mean(table.sigma_min[~clean] >= top)))
    bottom = lognormal_grid(2048, -1.2, 1.2, 0).min()
    assert metrics["at_grid_min_share"] == pytest.approx(float(np.mean(table.sigma_min[~clean] <= bottom)))
    model_dir, _ = classifier_stage.noise_classifier(classifier_stage.classifier_settings(cfg), dataset, root)  # seed 0's, cached
    assert metrics["classifier_accuracy"] == read_json(model_dir.parent / "check.json")["accuracy"]
    assert pipeline.annotation_metrics({**cfg, "method": "fixed"}, paths[0]) is None
    floor = float(np.median(table.sigma_min[~clean]))
    with pytest.MonkeyPatch.context() as mp:  # the floored cell reuses seed 0's classifier and annotation
        mp.setattr("ambient_omni.annotate.noise.annotate_dataset", _fail)
        mp.setattr(classifier_stage, "_train_noise_classifier", _fail)
        floored = pipeline.make_annotations({**cfg, "classifier": {**cfg["classifier"], "sigma_min_floor": floor}},
                                            dataset, root)
    low = read_annotations(floored)
    np.testing.assert_array_equal(low.sigma_min, np.where(clean, 0.0, np.maximum(table.sigma_min, floor)))
    assert low.created_by["sigma_min_floor"] == floor and floored.parent == paths[0].parent


def test_the_noise_classifier_seed_follows_the_cell_seed_unless_set() -> None:
    # each training seed gets its own classifier, so a cell's seed spread includes the classifier's
    assert classifier_stage.classifier_settings({"seed": 1})["seed"] == 1
    assert classifier_stage.classifier_settings({"seed": 1, "classifier": {"seed": 5, "images": 9}}) == {
        **classifier_stage.DEFAULT_CLASSIFIER, "seed": 5, "images": 9}
    assert classifier_stage.classifier_settings({})["seed"] == 0
