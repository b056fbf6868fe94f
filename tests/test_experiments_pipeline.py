"""Bench pipeline stages: the ``ood-crops`` annotation of a tiny OOD cell, end to end and cached; budget ladders and
runs reused across bench folders."""

import math
from pathlib import Path

import numpy as np
import pytest

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
    from ambient_omni.data.dataset_folder import write_dataset
    from ambient_omni.data.mixed import MixedData

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


def test_the_cells_loss_target_reaches_the_run(tmp_path: Path) -> None:
    cfg = {**_ood_cell(tmp_path), "method": "clean-only"}
    cfg["train"] = {**cfg["train"], "images": 32, "loss_target": "x0"}
    root = tmp_path / "root"
    dataset = pipeline.make_dataset(cfg, root)
    model = pipeline.train_denoiser(cfg, dataset, pipeline.make_annotations(cfg, dataset, root), root / "run")
    assert read_json(model / "config.json")["settings"]["loss_target"] == "x0"


def test_cells_that_train_the_same_classifier_share_an_annotation_lock() -> None:
    lock = pipeline._annotation_lock
    assert lock({"method": "classifier", "seed": 1}) == lock({"method": "crossing", "seed": 1}) == "classifier-seed1"
    assert lock({"method": "classifier", "seed": 0}) != lock({"method": "classifier", "seed": 1})
    assert lock({"method": "classifier", "seed": 1, "classifier": {"seed": 0}}) == "classifier-seed0"
    assert lock({"method": "fixed", "seed": 3}) == lock({"method": "clean-only", "seed": 0}) == "shared"
    assert lock({"method": "ood-crops", "seed": 1}) == lock({"method": "ood-crops", "seed": 0}) == "crops-seed0"
