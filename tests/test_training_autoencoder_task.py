"""The autoencoder task (ambient_omni.training.autoencoder_task): the loss's math, batches, training that learns."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ambient_omni.errors import AmbientError
from ambient_omni.networks.autoencoder import Autoencoder
from ambient_omni.training.autoencoder_task import AutoencoderTask, train_autoencoder, vae_loss
from ambient_omni.training.checkpoint import load_model, read_model_config
from ambient_omni.training.loop import TrainConfig

NET = {"kind": "autoencoder", "in_channels": 1, "latent_channels": 2, "model_channels": 8, "channel_mult": [1, 2],
       "num_blocks": 1}


class _Fixed(nn.Module):
    """encode gives fixed (mu, log_var); decode returns zeros: the loss is then known in closed form."""

    def __init__(self, mu: float, log_var: float) -> None:
        super().__init__()
        self.mu, self.log_var = mu, log_var

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (len(x), 1, 2, 2)
        return torch.full(shape, self.mu), torch.full(shape, self.log_var)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(z), 1, 4, 4)


def test_vae_loss_is_squared_error_plus_beta_times_the_gaussian_kl() -> None:
    x = torch.full((3, 1, 4, 4), 0.5)
    loss = vae_loss(_Fixed(mu=1.0, log_var=math.log(4.0)), x, beta=0.1, gen=torch.Generator().manual_seed(0))
    kl = 0.5 * (1.0 + 4.0 - 1 - math.log(4.0))  # KL(N(1, 4) || N(0, 1)) per latent value
    torch.testing.assert_close(loss, torch.full((3,), 0.25 + 0.1 * kl))


def test_batches_are_a_function_of_the_step_and_split_over_ranks() -> None:
    images = torch.arange(40.0).reshape(10, 1, 2, 2)
    task = AutoencoderTask(Autoencoder(**{k: v for k, v in NET.items() if k != "kind"}), images, batch_size=4, seed=3)
    first = [b["image"] for _, b in zip(range(3), task.batches(0, 0, 1))]
    resumed = next(task.batches(2, 0, 1))["image"]
    assert torch.equal(first[2], resumed)
    halves = [next(task.batches(1, r, 2))["image"] for r in (0, 1)]
    assert torch.equal(torch.cat(halves), first[1])


def test_bad_inputs_are_errors() -> None:
    model = Autoencoder(**{k: v for k, v in NET.items() if k != "kind"})
    with pytest.raises(AmbientError, match="not a multiple of its factor"):
        AutoencoderTask(model, torch.zeros(4, 1, 5, 5), 4)
    with pytest.raises(AmbientError, match="--beta"):
        AutoencoderTask(model, torch.zeros(4, 1, 4, 4), 4, beta=-1.0)
    with pytest.raises(AmbientError, match="kind 'autoencoder'"):
        train_autoencoder({"kind": "classifier"}, torch.zeros(4, 1, 4, 4), "unused")


def test_training_learns_to_reconstruct_and_saves_a_model_folder(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.nn.functional.interpolate(torch.rand((64, 1, 4, 4), generator=g) * 2 - 1, size=(8, 8))
    untrained = Autoencoder(**{k: v for k, v in NET.items() if k != "kind"})
    config = TrainConfig(steps=150, batch_size=16, lr=3e-3, lr_rampup_images=0, ema_halflife_images=200,
                         checkpoint_every=0, log_every=0, progress=False, bf16=False)
    folder = train_autoencoder(NET, images, tmp_path / "run", beta=1e-4, config=config)
    model = load_model(folder)
    with torch.no_grad():
        before = float((untrained(images) - images).square().mean())
        after = float((model(images) - images).square().mean())
    assert after < 0.25 * before
    saved = read_model_config(folder)
    assert saved["kind"] == "autoencoder" and saved["factor"] == 2 and saved["autoencoder"]["beta"] == 1e-4
