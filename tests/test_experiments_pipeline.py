"""Bench pipeline stages: the ``ood-crops`` annotation of a tiny OOD cell, end to end and cached; classifier settings."""

import math
from pathlib import Path

import numpy as np
import pytest

from ambient_omni.annotate.curves import lognormal_grid
from ambient_omni.data.annotations import read_annotations
from ambient_omni.experiments import pipeline
from ambient_omni.files import read_json, write_json

TINY_NET = {"model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1}


def _ood_cell(tmp_path: Path) -> dict:
    """16 smooth 12x12 target images and 32 noisy OOD ones, tiny networks, a few hundred images per model."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 12)
    smooth = 128 + 100 * (rng.uniform(-1, 1, (48, 1, 1)) * ramp[:, None] + rng.uniform(-1, 1, (48, 1, 1)) * ramp)
    noisy = smooth[16:] + rng.normal(0, 40, (32, 12, 12))
    np.save(tmp_path / "target.npy", smooth[:16].clip(0, 255).astype(np.uint8))
    np.save(tmp_path / "ood.npy", noisy.clip(0, 255).astype(np.uint8))
    return {"target": f"array:{tmp_path / 'target.npy'}", "ood": f"array:{tmp_path / 'ood.npy'}", "data_seed": 0,
            "method": "ood-crops", "seed": 1,
            "train": {"images": 192, "batch": 16, "lr_rampup": 64, "ema_halflife": 64, "network": TINY_NET},
            "crops": {"preset": "fmnist-classifier-small", "network": TINY_NET, "images": 192, "batch": 16,
                      "lr_rampup": 64, "ema_halflife": 64, "locality_images": 8, "sigmas": [0.05, 0.2, 1.0]}}


def test_clean_only_and_fixed_cells_treat_synthetic_images_like_corrupted_ones(tmp_path: Path) -> None:
    from ambient_omni.data.mixed import MixedData, write_dataset

    provenance = ["clean", "synthetic:edm", "corrupted:blur:sigma=1.0", "ood:x"]
    codes = np.zeros((4, 1, 4, 4), dtype=np.uint8)
    write_dataset(tmp_path / "d", MixedData(codes, np.zeros(4, dtype=np.int64), ["t"] * 4, np.arange(4), provenance, 0))
    clean_only = pipeline.make_annotations({"method": "clean-only"}, tmp_path / "d", tmp_path)
    fixed = pipeline.make_annotations({"method": "fixed", "sigma_min": 1.5}, tmp_path / "d", tmp_path)
    assert read_annotations(clean_only).sigma_min.tolist() == [0.0, math.inf, math.inf, math.inf]
    assert read_annotations(fixed).sigma_min.tolist() == [0.0, 1.5, 1.5, math.inf]


def test_ood_crops_annotates_ood_images_from_the_locality_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, root = _ood_cell(tmp_path), tmp_path / "root"
    dataset = pipeline.make_dataset(cfg, root)
    path = pipeline.make_annotations(cfg, dataset, root)
    table = read_annotations(path)
    ood = np.array([e["provenance"].startswith("ood:") for e in table.extra])
    assert ood.sum() == 32
    assert np.all(table.sigma_min[~ood] == 0) and np.all(table.sigma_max[~ood] == 0)
    assert np.all(np.isinf(table.sigma_min[ood]))
    assert np.all(np.isfinite(table.sigma_max[ood])) and np.all(table.sigma_max[ood] >= 0)
    (locality,) = (root / "locality").glob("*.json")
    crop_map = read_json(locality)["crop_to_sigma_max"]
    assert set(crop_map) >= {"4", "8"}
    allowed = {0.0, *crop_map.values()}
    assert all(any(math.isclose(v, a) for a in allowed) for v in table.sigma_max[ood])
    assert Path(f"{path.with_suffix('')}-crops.png").is_file()
    assert len(list((root / "classifiers").glob("*-crop4-*"))) == 1
    assert len(list((root / "classifiers").glob("*-crop8-*"))) == 1
    # every stage is cached: a second cell (another training seed) trains nothing and reuses the file
    for name in ("training.loop.Trainer.run", "annotate.locality.dataset_locality", "annotate.crops.annotate_dataset"):
        monkeypatch.setattr(f"ambient_omni.{name}", _fail)
    assert pipeline.make_annotations({**cfg, "seed": 2}, dataset, root) == path
    # the reported figures are over all 32 OOD images, those no crop size admitted (sigma_max 0) included
    assert pipeline.annotation_metrics(cfg, path) == {
        "mean_sigma_max": pytest.approx(float(table.sigma_max[ood].sum()) / 32),
        "unused_share": pytest.approx(float((table.sigma_max[ood] == 0).sum()) / 32)}


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
    monkeypatch.setattr(pipeline, "_train_noise_classifier", _fail)
    monkeypatch.setattr("ambient_omni.annotate.crossing_rule.annotate_crossing", _fail)
    assert pipeline.make_annotations({**cfg, "train": {"images": 10}}, dataset, root) == path


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
    model_dir, _ = pipeline.noise_classifier(pipeline.classifier_settings(cfg), dataset, root)  # seed 0's, cached
    assert metrics["classifier_accuracy"] == read_json(model_dir.parent / "check.json")["accuracy"]
    assert pipeline.annotation_metrics({**cfg, "method": "fixed"}, paths[0]) is None
    floor = float(np.median(table.sigma_min[~clean]))
    with pytest.MonkeyPatch.context() as mp:  # the floored cell reuses seed 0's classifier and annotation
        mp.setattr("ambient_omni.annotate.noise.annotate_dataset", _fail)
        mp.setattr(pipeline, "_train_noise_classifier", _fail)
        floored = pipeline.make_annotations({**cfg, "classifier": {**cfg["classifier"], "sigma_min_floor": floor}},
                                            dataset, root)
    low = read_annotations(floored)
    np.testing.assert_array_equal(low.sigma_min, np.where(clean, 0.0, np.maximum(table.sigma_min, floor)))
    assert low.created_by["sigma_min_floor"] == floor and floored.parent == paths[0].parent


def _fail(*args: object, **kwargs: object) -> None:
    raise AssertionError("a cached stage ran again")


def test_a_longer_budget_continues_a_finished_shorter_cell(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from safetensors.torch import load_file

    from ambient_omni.training.checkpoint import list_checkpoints

    cfg = {**_ood_cell(tmp_path), "method": "clean-only"}
    root = tmp_path / "root"
    dataset = pipeline.make_dataset(cfg, root)
    annotations = pipeline.make_annotations(cfg, dataset, root)
    short = {**cfg, "train": {**cfg["train"], "images": 96}}  # 6 of the 12 steps
    pipeline.train_denoiser(short, dataset, annotations, root / "cells" / "short" / "run")
    longer = pipeline.train_denoiser(cfg, dataset, annotations, root / "cells" / "long" / "run",
                                     siblings=[root / "cells" / "short" / "run"])
    assert "continuing from" in capsys.readouterr().out
    assert [r.step for r in list_checkpoints(root / "cells" / "long" / "run")] == [6, 12]
    straight = pipeline.train_denoiser(cfg, dataset, annotations, tmp_path / "straight" / "run")
    a, b = load_file(str(longer / "model.safetensors")), load_file(str(straight / "model.safetensors"))
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_the_crops_stage_reuses_a_finished_target_only_cell_of_its_seed(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    from safetensors.torch import load_file

    cfg = {**_ood_cell(tmp_path), "method": "clean-only", "seed": 0}  # the crops stage's seed (crops.seed = 0)
    root = tmp_path / "root"
    dataset = pipeline.make_dataset(cfg, root)
    cell_run = root / "cells" / "target-only" / "run"
    cell_model = pipeline.train_denoiser(cfg, dataset, pipeline.make_annotations(cfg, dataset, root), cell_run)
    assert pipeline.denoiser_runs(root, root / "elsewhere") == [cell_run]
    shared, _ = pipeline._target_denoiser(cfg, dataset, root, 0)
    assert "continuing from" in capsys.readouterr().out  # adopted the cell's final checkpoint: no training
    a, b = load_file(str(cell_model / "model.safetensors")), load_file(str(shared / "model.safetensors"))
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
    assert pipeline.denoiser_runs(root, cell_run) == [shared.parent]
    pipeline._target_denoiser(cfg, dataset, root, 1)  # another seed: another trajectory, trained anew
    assert "continuing from" not in capsys.readouterr().out
    other_lr = {**cfg, "train": {**cfg["train"], "lr": 5e-4}}  # another setting: trained anew too
    run = root / "cells" / "other-lr" / "run"
    pipeline.train_denoiser(other_lr, dataset, pipeline.make_annotations(cfg, dataset, root), run,
                            pipeline.denoiser_runs(root, run))
    assert "continuing from" not in capsys.readouterr().out


def test_a_target_only_cell_reuses_the_crops_stage_denoiser(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = {**_ood_cell(tmp_path), "method": "clean-only", "seed": 0}
    root = tmp_path / "root"
    dataset = pipeline.make_dataset(cfg, root)
    shared, _ = pipeline._target_denoiser(cfg, dataset, root, 0)  # the crops stage ran first
    run = root / "cells" / "target-only" / "run"
    pipeline.train_denoiser(cfg, dataset, pipeline.make_annotations(cfg, dataset, root), run,
                            pipeline.denoiser_runs(root, run))
    assert f"continuing from {shared.parent}" in capsys.readouterr().out


def test_a_cell_continues_a_run_of_another_bench_folder_only_on_identical_annotations(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from safetensors.torch import load_file

    cfg = {**_ood_cell(tmp_path), "method": "clean-only", "seed": 0}
    other, root = tmp_path / "other", tmp_path / "root"  # `ambient bench --reuse other` from `--out root`
    theirs = pipeline.train_denoiser(cfg, pipeline.make_dataset(cfg, other), pipeline.make_annotations(
        cfg, pipeline.make_dataset(cfg, other), other), other / "cells" / "c" / "run")
    dataset = pipeline.make_dataset(cfg, root)
    annotations = pipeline.make_annotations(cfg, dataset, root)
    assert pipeline.reusable_runs(other, annotations) == [other / "cells" / "c" / "run"]
    assert pipeline.reusable_runs(other, None) == []  # a run on annotations is no run without
    run = root / "cells" / "c" / "run"
    mine = pipeline.train_denoiser(cfg, dataset, annotations, run, pipeline.reusable_runs(other, annotations))
    assert f"continuing from {other / 'cells' / 'c' / 'run'}" in capsys.readouterr().out
    source = str((other / "cells" / "c" / "run").resolve())
    assert read_json(run / "adopted.json") == {"run": source, "step": 12}
    a, b = load_file(str(theirs / "model.safetensors")), load_file(str(mine / "model.safetensors"))
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
    code = {"package": "0.1.0", "commit": "1" * 40, "dirty": False}
    write_json(other / "cells" / "c" / "result.json", {"code": code})  # the adopted cell's code is carried over
    with pytest.MonkeyPatch.context() as mp:  # a whole cell: its result names what it continued
        mp.setattr(pipeline, "sample_and_evaluate", lambda *args: {})
        third, said = tmp_path / "third", []
        result = pipeline.run_cell(cfg, third, third / "cells" / "c", reuse=[other], log=said.append)
    assert result["paths"]["adopted"] == {"run": source, "step": 12, "code": code}
    assert [line.split(":")[0].strip() for line in said] == [f"stage {k} of 4" for k in (1, 2, 3, 4)]
    assert "training the denoiser" in said[2] and "sampling" in said[3]  # what each stage is, in words
    # same file name, other content (e.g. a classifier annotation made with another thread count): not offered
    (other / "annotations" / annotations.name).write_text(annotations.read_text() + "\n", encoding="utf-8")
    assert pipeline.reusable_runs(other, annotations) == []


def test_the_noise_classifier_seed_follows_the_cell_seed_unless_set() -> None:
    # each training seed gets its own classifier, so a cell's seed spread includes the classifier's
    assert pipeline.classifier_settings({"seed": 1})["seed"] == 1
    assert pipeline.classifier_settings({"seed": 1, "classifier": {"seed": 5, "images": 9}}) == {
        **pipeline.DEFAULT_CLASSIFIER, "seed": 5, "images": 9}
    assert pipeline.classifier_settings({})["seed"] == 0
