"""Annotation driver: common random numbers, fast vs dense, clean images, sharding, the settings the parts
record (the part files themselves: test_annotate_parts)."""

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_omni.annotate import curves, noise
from ambient_omni.data.annotations import read_annotations, write_annotations
from ambient_omni.errors import AmbientError

DENSE = dict(method="dense", grid_size=512, span=16)
FAST = dict(method="fast", grid_size=512, span=16, stride=32, window=32, back=24, max_points=82)


def stand_in(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """P(clean) rises towards 0.6 (crossing tau = 0.45 on the slope) around log sigma = 4 * (image mean) - 1, plus a noise-dependent term."""
    flat = x.flatten(1)
    center = 4 * flat.mean(1).clamp(-1, 0.5) - 1.0
    return 0.6 * torch.sigmoid(3 * (torch.log(sigma) - center) + 0.1 * (flat[:, 0] - flat[:, 1]) / (sigma + 0.5))


def _images(n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, 1, 1, generator=gen) * 0.6 - 0.5) + 0.05 * torch.randn(n, 1, 3, 3, generator=gen)


def test_point_noise_is_a_pure_function_of_seed_id_point() -> None:
    a = noise.point_noise(0, 5, np.array([3, 7]), 2, (1, 3, 3))
    b = noise.point_noise(0, 5, np.array([7]), 2, (1, 3, 3))
    assert a.shape == (2, 2, 1, 3, 3)
    torch.testing.assert_close(a[1], b[0])
    assert not torch.equal(a[0], noise.point_noise(0, 6, np.array([3]), 2, (1, 3, 3))[0])
    assert not torch.equal(a[0], noise.point_noise(1, 5, np.array([3]), 2, (1, 3, 3))[0])


def test_result_independent_of_batch_size_and_chunk_composition() -> None:
    images, ids = _images(4), np.arange(4)
    cfg = noise.NoiseAnnotationConfig(**FAST)
    s1, c1 = noise.annotate_images(stand_in, images, ids, cfg, batch_size=7)
    s2, c2 = noise.annotate_images(stand_in, images, ids, cfg, batch_size=4096)
    s3, _ = noise.annotate_images(stand_in, images[2:], ids[2:], cfg, batch_size=64)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(s1[2:], s3)
    assert c1.max() <= 82 * cfg.draws


def test_dense_matches_curve_rule_and_fast_agrees() -> None:
    images, ids = _images(12), np.arange(12)
    dense_cfg = noise.NoiseAnnotationConfig(**DENSE)
    dense, calls = noise.annotate_images(stand_in, images, ids, dense_cfg, batch_size=512)
    assert np.all(calls == 512 * 4)
    p, sigmas = noise.dense_curves(stand_in, images, ids, dense_cfg)
    np.testing.assert_array_equal(dense, curves.dense_sigma_min(p, sigmas, 0.45, 16))
    fast, _ = noise.annotate_images(stand_in, images, ids, noise.NoiseAnnotationConfig(**FAST), batch_size=512)
    stats = curves.log_ratio_stats(fast, dense)
    assert stats["median_abs_log_ratio"] <= 0.05 and stats["p95_abs_log_ratio"] <= 0.15
    # the stand-in's crossing moves with the image mean: annotations must follow it
    order = np.argsort(images.flatten(1).mean(1).numpy())
    assert np.corrcoef(np.arange(12), np.log(dense[order]))[0, 1] > 0.8


PROV = ["clean", "corrupted:noise:std=0.1", "corrupted:noise:std=0.1", "clean", "corrupted:noise:std=0.1",
        "corrupted:noise:std=0.1", "corrupted:noise:std=0.1", "ood:other"]


def _run(out: Path, prob=stand_in, rank: int = 0, world: int = 1) -> int:
    cfg = noise.NoiseAnnotationConfig(**FAST)
    return noise.run_chunks(prob, _images(len(PROV)), PROV, cfg, out, {"classifier": "stand-in"}, chunk=2,
                            rank=rank, world_size=world, batch_size=64, progress=False)


def _merge(out: Path) -> None:
    table = noise.merge_parts(out, PROV, noise.NoiseAnnotationConfig(**FAST), "stand-in", None, chunk=2)
    write_annotations(out, table)


def test_clean_images_get_zero_without_calls_and_file_reads_back(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    assert _run(out) == 3  # 6 non-clean images in chunks of 2
    _merge(out)
    table = read_annotations(out)
    assert table.sigma_min[0] == 0 and table.sigma_min[3] == 0
    assert table.extra[0]["classifier_calls"] == 0 and table.extra[1]["classifier_calls"] > 0
    assert np.all(table.sigma_min[[1, 2, 4, 5, 6, 7]] > 0)
    assert table.method[1] == "classifier-fast" and table.threshold[1] == pytest.approx(0.45)


def test_two_ranks_give_the_same_file_as_one(tmp_path: Path) -> None:
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    _run(one)
    _merge(one)
    assert _run(two, rank=0, world=2) == 2 and _run(two, rank=1, world=2) == 1
    _merge(two)
    assert one.read_text() == two.read_text()


def test_changed_settings_refuse_to_mix_parts(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    _run(out)
    cfg = noise.NoiseAnnotationConfig(**{**FAST, "tau": 0.4})
    with pytest.raises(AmbientError, match="different settings"):
        noise.run_chunks(stand_in, _images(len(PROV)), PROV, cfg, out, {"classifier": "stand-in"}, chunk=2, progress=False)


def test_bad_settings_are_user_errors() -> None:
    with pytest.raises(AmbientError):
        noise.NoiseAnnotationConfig(method="medium")
    with pytest.raises(AmbientError):
        noise.NoiseAnnotationConfig(tau=1.5)
    with pytest.raises(AmbientError):
        noise.NoiseAnnotationConfig(method="fast", stride=4, max_points=10)
    assert math.isclose(noise.NoiseAnnotationConfig().grid()[0], curves.lognormal_grid()[0])


def test_the_grid_comes_from_the_classifiers_training_lognormal(tmp_path: Path) -> None:
    from ambient_omni.networks.registry import build_network
    from ambient_omni.training.checkpoint import save_model

    net = {"kind": "classifier", "in_channels": 1, "model_channels": 8, "channel_mult": [1], "num_blocks": 1}

    def saved(name: str, **settings: object) -> Path:
        save_model(tmp_path / name, build_network(net), {"kind": "classifier", "network": net, "classifier": settings})
        return tmp_path / name

    assert noise.training_lognormal(saved("plain")) == (curves.P_MEAN, curves.P_STD)  # no record: the defaults
    assert noise.training_lognormal(saved("low", kind="noise", p_mean=-3.5, p_std=1.0)) == (-3.5, 1.0)
    with pytest.raises(AmbientError, match="crop classifier"):
        noise.training_lognormal(saved("crop", kind="crop", crop_size=8, p_mean=-2.3, p_std=1.0, sigma_cap=0.5))
    with pytest.warns(UserWarning, match="sigma <= 0.5"):
        noise.training_lognormal(saved("capped", kind="noise", p_mean=-2.3, p_std=1.0, sigma_cap=0.5))


def test_edge_shares_count_both_ends_of_the_grid() -> None:
    grid = np.array([0.01, 0.1, 1.0, 10.0])
    assert noise.edge_shares(np.array([0.01, 0.01, 0.5, 10.0]), grid) == {"at_grid_min": 0.5, "never_crossed": 0.25}
    assert noise.edge_shares(np.array([]), grid) == {"at_grid_min": 0.0, "never_crossed": 0.0}


def test_a_classifier_that_calls_corrupted_images_clean_at_low_sigma_is_reported(tmp_path: Path) -> None:
    """P(clean) = sigmoid(5) at every sigma: each corrupted image crosses tau at the grid's first point and
    would train every level as if clean; annotate_dataset says so."""
    from ambient_omni.data.dataset_folder import load_dataset, write_dataset
    from ambient_omni.data.mixed import MixedData
    from ambient_omni.networks.registry import build_network
    from ambient_omni.training.checkpoint import save_model

    net = {"kind": "classifier", "in_channels": 1, "model_channels": 8, "channel_mult": [1], "num_blocks": 1}
    model = build_network(net)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.head.bias.fill_(5.0)
    save_model(tmp_path / "clf", model, {"kind": "classifier", "network": net})
    provenance = ["clean", "corrupted:x", "corrupted:x", "corrupted:x"]
    codes = np.random.default_rng(0).integers(0, 256, (4, 1, 8, 8), dtype=np.uint8)
    write_dataset(tmp_path / "d", MixedData(codes, np.zeros(4, dtype=np.int64), ["t"] * 4, np.arange(4), provenance, 0))
    cfg = noise.NoiseAnnotationConfig(**{**FAST, "grid_size": 512})
    data = load_dataset(tmp_path / "d")
    with pytest.warns(UserWarning, match=r"3 corrupted images \(100% of the annotated, against 1 clean"):
        table = noise.annotate_dataset(tmp_path / "clf", data, tmp_path / "a.jsonl", cfg, progress=False)
    assert np.all(table.sigma_min[1:] == cfg.grid().min()) and table.sigma_min[0] == 0
    assert [bool(e.get("at_floor")) for e in table.extra] == [False, True, True, True]
    # --at-floor exclude: the same images are left out (sigma_min = inf), silently
    excluded = noise.NoiseAnnotationConfig(**{**FAST, "grid_size": 512, "at_floor": "exclude"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = noise.annotate_dataset(tmp_path / "clf", data, tmp_path / "b.jsonl", excluded, progress=False)
    assert np.all(np.isinf(table.sigma_min[1:])) and table.sigma_min[0] == 0
    with pytest.raises(AmbientError, match="at-floor"):
        noise.NoiseAnnotationConfig(at_floor="drop")


def test_a_nan_span_is_an_error() -> None:
    with pytest.raises(AmbientError, match="--span >= 1"):
        noise.NoiseAnnotationConfig(span=float("nan"))
    with pytest.raises(ValueError, match="EMA span"):
        curves.ema_alpha(float("nan"))


def test_a_model_that_is_not_a_noise_classifier_is_refused(tmp_path: Path) -> None:
    from ambient_omni.data.imageset import ImageSet
    from ambient_omni.data.dataset_folder import load_dataset, write_dataset
    from ambient_omni.data.mixed import from_image_set
    from ambient_omni.networks.registry import build_network
    from ambient_omni.training.checkpoint import save_model

    net = {"kind": "denoiser", "in_channels": 1, "out_channels": 1, "model_channels": 8, "channel_mult": [1],
           "num_blocks": 1}
    save_model(tmp_path / "den", build_network(net), {"kind": "denoiser", "network": net})
    with pytest.raises(AmbientError, match="a model of kind 'denoiser', not a classifier"):
        noise.training_lognormal(tmp_path / "den")
    codes = np.zeros((2, 1, 4, 4), dtype=np.uint8)
    write_dataset(tmp_path / "d", from_image_set(ImageSet.from_uint8(codes), "corrupted:x", "s"))
    with pytest.raises(AmbientError, match="not a classifier"):
        noise.annotate_dataset(tmp_path / "den", load_dataset(tmp_path / "d"), tmp_path / "a.jsonl",
                               noise.NoiseAnnotationConfig(**FAST), progress=False)
    assert not (tmp_path / "a.jsonl").exists()


def _levels_off(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The stand-in classifier rescaled to level off at 0.39 instead of 0.6: below the paper's tau."""
    return stand_in(x, sigma) * (0.39 / 0.6)


def test_relative_rule_recovers_a_classifier_that_levels_off_below_tau() -> None:
    images, ids = _images(12), np.arange(12)
    paper = noise.NoiseAnnotationConfig(**FAST)
    never, _ = noise.annotate_images(_levels_off, images, ids, paper)
    assert np.all(never == paper.grid().max())  # the paper's rule: no image ever crosses 0.45
    plateau = noise.classifier_plateau(_levels_off, images, ids, paper)
    assert 0.3 < plateau <= 0.39  # the level its curves reach at the grid top (not all saturate there)
    relative = noise.relative_config(noise.NoiseAnnotationConfig(**FAST, threshold_rule="relative"), plateau)
    assert relative.tau == pytest.approx(plateau - 0.05)
    got, _ = noise.annotate_images(_levels_off, images, ids, relative)
    assert np.all(got < paper.grid().max())
    # the EMA is linear, so the dense rule at tau_eff on 0.65 p is the dense rule at tau_eff / 0.65 on p
    dense = noise.NoiseAnnotationConfig(**{**DENSE, "tau": relative.tau})
    same = noise.NoiseAnnotationConfig(**{**DENSE, "tau": relative.tau * 0.6 / 0.39})
    np.testing.assert_array_equal(noise.annotate_images(_levels_off, images, ids, dense)[0],
                                  noise.annotate_images(stand_in, images, ids, same)[0])


def test_relative_rule_refuses_a_threshold_outside_0_1_and_unknown_rules() -> None:
    with pytest.raises(AmbientError, match="not usable"):
        noise.relative_config(noise.NoiseAnnotationConfig(threshold_rule="relative"), 0.02)
    with pytest.raises(AmbientError, match="--threshold-rule"):
        noise.NoiseAnnotationConfig(threshold_rule="median")
    with pytest.raises(AmbientError, match="no images to annotate"):
        noise.classifier_plateau(stand_in, _images(0), np.arange(0), noise.NoiseAnnotationConfig(**FAST))


def _constant_classifier(folder: Path, p_clean: float) -> None:
    from ambient_omni.networks.registry import build_network
    from ambient_omni.training.checkpoint import save_model

    net = {"kind": "classifier", "in_channels": 1, "model_channels": 8, "channel_mult": [1], "num_blocks": 1}
    model = build_network(net)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.head.bias.fill_(math.log(p_clean / (1 - p_clean)))
    save_model(folder, model, {"kind": "classifier", "network": net})


def test_images_that_never_cross_are_reported_and_the_relative_rule_records_its_plateau(tmp_path: Path) -> None:
    from ambient_omni.data.dataset_folder import load_dataset, write_dataset
    from ambient_omni.data.mixed import MixedData

    _constant_classifier(tmp_path / "clf", 0.39)
    provenance = ["clean", "corrupted:x", "corrupted:x", "corrupted:x"]
    codes = np.random.default_rng(0).integers(0, 256, (4, 1, 8, 8), dtype=np.uint8)
    write_dataset(tmp_path / "d", MixedData(codes, np.zeros(4, dtype=np.int64), ["t"] * 4, np.arange(4), provenance, 0))
    data = load_dataset(tmp_path / "d")
    with pytest.warns(UserWarning, match=r"100% of the annotated images never .* --threshold-rule relative"):
        table = noise.annotate_dataset(tmp_path / "clf", data, tmp_path / "a.jsonl", noise.NoiseAnnotationConfig(**FAST),
                                       progress=False)
    assert np.all(table.sigma_min[1:] == noise.NoiseAnnotationConfig(**FAST).grid().max())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant P(clean): every image is at the floor under the relative rule
        table = noise.annotate_dataset(tmp_path / "clf", data, tmp_path / "b.jsonl",
                                       noise.NoiseAnnotationConfig(**FAST, threshold_rule="relative"), progress=False)
    made = read_annotations(tmp_path / "b.jsonl").created_by
    assert made["rule"] == "classifier-fast" and made["plateau"] == pytest.approx(0.39, abs=1e-4)
    assert made["tau"] == pytest.approx(0.34, abs=1e-4) and np.all(table.sigma_min[1:] < 1)


def test_parts_of_a_classifier_trained_further_in_the_same_folder_are_not_reused(tmp_path: Path) -> None:
    from ambient_omni.data.dataset_folder import load_dataset, write_dataset
    from ambient_omni.data.mixed import MixedData

    provenance = ["clean", "corrupted:x", "corrupted:x"]
    codes = np.random.default_rng(0).integers(0, 256, (3, 1, 8, 8), dtype=np.uint8)
    write_dataset(tmp_path / "d", MixedData(codes, np.zeros(3, dtype=np.int64), ["t"] * 3, np.arange(3), provenance, 0))
    data, cfg = load_dataset(tmp_path / "d"), noise.NoiseAnnotationConfig(**FAST)
    _constant_classifier(tmp_path / "clf", 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        noise.annotate_dataset(tmp_path / "clf", data, tmp_path / "a.jsonl", cfg, progress=False)
    _constant_classifier(tmp_path / "clf", 0.7)  # the same folder now holds other weights
    with pytest.raises(AmbientError, match="different settings"):
        noise.annotate_dataset(tmp_path / "clf", data, tmp_path / "a.jsonl", cfg, progress=False)
