"""``ambient annotate fixed|noise|crossing|crops|quality`` and ``ambient locality`` end to end on a tiny dataset with untrained tiny networks."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_omni.cli.main import main
from ambient_omni.data.annotations import read_annotations
from ambient_omni.data.dataset_folder import write_dataset
from ambient_omni.data.mixed import MixedData
from ambient_omni.networks.registry import build_network
from ambient_omni.training.checkpoint import build_model, save_model

CLF = {"kind": "classifier", "in_channels": 1, "model_channels": 4, "channel_mult": [1], "num_blocks": 1}


def _dataset(folder: Path, provenance: list[str]) -> Path:
    rng = np.random.default_rng(0)
    n = len(provenance)
    data = MixedData(rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8), np.zeros(n, dtype=np.int64),
                     ["test"] * n, np.arange(n), provenance, 0)
    write_dataset(folder, data)
    return folder


def test_fixed(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "d", ["clean", "corrupted:noise:std=0.1", "ood:x"])
    assert main(["annotate", "fixed", "--data", str(data), "--sigma-min", "1.5", "--sigma-max", "0.2",
                 "--out", str(tmp_path / "a.jsonl")]) == 0
    t = read_annotations(tmp_path / "a.jsonl")
    assert t.sigma_min.tolist() == [0.0, 1.5, math.inf] and t.sigma_max.tolist() == [0.0, 0.0, 0.2]


def test_written_summary_is_whole(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The summary after ``wrote OUT`` is complete text (it used to be JSON cut at 400 characters, mid-word)."""
    provenance = ["clean"] + [f"corrupted:blur:sigma={s}" for s in (0.4, 0.6, 0.8, 1.0)] + ["ood:fashion-mnist:test"]
    data = _dataset(tmp_path / "d", provenance)
    assert main(["annotate", "fixed", "--data", str(data), "--sigma-min", "1.5", "--sigma-max", "0.2",
                 "--out", str(tmp_path / "a.jsonl")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"wrote {tmp_path / 'a.jsonl'}:"
    assert "6 images: 1 clean, 4 corrupted" in out and "methods: fixed (6)" in out
    for prov in provenance[1:]:
        assert f"  {prov}: 1 images" in out
    assert "{" not in out


def test_noise_fast_with_compare_and_pictures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _dataset(tmp_path / "d", ["clean", "corrupted:noise:std=0.1", "corrupted:noise:std=0.1"])
    save_model(tmp_path / "clf", build_network(CLF), {"kind": "classifier", "network": CLF})
    out = tmp_path / "n.jsonl"
    args = ["annotate", "noise", "--classifier", str(tmp_path / "clf"), "--data", str(data), "--out", str(out),
            "--grid-size", "256", "--max-points", "40", "--plot-images", "1", "--compare", "2", "--no-progress",
            "--device", "cpu"]
    assert main(args) == 0
    t = read_annotations(out)
    assert t.sigma_min[0] == 0 and np.all(t.sigma_min[1:] > 0)
    assert (tmp_path / "n-hist.png").is_file() and (tmp_path / "n-curves.png").is_file()
    assert "vs dense on 2 images" in capsys.readouterr().out
    assert main(args[:-2] + ["--tau", "0.3", "--device", "cpu"]) == 2  # refuses to mix settings with old parts


def test_noise_runs_bf16_by_default_and_float32_with_no_bf16(tmp_path: Path) -> None:
    """The CLI's default inference path is bf16 where this machine has it (recorded in the file); --no-bf16 is
    the float32 path, whose sigma_min are the library's float32 annotation exactly."""
    from ambient_omni.annotate.noise import NoiseAnnotationConfig, annotate_dataset
    from ambient_omni.data.dataset_folder import load_dataset
    from ambient_omni.device import uses_bf16

    data = _dataset(tmp_path / "d", ["clean"] + ["corrupted:noise:std=0.1"] * 3)
    save_model(tmp_path / "clf", build_network(CLF), {"kind": "classifier", "network": CLF})
    base = ["annotate", "noise", "--classifier", str(tmp_path / "clf"), "--data", str(data), "--grid-size", "256",
            "--max-points", "40", "--plot-images", "0", "--no-progress", "--device", "cpu"]
    assert main(base + ["--out", str(tmp_path / "fast.jsonl")]) == 0
    fast = read_annotations(tmp_path / "fast.jsonl")
    assert fast.created_by["inference"] == {"bf16": uses_bf16(torch.device("cpu"), True), "compile": False}
    assert main(base + ["--out", str(tmp_path / "fp32.jsonl"), "--no-bf16"]) == 0
    fp32 = read_annotations(tmp_path / "fp32.jsonl")
    assert fp32.created_by["inference"] == {"bf16": False, "compile": False}
    cfg = NoiseAnnotationConfig(method="fast", grid_size=256, max_points=40)
    library = annotate_dataset(tmp_path / "clf", load_dataset(data), tmp_path / "lib.jsonl", cfg, progress=False)
    assert np.array_equal(fp32.sigma_min, library.sigma_min)


def test_locality_then_crops(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "d", ["clean", "clean", "ood:x", "ood:x"])
    den = {"kind": "unet", "in_channels": 1, "out_channels": 1, "model_channels": 4, "channel_mult": [1], "num_blocks": 1}
    den_config = {"kind": "denoiser", "network": den}
    save_model(tmp_path / "den", build_model(den_config), den_config)
    loc = tmp_path / "loc.json"
    assert main(["locality", "--model", str(tmp_path / "den"), "--data", str(data), "--out", str(loc),
                 "--sigmas", "0.05,0.5", "--crop-sizes", "4,8", "--device", "cpu"]) == 0
    report = json.loads(loc.read_text())
    assert set(report["crop_to_sigma_max"]) == {"4", "8"} and loc.with_suffix(".png").is_file()
    for size in (4, 8):
        save_model(tmp_path / f"c{size}", build_network(CLF),
                   {"kind": "classifier", "network": CLF, "classifier": {"crop_size": size}})
    out = tmp_path / "c.jsonl"
    assert main(["annotate", "crops", "--classifiers", f"{tmp_path / 'c4'},{tmp_path / 'c8'}", "--locality", str(loc),
                 "--data", str(data), "--out", str(out), "--threshold", "0.0", "--device", "cpu"]) == 0
    t = read_annotations(out)
    assert t.sigma_min.tolist()[:2] == [0, 0] and np.all(np.isinf(t.sigma_min[2:]))
    # threshold 0 is always fooled: the largest size, 8, gives map(8)
    assert np.all(t.sigma_max[2:] == report["crop_to_sigma_max"]["8"])
    assert (tmp_path / "c-crops.png").is_file()


@pytest.mark.parametrize("method", ["fast", "dense"])
def test_noise_cli_defaults_are_the_library_defaults(method: str, tmp_path: Path) -> None:
    """The CLI spells its defaults out for --help; they must stay those of NoiseAnnotationConfig / FastPlan.
    The grid's log-normal is the classifier's training one when it records it, else the default."""
    from ambient_omni.annotate.noise import NoiseAnnotationConfig
    from ambient_omni.cli.annotate import _noise_config
    from ambient_omni.cli.main import build_parser

    save_model(tmp_path / "plain", build_network(CLF), {"kind": "classifier", "network": CLF})
    save_model(tmp_path / "low", build_network(CLF),
               {"kind": "classifier", "network": CLF, "classifier": {"p_mean": -3.5, "p_std": 1.0}})
    parse = build_parser().parse_args
    args = parse(["annotate", "noise", "--classifier", str(tmp_path / "plain"), "--data", "d", "--out", "o"])
    assert _noise_config(args, method) == NoiseAnnotationConfig(method=method)
    args = parse(["annotate", "noise", "--classifier", str(tmp_path / "low"), "--data", "d", "--out", "o"])
    assert _noise_config(args, method) == NoiseAnnotationConfig(method=method, p_mean=-3.5, p_std=1.0)
    args = parse(["annotate", "noise", "--classifier", str(tmp_path / "low"), "--data", "d", "--out", "o",
                  "--p-mean", "-1.0"])
    assert _noise_config(args, method) == NoiseAnnotationConfig(method=method, p_mean=-1.0, p_std=1.0)


@pytest.mark.parametrize("option", ["--chunk", "--batch"])
def test_noise_refuses_a_zero_chunk_or_batch(option: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _dataset(tmp_path / "d", ["clean", "corrupted:noise:std=0.1"])
    save_model(tmp_path / "clf", build_network(CLF), {"kind": "classifier", "network": CLF})
    out = tmp_path / "n.jsonl"
    assert main(["annotate", "noise", "--classifier", str(tmp_path / "clf"), "--data", str(data), "--out", str(out),
                 "--grid-size", "64", "--max-points", "20", "--plot-images", "0", "--no-progress", "--device", "cpu",
                 option, "0"]) == 2
    assert f"{option} must be a positive int, got 0" in capsys.readouterr().err and not out.exists()


def test_noise_refuses_a_denoiser_as_classifier(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _dataset(tmp_path / "d", ["clean", "corrupted:noise:std=0.1"])
    net = {"kind": "denoiser", "in_channels": 1, "out_channels": 1, "model_channels": 4, "channel_mult": [1],
           "num_blocks": 1}
    save_model(tmp_path / "den", build_network(net), {"kind": "denoiser", "network": net})
    out = tmp_path / "n.jsonl"
    assert main(["annotate", "noise", "--classifier", str(tmp_path / "den"), "--data", str(data), "--out", str(out),
                 "--grid-size", "64", "--max-points", "20", "--plot-images", "0", "--no-progress",
                 "--device", "cpu"]) == 2
    assert "a model of kind 'denoiser', not a classifier" in capsys.readouterr().err and not out.exists()
    save_model(tmp_path / "clf", build_network(CLF), {"kind": "classifier", "network": CLF})
    assert main(["annotate", "noise", "--classifier", str(tmp_path / "clf"), "--data", str(data), "--out", str(out),
                 "--span", "nan", "--no-progress", "--device", "cpu"]) == 2
    assert "--span >= 1 (got 0.45, 4, nan)" in capsys.readouterr().err and not out.exists()


def test_crossing_measures_the_held_out_images_and_refuses_a_classifier_without_them(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    provenance = ["clean"] * 10 + ["corrupted:noise:std=0.1"] * 10
    data = _dataset(tmp_path / "d", provenance)
    tiny = ["--channels", "4", "--blocks", "1", "--channel-mult", "1", "--steps", "2", "--batch", "4",
            "--no-progress", "--device", "cpu"]
    assert main(["classifier", "train", "--data", str(data), "--out", str(tmp_path / "h"), "--holdout", "0.2", *tiny]) == 0
    out = tmp_path / "x.jsonl"
    assert main(["annotate", "crossing", "--classifier", str(tmp_path / "h"), "--data", str(data), "--out", str(out),
                 "--draws", "2"]) == 0
    printed = capsys.readouterr().out
    assert "held-out balanced accuracy on 2 clean and 2 corrupted images: " in printed
    assert "10 clean, 10 corrupted: " in printed
    table = read_annotations(out)
    assert table.created_by["rule"] == "crossing" and np.all(table.sigma_min[:10] == 0)
    assert len(set(table.sigma_min[10:].tolist())) == 1 and table.sigma_min[10] > 0
    careful = tmp_path / "q.jsonl"
    assert main(["annotate", "crossing", "--classifier", str(tmp_path / "h"), "--data", str(data), "--out",
                 str(careful), "--draws", "2", "--confidence", "0.9"]) == 0
    assert "(Wilson upper bounds at 0.9)" in capsys.readouterr().out
    assert main(["annotate", "crossing", "--classifier", str(tmp_path / "h"), "--data", str(data), "--out",
                 str(tmp_path / "i.jsonl"), "--draws", "2", "--informative"]) == 0
    raised = read_annotations(tmp_path / "i.jsonl")
    assert raised.created_by["informative"] and not raised.created_by["vacuous"]
    assert raised.sigma_min[10] >= table.sigma_min[10]
    bounded = read_annotations(careful)
    assert bounded.created_by["confidence"] == 0.9 and bounded.sigma_min[10] >= table.sigma_min[10]
    assert all(u >= a for u, a in zip(bounded.created_by["accuracies"], table.created_by["accuracies"]))
    assert main(["classifier", "train", "--data", str(data), "--out", str(tmp_path / "all"), *tiny]) == 0
    capsys.readouterr()
    assert main(["annotate", "crossing", "--classifier", str(tmp_path / "all"), "--data", str(data),
                 "--out", str(tmp_path / "y.jsonl")]) == 2
    assert "--holdout 0.2" in capsys.readouterr().err
    other = _dataset(tmp_path / "e", provenance + ["clean"] * 4)
    assert main(["annotate", "crossing", "--classifier", str(tmp_path / "h"), "--data", str(other),
                 "--out", str(tmp_path / "z.jsonl")]) == 2
    assert "trained on another dataset" in capsys.readouterr().err


def test_crossing_pools_cross_fitted_classifiers_weighted_by_their_folds(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    provenance = ["clean"] * 10 + ["corrupted:noise:std=0.1"] * 11
    data = _dataset(tmp_path / "d", provenance)
    tiny = ["--channels", "4", "--blocks", "1", "--channel-mult", "1", "--steps", "2", "--batch", "4",
            "--no-progress", "--device", "cpu", "--seed", "5"]
    folds = [str(tmp_path / f"k{k}") for k in range(3)]
    for k, out in enumerate(folds):
        assert main(["classifier", "train", "--data", str(data), "--out", out, "--folds", "3", "--fold", str(k), *tiny]) == 0
    capsys.readouterr()
    pooled_file = tmp_path / "pooled.jsonl"
    assert main(["annotate", "crossing", *[a for run in folds for a in ("--classifier", run)], "--data", str(data),
                 "--out", str(pooled_file), "--draws", "2"]) == 0
    assert "on 10 clean and 11 corrupted images, 3 cross-fitted classifiers pooled" in capsys.readouterr().out
    pooled = read_annotations(pooled_file).created_by
    assert pooled["held_out"] == [10, 11] and pooled["classifiers"] == 3
    # the oracle: each fold's classifier scored on its own fold (folds of 4/3/3 clean and 4/4/3 corrupted images,
    # disjoint), the per-class accuracies averaged with those counts as weights, then balanced
    from ambient_omni.annotate.crossing_rule import held_out_class_accuracy, recorded_holdout
    from ambient_omni.data.dataset_folder import load_dataset
    from ambient_omni.training.checkpoint import load_model, model_folder

    images, clean = load_dataset(data), torch.tensor([p == "clean" for p in provenance])
    held = [torch.from_numpy(recorded_holdout(run, images)) for run in folds]
    assert torch.equal(torch.stack(held).sum(0), torch.ones(len(provenance), dtype=torch.long))
    counts = np.array([[int((h & clean).sum()), int((h & ~clean).sum())] for h in held], dtype=float)
    assert counts.tolist() == [[4, 4], [3, 4], [3, 3]]
    per_fold = [held_out_class_accuracy(load_model(model_folder(run)), images.images[h & clean],
                                        images.images[h & ~clean], draws=2) for run, h in zip(folds, held)]
    expected = sum(n * acc for n, acc in zip(counts, per_fold)) / counts.sum(0)
    assert np.allclose(pooled["accuracies"], expected.mean(axis=1), atol=1e-12)
    assert main(["annotate", "crossing", "--classifier", folds[0], "--classifier", folds[1], "--data", str(data),
                 "--out", str(tmp_path / "partial.jsonl")]) == 2
    assert "every fold of one cross-fitting partition" in capsys.readouterr().err
    assert not (tmp_path / "partial.jsonl").exists()
    assert main(["annotate", "crossing", "--classifier", folds[0], "--data", str(data),
                 "--out", str(tmp_path / "lone.jsonl")]) == 2  # one fold alone would measure a third of the images
    assert "fold 0 of 3" in capsys.readouterr().err


def _sharp_and_flat(folder: Path) -> Path:
    """Two sharp images (0/255 checkerboards), then four flat ones labelled blurred, one of them with a
    checkerboard corner: sharpness ranks the two checkerboards best, and the corner is as sharp as theirs."""
    checker = (np.add.outer(np.arange(16), np.arange(16)) % 2) * 255
    images = np.concatenate([np.broadcast_to(checker, (2, 1, 16, 16)), np.full((4, 1, 16, 16), 128)]).astype(np.uint8)
    images[3, 0, :8, :8] = checker[:8, :8]
    provenance = ["clean"] * 2 + ["corrupted:blur:sigma=1"] * 4
    write_dataset(folder, MixedData(images, np.zeros(6, dtype=np.int64), ["t"] * 6, np.arange(6), provenance, 0))
    return folder


def test_quality_with_a_built_in_scorer_and_the_crops_variant(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _sharp_and_flat(tmp_path / "d")
    out, scores = tmp_path / "q.jsonl", tmp_path / "s.jsonl"
    assert main(["annotate", "quality", "--data", str(data), "--out", str(out), "--scorer", "sharpness",
                 "--clean-fraction", "0.34", "--sigma-min", "0.2", "--crop-map", "8:0.15,16:1.0",
                 "--patch-quantile", "0", "--write-scores", str(scores)]) == 0
    t = read_annotations(out)
    assert t.sigma_min.tolist() == [0, 0, 0.2, 0.2, 0.2, 0.2]
    assert t.sigma_max.tolist() == [0, 0, 0, 0.15, 0, 0]  # only the sharp corner passes, at crop size 8
    assert "corrupted:blur:sigma=1: 4 images, 0 clean" in capsys.readouterr().out
    # The written scores read back as a score file and give the same annotation, here by quantile.
    assert main(["annotate", "quality", "--data", str(data), "--out", str(tmp_path / "r.jsonl"), "--scores",
                 str(scores), "--clean-fraction", "0.34", "--rule", "quantile", "--sigma-range", "0.5,2"]) == 0
    r = read_annotations(tmp_path / "r.jsonl")
    assert r.sigma_min[:2].tolist() == [0, 0] and r.sigma_min[3] == pytest.approx(0.5)
    assert sorted(r.sigma_min[[2, 4, 5]].round(6).tolist()) == [0.793701, 1.259921, 2.0]


@pytest.mark.parametrize("extra, needle", [
    (["--scorer", "sharpness", "--rule", "quantile"], "--rule quantile needs --sigma-range"),
    (["--scorer", "sharpness"], "--rule fraction needs --sigma-min"),
    (["--scorer", "classifier", "--sigma-min", "0.2"], "needs a noise classifier"),
    (["--scorer", "sharpness", "--sigma-min", "0.2", "--classifier", "x"], "--classifier is for the 'classifier'"),
    (["--scorer", "blockiness", "--sigma-min", "0.2", "--crop-map", "4:0.1"], "larger than its 8-pixel blocks"),
    (["--scorer", "sharpness", "--rule", "quantile", "--sigma-range", "1"], "give two numbers"),
])
def test_quality_refuses_incomplete_options(tmp_path: Path, capsys: pytest.CaptureFixture, extra: list,
                                            needle: str) -> None:
    data = _sharp_and_flat(tmp_path / "d")
    out = tmp_path / "q.jsonl"
    assert main(["annotate", "quality", "--data", str(data), "--out", str(out), *extra]) == 2
    assert needle in capsys.readouterr().err and not out.exists()


def test_quality_with_the_noise_classifier_scorer(tmp_path: Path) -> None:
    data = _sharp_and_flat(tmp_path / "d")
    save_model(tmp_path / "clf", build_network(CLF), {"kind": "classifier", "network": CLF})
    out = tmp_path / "q.jsonl"
    assert main(["annotate", "quality", "--data", str(data), "--out", str(out), "--scorer", "classifier",
                 "--classifier", str(tmp_path / "clf"), "--sigma", "0.3", "--sigma-min", "0.2"]) == 0
    t = read_annotations(out)
    assert np.count_nonzero(t.sigma_min == 0) == 1 and t.classifier[int(np.argmax(t.sigma_min))].startswith("classifier:")
    assert all(0 < e["score"] < 1 for e in t.extra)
