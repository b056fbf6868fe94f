"""Classifier task: batches (balanced, unbalanced, crops, ranks), truncated sigmas, learning a toy case;
``train_classifier``: kind defaults, a loadable model folder that beats chance, the separation check and
its warning for a noise classifier at chance, bad settings."""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_omni.annotate.classifier_task import (
    ClassifierTask,
    accuracy_at,
    random_crops,
    separation_check,
    train_classifier,
    truncated_lognormal,
)
from ambient_omni.errors import AmbientError
from ambient_omni.networks.registry import build_network
from ambient_omni.training.checkpoint import load_model, read_model_config
from ambient_omni.training.loop import Trainer, TrainConfig

NET = {"kind": "classifier", "in_channels": 1, "model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1}


def _toy(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable classes: bright (+0.5) vs dark (-0.5) 8x8 images with a little texture."""
    gen = torch.Generator().manual_seed(0)
    return (0.5 + 0.1 * torch.randn(n, 1, 8, 8, generator=gen), -0.5 + 0.1 * torch.randn(n, 1, 8, 8, generator=gen))


def test_balanced_unbalanced_and_rank_shares() -> None:
    pos, neg = _toy()
    task = ClassifierTask(build_network(NET), pos, neg[:16], batch_size=8)
    batch = next(task.batches(0, 0, 1))
    assert batch["label"].tolist() == [1.0] * 4 + [0.0] * 4
    shares = [next(task.batches(3, r, 2)) for r in range(2)]
    whole = next(task.batches(3, 0, 1))
    torch.testing.assert_close(torch.cat([s["image"] for s in shares]), whole["image"])
    unbalanced = ClassifierTask(build_network(NET), pos, neg[:16], batch_size=400, balanced=False)
    frac = next(unbalanced.batches(0, 0, 1))["label"].mean().item()
    assert abs(frac - 64 / 80) < 0.08  # follows the data's 64:16 ratio
    b = next(unbalanced.batches(0, 0, 1))
    assert torch.all((b["image"].mean((1, 2, 3)) > 0) == (b["label"] > 0.5))  # images match labels


def test_crops_are_real_crops_of_the_drawn_images() -> None:
    images = torch.arange(2 * 36, dtype=torch.float32).reshape(2, 1, 6, 6)
    crops = random_crops(images, 3, torch.Generator().manual_seed(0))
    assert crops.shape == (2, 1, 3, 3)
    for k in range(2):
        first = int(crops[k, 0, 0, 0]) - 36 * k
        r, c = divmod(first, 6)
        torch.testing.assert_close(crops[k], images[k, :, r : r + 3, c : c + 3])


def test_truncated_lognormal_respects_the_cap_and_the_median() -> None:
    gen = torch.Generator().manual_seed(0)
    s = truncated_lognormal(20000, -1.2, 1.2, None, gen, torch.device("cpu"))
    assert abs(float(s.log().median()) + 1.2) < 0.05
    capped = truncated_lognormal(20000, -2.3, 1.0, 0.2, gen, torch.device("cpu"))
    assert float(capped.max()) <= 0.2 + 1e-6 and float(capped.min()) > 0


def test_classifier_learns_a_separable_toy_case(tmp_path: Path) -> None:
    pos, neg = _toy()
    task = ClassifierTask(build_network(NET), pos, neg, batch_size=32, seed=0)
    cfg = TrainConfig(steps=60, batch_size=32, lr=3e-3, lr_rampup_images=64, ema_halflife_images=200,
                      checkpoint_every=0, log_every=20, device="cpu", progress=False)
    folder = Trainer(task, cfg, tmp_path / "run").run()
    model = load_model(folder)
    assert task.config()["kind"] == "classifier"
    acc = accuracy_at(model, pos, neg, 0.1, torch.Generator().manual_seed(1))
    assert acc > 0.9, acc
    losses = [r["loss_mean"] for r in map(eval_line, (tmp_path / "run" / "log.jsonl").read_text().splitlines()) if "loss_mean" in r]
    assert losses[-1] < losses[0]


def _smooth_and_noisy(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth 8x8 ramps (positives) and the same ramps plus strong noise (negatives)."""
    gen = torch.Generator().manual_seed(0)
    grid = torch.linspace(-1, 1, 8)
    a, b = 0.5 * torch.rand(2, n, 1, 1, 1, generator=gen) - 0.25
    smooth = a * grid[:, None] + b * grid[None, :]
    return smooth, smooth + 0.5 * torch.randn(smooth.shape, generator=gen)


def test_train_classifier_writes_a_model_that_beats_chance(tmp_path: Path) -> None:
    pos, neg = _smooth_and_noisy()
    folder = train_classifier(NET, pos, neg, tmp_path / "run", steps=40, batch_size=32, lr=3e-3,
                              lr_rampup_images=64, ema_halflife_images=200, checkpoint_every=0, log_every=20,
                              device="cpu", progress=False, info={"data": "toy"})
    assert folder == tmp_path / "run" / "model"
    settings = read_model_config(folder)["classifier"]
    assert (settings["p_mean"], settings["p_std"], settings["sigma_cap"]) == (-1.2, 1.2, None)
    assert settings["kind"] == "noise" and settings["data"] == "toy" and settings["crop_size"] is None
    acc = accuracy_at(load_model(folder), pos, neg, 0.05, torch.Generator().manual_seed(1))
    assert acc > 0.9, acc
    check = json.loads((tmp_path / "run" / "check.json").read_text())
    # sigma = the 10% quantile of LogNormal(-1.2, 1.2): exp(-1.2 + 1.2 * (-1.28155))
    assert check["sigma"] == pytest.approx(math.exp(-1.2 - 1.2 * 1.2815516), rel=1e-6)
    assert check["accuracy"] > 0.9 and check["images"] == 64


def test_a_noise_classifier_at_chance_is_reported(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    same = torch.randn(64, 1, 8, 8, generator=gen).clamp(-1, 1)  # both classes from one distribution
    kwargs = {"steps": 4, "batch_size": 16, "checkpoint_every": 0, "device": "cpu", "progress": False}
    with pytest.warns(UserWarning, match="did not learn"):
        train_classifier(NET, same[:32], same[32:], tmp_path / "noise", **kwargs)
    assert json.loads((tmp_path / "noise" / "check.json").read_text())["accuracy"] < 0.6
    with warnings.catch_warnings():  # crop classifiers are expected at chance on crops too small to tell
        warnings.simplefilter("error")
        train_classifier(NET, same[:32], same[32:], tmp_path / "crop", crop_size=4, **kwargs)
    check = json.loads((tmp_path / "crop" / "check.json").read_text())
    assert check["sigma"] < 0.5 and check["accuracy"] < 0.6


class _Constant(torch.nn.Module):
    """P(positive) = sigmoid(-0.04) = 0.49 for every input: above tau = 0.45, a classifier that admits all."""

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x),), -0.04)


def test_the_separation_check_is_balanced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 30 clean against 256 corrupted: unbalanced, a constant "corrupted" answer would score 0.9
    monkeypatch.setattr("ambient_omni.training.checkpoint.load_model", lambda folder: _Constant())
    pos, neg = torch.zeros(30, 1, 8, 8), torch.zeros(300, 1, 8, 8)
    check = separation_check(tmp_path, pos, neg, -1.2, 1.2, None, None, seed=0)
    assert check["images"] == 30 and check["accuracy"] == 0.5


def test_train_classifier_is_deterministic_whatever_the_global_rng(tmp_path: Path) -> None:
    """Same seed -> bitwise the same weights, even when the caller's global RNG state differs (the
    initial weights once came from the unseeded global RNG: two bench runs of one cell diverged)."""
    from safetensors.torch import load_file

    pos, neg = _toy(32)
    weights = []
    for k, draw in enumerate((0, 1000)):
        torch.randn(draw)  # consume the global RNG differently before each run
        folder = train_classifier(NET, pos, neg, tmp_path / f"run{k}", steps=3, batch_size=16, checkpoint_every=0,
                                  device="cpu", progress=False)
        weights.append(load_file(str(folder / "model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][n], weights[1][n]) for n in weights[0])
    other = train_classifier(NET, pos, neg, tmp_path / "seed1", steps=3, batch_size=16, checkpoint_every=0,
                             device="cpu", progress=False, seed=1)
    assert not torch.equal(load_file(str(other / "model.safetensors"))["encoder.conv_in.weight"],
                           weights[0]["encoder.conv_in.weight"])


def test_train_classifier_crop_defaults_and_bad_settings(tmp_path: Path) -> None:
    pos, neg = _smooth_and_noisy(8)
    folder = train_classifier(NET, pos, neg, tmp_path / "crop", crop_size=4, steps=1, batch_size=4,
                              checkpoint_every=0, device="cpu", progress=False)
    settings = read_model_config(folder)["classifier"]
    assert (settings["p_mean"], settings["p_std"], settings["sigma_cap"]) == (-2.3, 1.0, 0.5)
    assert settings["kind"] == "crop" and settings["crop_size"] == 4
    with pytest.raises(AmbientError, match="sigma-cap"):
        train_classifier(NET, pos, neg, tmp_path / "bad", sigma_cap=float("inf"), steps=1)
    with pytest.raises(AmbientError, match="kind 'classifier'"):
        train_classifier({**NET, "kind": "encoder"}, pos, neg, tmp_path / "bad", steps=1)
    with pytest.raises(AmbientError, match="crop size"):
        train_classifier(NET, pos, neg, tmp_path / "bad", crop_size=0, steps=1)


def eval_line(line: str) -> dict:
    import json

    return json.loads(line)
