"""Sigma-first sampling (PAPER 2.2): draw the noise level, then an image admissible at it.

Admissibility (ARCHITECTURE.md): image ``i`` is usable at ``sigma`` if

    sigma > b * sigma_min[i]   (high-noise use, sigma_tn = sigma_min[i])   or
    sigma <= sigma_max[i]      (low-noise use,  sigma_tn = 0; preferred when both hold),

with ``b = sqrt(s / (s - 1))`` the buffer factor. Batch ``k`` of the global stream is a pure
function of ``(seed, k)``: global sample ``j`` of step ``k`` draws

    sigma = exp(p_mean + p_std * Phi^{-1}(u)),   u = uniform(seed, "sigma", k, j, attempt)

and then the ``floor(v * n(sigma))``-th admissible image, ``v = uniform(seed, "choice", k, j, attempt)``,
``n(sigma)`` the number of admissible images. Since the image is drawn after sigma, the
marginal of sigma stays LogNormal(p_mean, p_std) wherever some image is admissible. Where none
is, the sample redraws sigma (``attempt + 1``, at most ``max_redraws`` times, then it raises):
the marginal becomes the log-normal CONDITIONED on the covered set. The sampler warns at
construction, with the exact empty ranges and their log-normal mass.

Rank ``r`` of ``world_size`` takes the global samples ``j in [r B, (r + 1) B)``, so one process
with batch ``W B`` and ``W`` processes with batch ``B`` draw exactly the same global batch.

Uniform choice among admissible images without scanning all N images: the admissible set is
the disjoint union of ``P = {b sigma_min < sigma}`` and ``Q = {min(b sigma_min, sigma_max) >= sigma}``
(``Q`` = usable only at low noise), and each is a prefix/suffix of one sorted order, so
counting and picking the r-th member are binary searches.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from scipy.special import ndtr, ndtri
from torch.utils.data import Dataset

from ambient_omni.data import admissibility
from ambient_omni.data.admissibility import buffer_factor
from ambient_omni.errors import AmbientError
from ambient_omni.seeding import uniform

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]
SampleItem = tuple[int, float, float]  # (dataset index, sigma_t, sigma_tn)


def admissible(
    sigma: float | torch.Tensor,
    sigma_min: ArrayLike,
    sigma_max: ArrayLike,
    buffer_s: float | None = 4.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`ambient_omni.data.admissibility.admissible` (the one rule) as torch tensors ``(mask, sigma_tn)``."""
    s = sigma.detach().cpu().double().numpy() if isinstance(sigma, torch.Tensor) else sigma
    mask, sigma_tn = admissibility.admissible(s, sigma_min, sigma_max, buffer_s)
    return torch.from_numpy(np.asarray(mask)), torch.from_numpy(np.asarray(sigma_tn, dtype=np.float64))


def _validated(sigma_min: ArrayLike, sigma_max: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """float64 copies of the annotation arrays, checked: same length N >= 1, no NaN, >= 0."""
    smin = np.asarray(sigma_min, dtype=np.float64).reshape(-1)
    smax = np.asarray(sigma_max, dtype=np.float64).reshape(-1)
    if smin.shape != smax.shape or smin.size == 0:
        raise AmbientError(f"sigma_min and sigma_max must have the same length >= 1, got {smin.size} and {smax.size}")
    for name, arr in (("sigma_min", smin), ("sigma_max", smax)):
        if np.isnan(arr).any() or (arr < 0).any():
            raise AmbientError(f"{name} must be >= 0 and not NaN (index {int(np.flatnonzero(~(arr >= 0))[0])})")
    return smin, smax


class AdmissibleIndex:
    """Sorted view of the annotations: count and pick admissible images at many sigmas in O(log N).

    ``P(sigma) = {i : lo_i < sigma}`` with ``lo = b sigma_min``, ``Q(sigma) = {i : m_i >= sigma}`` with
    ``m = min(lo, sigma_max)``; admissible = ``P`` disjoint-union ``Q``. Members are ordered as
    P by ascending ``lo`` then Q by ascending ``m`` (ties by index).
    """

    def __init__(self, sigma_min: ArrayLike, sigma_max: ArrayLike, buffer_s: float | None = 4.0) -> None:
        self.sigma_min, self.sigma_max = _validated(sigma_min, sigma_max)
        self.buffer_s = buffer_s
        lo = buffer_factor(buffer_s) * self.sigma_min
        m = np.minimum(lo, self.sigma_max)
        self._lo_order = np.argsort(lo, kind="stable")
        self._lo_sorted = lo[self._lo_order]
        self._m_order = np.argsort(m, kind="stable")
        self._m_sorted = m[self._m_order]

    def __len__(self) -> int:
        return self.sigma_min.size

    def _counts(self, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_p = np.searchsorted(self._lo_sorted, sigma, side="left")  # #{lo < sigma}
        q_start = np.searchsorted(self._m_sorted, sigma, side="left")  # first m >= sigma
        return n_p, q_start

    def count(self, sigma: ArrayLike) -> np.ndarray:
        """Number of admissible images at each ``sigma``."""
        n_p, q_start = self._counts(np.asarray(sigma, dtype=np.float64))
        return n_p + (len(self) - q_start)

    def pick(self, sigma: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Index of the ``floor(v n(sigma))``-th admissible image at each ``sigma`` (``v`` in [0,1); n > 0)."""
        n_p, q_start = self._counts(sigma)
        n = n_p + (len(self) - q_start)
        r = np.minimum((v * n).astype(np.int64), n - 1)
        in_p = r < n_p
        p_idx = self._lo_order[np.where(in_p, r, 0)]
        q_idx = self._m_order[np.minimum(np.where(in_p, 0, q_start + r - n_p), len(self) - 1)]
        return np.where(in_p, p_idx, q_idx)

    def empty_ranges(self, p_mean: float = -1.2, p_std: float = 1.2) -> list[tuple[float, float, float]]:
        """Open sigma intervals ``(lo, hi, mass)`` where no image is admissible (up to isolated points).

        The count only changes at the thresholds ``b sigma_min`` and ``sigma_max``, so testing one
        point inside every gap between consecutive thresholds is exact. ``mass`` is the
        LogNormal(p_mean, p_std) probability of the interval.
        """
        finite = np.concatenate([self._lo_sorted, self.sigma_max])
        bps = np.unique(finite[np.isfinite(finite) & (finite > 0)])
        edges = np.concatenate([[0.0], bps, [math.inf]])
        left, right = edges[:-1], edges[1:]
        with np.errstate(invalid="ignore"):  # sqrt(0 * inf) in the branches not taken
            inner = np.where(left == 0, right / 2, np.where(np.isinf(right), 2 * left, np.sqrt(left * right)))
        inner[(left == 0) & np.isinf(right)] = 1.0
        empty = self.count(inner) == 0
        ranges: list[tuple[float, float]] = []
        for lo, hi in zip(left[empty], right[empty]):
            if ranges and ranges[-1][1] == lo:
                ranges[-1] = (ranges[-1][0], float(hi))
            else:
                ranges.append((float(lo), float(hi)))
        return [(lo, hi, _lognormal_mass(lo, hi, p_mean, p_std)) for lo, hi in ranges]


def _lognormal_mass(lo: float, hi: float, p_mean: float, p_std: float) -> float:
    """``P(lo < sigma < hi)`` for ``ln sigma ~ N(p_mean, p_std^2)``."""
    cdf = [ndtr((math.log(x) - p_mean) / p_std) if 0 < x < math.inf else float(x > 0) for x in (lo, hi)]
    return float(cdf[1] - cdf[0])


class SigmaFirstSampler:
    """Infinite (or ``num_steps``-long) stream of batches of ``(index, sigma_t, sigma_tn)`` items.

    Use as ``DataLoader(AmbientBatchDataset(ds), batch_sampler=sampler, num_workers=k)``.
    Batch ``k`` depends only on ``(seed, k, rank, world_size, batch_size)`` (module doc).
    Iteration starts at ``self.step`` (initially ``start_step``) and advances it per batch
    produced; note that a DataLoader prefetches, so to resume, save the number of batches
    CONSUMED and pass it as ``start_step`` (or to :meth:`load_state_dict`).
    """

    def __init__(
        self,
        sigma_min: ArrayLike,
        sigma_max: ArrayLike,
        batch_size: int,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        buffer_s: float | None = 4.0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        max_redraws: int = 100,
        num_steps: int | None = None,
    ) -> None:
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise AmbientError(
                f"need batch_size >= 1 and 0 <= rank < world_size, got {batch_size}, {rank}, {world_size}"
            )
        if p_std <= 0 or max_redraws < 0 or start_step < 0:
            raise AmbientError(
                f"need p_std > 0, max_redraws >= 0, start_step >= 0; got {p_std}, {max_redraws}, {start_step}"
            )
        self.index = AdmissibleIndex(sigma_min, sigma_max, buffer_s)
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.p_mean, self.p_std, self.seed = float(p_mean), float(p_std), int(seed)
        self.max_redraws, self.num_steps, self.step = max_redraws, num_steps, start_step
        self.empty = self.index.empty_ranges(self.p_mean, self.p_std)
        self._check_coverage()

    def _check_coverage(self) -> None:
        """Raise if no sigma has an admissible image; warn about empty sigma ranges."""
        total = sum(mass for _, _, mass in self.empty)
        if total >= 1.0 - 1e-12:
            raise AmbientError("the annotations leave no image usable at any sigma (all sigma_min=inf, sigma_max=0?)")
        if self.empty:
            desc = "; ".join(f"({lo:.4g}, {hi:.4g}) mass {mass:.3g}" for lo, hi, mass in self.empty)
            warnings.warn(
                f"no image is admissible for sigma in {desc}: sigmas drawn there are redrawn, so the "
                f"training sigma distribution is the log-normal conditioned outside these ranges "
                f"(total removed mass {total:.3g})",
                stacklevel=3,
            )

    def __len__(self) -> int:
        if self.num_steps is None:
            raise TypeError("SigmaFirstSampler is infinite; pass num_steps to give it a length")
        return max(self.num_steps - self.step, 0)

    def __iter__(self) -> Iterator[list[SampleItem]]:
        while self.num_steps is None or self.step < self.num_steps:
            batch = self.batch(self.step)
            self.step += 1
            yield batch

    def draw(self, step: int, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(index, sigma_t, sigma_tn)`` arrays for global samples ``j`` of global step ``step``."""
        j = np.asarray(j, dtype=np.int64)
        attempt = np.zeros_like(j)
        sigma = self._sigma(step, j, attempt)
        empty = self.index.count(sigma) == 0
        while empty.any():
            if attempt[empty].max() >= self.max_redraws:
                raise AmbientError(
                    f"the annotations leave no image usable around sigma={sigma[empty][0]:.4g} "
                    f"(step {step}, {self.max_redraws} redraws); empty sigma ranges: {self.empty}"
                )
            attempt[empty] += 1
            sigma[empty] = self._sigma(step, j[empty], attempt[empty])
            empty = self.index.count(sigma) == 0
        index = self.index.pick(sigma, uniform(self.seed, "choice", step, j, attempt))
        smin, smax = self.index.sigma_min[index], self.index.sigma_max[index]
        mask, sigma_tn = admissibility.admissible(sigma, smin, smax, self.index.buffer_s)
        assert bool(mask.all()), "AdmissibleIndex.pick returned an inadmissible image"
        return index, sigma, sigma_tn

    def _sigma(self, step: int, j: np.ndarray, attempt: np.ndarray) -> np.ndarray:
        """LogNormal draw by inverse CDF of the counter-based uniform for (seed, step, j, attempt)."""
        return np.exp(self.p_mean + self.p_std * ndtri(uniform(self.seed, "sigma", step, j, attempt)))

    def _rank_draw(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        start = self.rank * self.batch_size
        return self.draw(step, np.arange(start, start + self.batch_size))

    def batch(self, step: int) -> list[SampleItem]:
        """This rank's slice of global batch ``step``: items ``(index, sigma_t, sigma_tn)``."""
        index, sigma, sigma_tn = self._rank_draw(step)
        return [(int(i), float(s), float(t)) for i, s, t in zip(index, sigma, sigma_tn)]

    def tensor_batches(self, images: torch.Tensor, labels: torch.Tensor,
                       ids: torch.Tensor) -> Iterator[dict[str, torch.Tensor]]:
        """The batches ``DataLoader(AmbientBatchDataset(ds), batch_sampler=self)`` yields, with the same values
        and dtypes, built by indexing the dataset's tensors (``images (N, C, H, W)``, ``labels (N,)``,
        ``ids (N,)``) once per batch instead of per item: no per-sample Python work, so the data path keeps
        up with a GPU. Advances :attr:`step` like iterating the sampler. Float ``labels (N, D)`` are caption
        embeddings and stay float."""
        labels = labels.float() if labels.is_floating_point() else labels.to(torch.int64)
        ids = ids.to(torch.int64)
        while self.num_steps is None or self.step < self.num_steps:
            index, sigma, sigma_tn = self._rank_draw(self.step)
            self.step += 1
            rows = torch.from_numpy(np.asarray(index, dtype=np.int64))
            yield {"image": images[rows], "label": labels[rows], "id": ids[rows],
                   "sigma_t": torch.from_numpy(np.asarray(sigma, dtype=np.float64)).to(torch.float32),
                   "sigma_tn": torch.from_numpy(np.asarray(sigma_tn, dtype=np.float64)).to(torch.float32)}

    def state_dict(self) -> dict[str, Any]:
        """Position and identity of the stream (JSON-serializable)."""
        return {
            "step": self.step,
            "seed": self.seed,
            "global_batch": self.batch_size * self.world_size,
            "p_mean": self.p_mean,
            "p_std": self.p_std,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at ``state["step"]``; the stream identity (seed, global batch, p_mean, p_std) must match."""
        mine = self.state_dict()
        diff = [k for k in mine if k != "step" and state.get(k) != mine[k]]
        if diff:
            raise AmbientError(f"sampler state does not match this sampler in {diff}: {state} vs {mine}")
        self.step = int(state["step"])


class AmbientBatchDataset(Dataset):
    """Wrap a dataset of ``{"image", "label", "id"}`` dicts; items are the sampler's ``(index, sigma_t, sigma_tn)``.

    Returns the dict plus float32 scalar tensors ``sigma_t`` and ``sigma_tn``, so the default
    collate produces batches that carry their own noise levels.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: SampleItem) -> dict[str, Any]:
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise TypeError(f"AmbientBatchDataset expects (index, sigma_t, sigma_tn) items, got {item!r}")
        index, sigma_t, sigma_tn = item
        sample = dict(self.dataset[int(index)])
        sample["sigma_t"] = torch.tensor(sigma_t, dtype=torch.float32)
        sample["sigma_tn"] = torch.tensor(sigma_tn, dtype=torch.float32)
        return sample
