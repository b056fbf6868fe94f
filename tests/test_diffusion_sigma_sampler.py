"""Tests for sigma-first sampling: admissibility, exact coverage, marginals, sharding, resume, DataLoader."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import ndtr
from torch.utils.data import DataLoader, Dataset

from ambient_omni.diffusion.sigma_sampler import (
    AdmissibleIndex,
    AmbientBatchDataset,
    SigmaFirstSampler,
    admissible,
)
from ambient_omni.diffusion.ambient_loss import buffer_factor
from ambient_omni.errors import AmbientError

B4 = buffer_factor(4.0)  # 2 / sqrt(3) = 1.1547
INF = math.inf
# 2 clean, 2 low-quality (sigma_min 0.5), 2 OOD (sigma_max 0.2), 1 donut (sigma_min 0.5, sigma_max 0.1).
MIX_MIN = [0.0, 0.0, 0.5, 0.5, INF, INF, 0.5]
MIX_MAX = [0.0, 0.0, 0.0, 0.0, 0.2, 0.2, 0.1]


def quiet_sampler(*args, **kwargs) -> SigmaFirstSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SigmaFirstSampler(*args, **kwargs)


def test_admissible_rules_and_boundaries() -> None:
    smin, smax = MIX_MIN, MIX_MAX
    mask, tn = admissible(0.05, smin, smax)
    assert mask.tolist() == [True, True, False, False, True, True, True]
    assert tn[mask].tolist() == [0.0] * 5  # donut at low noise: sigma_tn = 0 preferred
    mask, tn = admissible(1.0, smin, smax)
    assert mask.tolist() == [True, True, True, True, False, False, True]
    assert tn[mask].tolist() == [0.0, 0.0, 0.5, 0.5, 0.5]
    assert torch.isnan(tn[~mask]).all()
    mask, _ = admissible(0.3, smin, smax)
    assert mask.tolist() == [True, True, False, False, False, False, False]
    # boundaries: sigma = b*sigma_min is NOT usable (strict), sigma = sigma_max IS usable
    assert not admissible(B4 * 0.5, [0.5], [0.0])[0].item()
    assert admissible(B4 * 0.5 * (1 + 1e-12), [0.5], [0.0])[0].item()
    assert admissible(0.2, [INF], [0.2])[0].item()
    assert admissible(0.52, [0.5], [0.0], buffer_s=None)[0].item()  # no buffer: sigma > sigma_min


def test_index_count_and_pick_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    n = 300
    kind = rng.integers(0, 4, n)
    smin = np.where(kind == 0, 0.0, np.where(kind == 2, INF, rng.uniform(0.05, 3, n)))
    smax = np.where(kind >= 2, rng.uniform(0.01, 1, n), 0.0)
    index = AdmissibleIndex(smin, smax)
    for sigma in np.exp(rng.normal(-1.2, 1.5, 40)):
        mask, _ = admissible(sigma, smin, smax)
        count = int(index.count(sigma))
        assert count == int(mask.sum())
        if count:
            v = (np.arange(count) + 0.5) / count
            picked = index.pick(np.full(count, sigma), v)
            assert sorted(picked.tolist()) == torch.nonzero(mask).reshape(-1).tolist()


def test_empty_ranges_are_exact() -> None:
    index = AdmissibleIndex([1.0, 1.0, INF], [0.0, 0.0, 0.3])
    ((lo, hi, mass),) = index.empty_ranges(-1.2, 1.2)
    assert lo == pytest.approx(0.3) and hi == pytest.approx(B4)
    assert mass == pytest.approx(ndtr((math.log(B4) + 1.2) / 1.2) - ndtr((math.log(0.3) + 1.2) / 1.2))
    assert AdmissibleIndex(MIX_MIN[:2], MIX_MAX[:2]).empty_ranges() == []
    tail = AdmissibleIndex([INF], [0.3]).empty_ranges()
    assert tail[0][:2] == (0.3, INF)


def test_sigma_marginal_is_lognormal_when_covered() -> None:
    """Low-quality (usable > 0.3 b), OOD (usable <= 0.4) and clean images cover every sigma."""
    smin = [0.0] * 2 + [0.3] * 20 + [INF] * 20
    smax = [0.0] * 22 + [0.4] * 20
    sampler = SigmaFirstSampler(smin, smax, batch_size=64, seed=3)
    sigmas = np.array([s for k in range(100) for _, s, _ in sampler.batch(k)])
    assert stats.kstest(np.log(sigmas), "norm", args=(-1.2, 1.2)).pvalue > 0.01


def test_sigma_marginal_with_gap_is_conditioned_lognormal() -> None:
    """With an empty range the draws are redrawn: the law is the log-normal conditioned outside it."""
    smin, smax = [1.0, INF], [0.0, 0.3]
    with pytest.warns(UserWarning, match=r"no image is admissible for sigma in \(0\.3, 1\.155\)"):
        sampler = SigmaFirstSampler(smin, smax, batch_size=64, seed=4)
    sigmas = np.array([s for k in range(60) for _, s, _ in sampler.batch(k)])
    assert not ((sigmas > 0.3) & (sigmas <= B4)).any()
    lo_cdf, hi_cdf = ndtr((math.log(0.3) + 1.2) / 1.2), ndtr((math.log(B4) + 1.2) / 1.2)

    def cdf(x: np.ndarray) -> np.ndarray:
        f = ndtr((np.log(x) + 1.2) / 1.2)
        return np.where(f <= lo_cdf, f, np.where(f < hi_cdf, lo_cdf, f - (hi_cdf - lo_cdf))) / (1 - hi_cdf + lo_cdf)

    assert stats.kstest(sigmas, cdf).pvalue > 0.01


def test_choice_is_uniform_among_admissible_and_sigma_tn_is_right() -> None:
    sampler = SigmaFirstSampler(MIX_MIN, MIX_MAX, batch_size=64, seed=5)
    index, sigma, sigma_tn = map(np.array, zip(*[it for k in range(150) for it in sampler.batch(k)]))
    masks, tns = admissible(torch.tensor(sigma)[:, None], MIX_MIN, MIX_MAX)  # (S, N) by broadcasting
    rows = np.arange(len(index))
    assert masks[rows, index].all()
    np.testing.assert_array_equal(tns[rows, index].numpy(), sigma_tn)
    groups: dict[tuple[int, ...], list[int]] = {}
    for mask, i in zip(masks.tolist(), index.tolist()):
        groups.setdefault(tuple(np.flatnonzero(mask).tolist()), []).append(i)
    assert len(groups) == 4  # (0,0.1], (0.1,0.2], (0.2,b*0.5], above
    for members, chosen in groups.items():
        counts = [chosen.count(m) for m in members]
        assert sum(counts) > 200
        assert stats.chisquare(counts).pvalue > 0.01, (members, counts)


def test_no_admissible_image_raises_instead_of_hanging() -> None:
    with pytest.warns(UserWarning):
        sampler = SigmaFirstSampler([INF, INF], [1e-4, 1e-4], batch_size=8, max_redraws=20)
    start = time.perf_counter()
    with pytest.raises(AmbientError, match="no image usable around sigma="):
        sampler.batch(0)
    assert time.perf_counter() - start < 5
    with pytest.raises(AmbientError, match="no image usable at any sigma"):
        SigmaFirstSampler([INF, INF], [0.0, 0.0], batch_size=8)
    # A gap of log-normal mass ~0.55: without redraws a batch of 64 fails, with 100 it succeeds.
    strict = quiet_sampler([1.0, INF], [0.0, 0.3], batch_size=64, max_redraws=0)
    with pytest.raises(AmbientError, match="0 redraws"):
        strict.batch(0)
    assert len(quiet_sampler([1.0, INF], [0.0, 0.3], batch_size=64).batch(0)) == 64


def test_bad_annotations_and_arguments_are_rejected() -> None:
    with pytest.raises(AmbientError, match="same length"):
        SigmaFirstSampler([0.0, 0.0], [0.0], batch_size=2)
    with pytest.raises(AmbientError, match="sigma_min must be >= 0"):
        SigmaFirstSampler([0.0, math.nan], [0.0, 0.0], batch_size=2)
    with pytest.raises(AmbientError, match="sigma_max must be >= 0"):
        SigmaFirstSampler([0.0], [-1.0], batch_size=2)
    with pytest.raises(AmbientError, match="rank"):
        SigmaFirstSampler([0.0], [0.0], batch_size=2, rank=2, world_size=2)


def test_deterministic_and_seed_dependent() -> None:
    a = quiet_sampler(MIX_MIN, MIX_MAX, batch_size=16, seed=11)
    b = quiet_sampler(MIX_MIN, MIX_MAX, batch_size=16, seed=11)
    c = quiet_sampler(MIX_MIN, MIX_MAX, batch_size=16, seed=12)
    assert [a.batch(k) for k in range(3)] == [b.batch(k) for k in range(3)]
    assert a.batch(0) != c.batch(0)
    assert a.batch(0) != a.batch(1)


@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_shard_the_same_global_batch(world_size: int) -> None:
    single = quiet_sampler(MIX_MIN, MIX_MAX, batch_size=8, seed=2)
    shards = [
        quiet_sampler(MIX_MIN, MIX_MAX, batch_size=8 // world_size, seed=2, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    for k in range(5):
        assert single.batch(k) == [item for s in shards for item in s.batch(k)]


def test_resume_from_start_step_equals_continuing() -> None:
    full = quiet_sampler(MIX_MIN, MIX_MAX, batch_size=4, seed=9, num_steps=8)
    batches = list(full)
    assert len(batches) == 8 and full.step == 8
    resumed = quiet_sampler(MIX_MIN, MIX_MAX, batch_size=4, seed=9, start_step=5, num_steps=8)
    assert len(resumed) == 3 and list(resumed) == batches[5:]
    fresh = quiet_sampler(MIX_MIN, MIX_MAX, batch_size=4, seed=9, num_steps=8)
    fresh.load_state_dict({**full.state_dict(), "step": 6})
    assert list(fresh) == batches[6:]
    other = quiet_sampler(MIX_MIN, MIX_MAX, batch_size=4, seed=10)
    with pytest.raises(AmbientError, match="seed"):
        other.load_state_dict(full.state_dict())
    with pytest.raises(TypeError, match="infinite"):
        len(other)


class ToyDataset(Dataset):
    """Stand-in for MixedDataset: image i is filled with i/100."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"image": torch.full((1, 2, 2), i / 100), "label": -1, "id": i}


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_batches_carry_their_sigmas(workers: int) -> None:
    sampler = quiet_sampler(MIX_MIN, MIX_MAX, batch_size=5, seed=1, num_steps=3)
    expected = [sampler.batch(k) for k in range(3)]
    loader = DataLoader(AmbientBatchDataset(ToyDataset(len(MIX_MIN))), batch_sampler=sampler, num_workers=workers)
    got = list(loader)
    assert len(got) == 3
    for batch, items in zip(got, expected):
        assert set(batch) == {"image", "label", "id", "sigma_t", "sigma_tn"}
        assert batch["id"].tolist() == [i for i, _, _ in items]
        torch.testing.assert_close(batch["sigma_t"], torch.tensor([s for _, s, _ in items], dtype=torch.float32))
        torch.testing.assert_close(batch["sigma_tn"], torch.tensor([t for _, _, t in items], dtype=torch.float32))
        torch.testing.assert_close(batch["image"][:, 0, 0, 0], batch["id"].float() / 100)


def test_dataset_wrapper_rejects_plain_indices() -> None:
    with pytest.raises(TypeError, match="index, sigma_t, sigma_tn"):
        AmbientBatchDataset(ToyDataset(3))[1]


def test_fast_for_60k_images() -> None:
    """Vectorized: no Python loop over N. Unloaded ~2 ms per batch of 64; the bound is loose for shared CPUs."""
    rng = np.random.default_rng(1)
    n = 60_000
    smin = np.where(rng.random(n) < 0.1, 0.0, rng.uniform(0.3, 2.0, n))
    sampler = SigmaFirstSampler(smin, np.zeros(n), batch_size=64, seed=0)
    start = time.perf_counter()
    for k in range(50):
        sampler.batch(k)
    assert (time.perf_counter() - start) / 50 < 0.05


def test_sampler_batches_feed_the_ambient_loss() -> None:
    """End to end: DataLoader batches (float32 sigmas) pass the loss's buffer check; loss is finite."""
    from ambient_omni.diffusion.ambient_loss import AmbientLoss

    sampler = quiet_sampler(MIX_MIN, MIX_MAX, batch_size=64, seed=0, num_steps=20)
    loader = DataLoader(AmbientBatchDataset(ToyDataset(len(MIX_MIN))), batch_sampler=sampler)
    net = lambda x, sigma, labels: 0.5 * x  # noqa: E731
    for batch in loader:
        loss = AmbientLoss()(net, batch, generator=torch.Generator().manual_seed(0))
        assert loss.shape == (64,) and torch.isfinite(loss).all()


class _Images(Dataset):
    """Dict items like MixedDataset's, from tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels, self.ids = images, labels, torch.arange(len(images))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": int(self.labels[i]), "id": int(self.ids[i])}


@pytest.mark.parametrize("rank", [0, 1])
def test_tensor_batches_equal_the_dataloader_batches(rank: int) -> None:
    gen = torch.Generator().manual_seed(0)
    data = _Images(torch.randn(len(MIX_MIN), 1, 3, 3, generator=gen), torch.tensor([0, 1, 2, 3, 4, 5, -1]))
    kwargs = dict(batch_size=5, seed=3, rank=rank, world_size=2, start_step=4, num_steps=12)
    loader = DataLoader(AmbientBatchDataset(data), batch_sampler=quiet_sampler(MIX_MIN, MIX_MAX, **kwargs))
    sampler = quiet_sampler(MIX_MIN, MIX_MAX, **kwargs)
    fast = list(sampler.tensor_batches(data.images, data.labels, data.ids))
    slow = list(loader)
    assert len(fast) == len(slow) == 8 and sampler.step == 12
    for a, b in zip(fast, slow):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
