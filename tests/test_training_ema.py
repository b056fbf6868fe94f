"""EMA: the half-life means what it says, warm-up, fixed decay, and the update formula."""

import pytest
import torch
from torch import nn

from ambient_omni.training.ema import EMA, EMASchedule


def test_halflife_halves_the_initial_weight_after_h_images() -> None:
    schedule = EMASchedule(halflife_images=1000, rampup_ratio=None)
    beta = schedule.beta(images_seen=10_000, batch_size=50)
    assert beta ** (1000 / 50) == pytest.approx(0.5)


def test_rampup_shortens_the_halflife_early() -> None:
    schedule = EMASchedule(halflife_images=1000, rampup_ratio=0.1)
    assert schedule.beta(images_seen=500, batch_size=10) == pytest.approx(0.5 ** (10 / 50))
    assert schedule.beta(images_seen=10**6, batch_size=10) == pytest.approx(0.5 ** (10 / 1000))
    assert EMASchedule(decay=0.9).beta(5, 5) == 0.9


def test_update_is_a_convex_blend_and_buffers_are_copied() -> None:
    model = nn.BatchNorm1d(2)
    ema = EMA(model, EMASchedule(decay=0.75))
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.running_mean.fill_(7.0)
    ema.update(model, images_seen=1, batch_size=1)
    torch.testing.assert_close(ema.model.weight, torch.full((2,), 0.75 * 1.0 + 0.25 * 3.0))
    torch.testing.assert_close(ema.model.running_mean, torch.full((2,), 7.0))
    assert not ema.model.weight.requires_grad


@pytest.mark.parametrize("kwargs, option", [
    ({"halflife_images": float("nan")}, "--ema-halflife"), ({"halflife_images": 0.0}, "--ema-halflife"),
    ({"halflife_images": float("inf")}, "--ema-halflife"), ({"decay": 2.0}, "--ema-decay"),
    ({"decay": 1.0}, "--ema-decay"), ({"decay": float("nan")}, "--ema-decay"),
    ({"rampup_ratio": float("nan")}, "rampup_ratio"),
])
def test_settings_that_break_the_average_are_errors(kwargs: dict, option: str) -> None:
    from ambient_omni.errors import AmbientError

    with pytest.raises(AmbientError, match=option):
        EMASchedule(**kwargs)


def test_zero_decay_is_allowed_and_copies_the_weights() -> None:
    assert EMASchedule(decay=0.0).beta(10, 5) == 0.0
