"""The ambient loss (PAPER 2.1): learn E[x_0 | x_t] from images that are only trusted at noise >= sigma_tn.

For a sample with corrupted image ``y``, trust level ``sigma_tn`` (``= sigma_min``, 0 for clean
or low-noise use) and training level ``sigma_t > sigma_tn``:

    x_tn     = y + sigma_tn z_i                    z_i: fixed per-sample noise (:func:`fixed_noise`)
    x_t      = x_tn + sqrt(sigma_t^2 - sigma_tn^2) eps          eps: fresh every step
    x0_hat   = D(x_t, sigma_t)
    a        = (sigma_t^2 - sigma_tn^2) / sigma_t^2
    x_tn_hat = (1 - a) x_t + a x0_hat
    loss_i   = lambda(sigma_t) * w_amb * mean_pixels (x_tn_hat - x_tn)^2,   w_amb = 1 / a^2

Since ``x_tn_hat - x_tn = a (x0_hat - T)`` with the target ``T = (x_tn - (1 - a) x_t) / a``
(:func:`ambient_target`), the loss equals ``lambda(sigma_t) mean (x0_hat - T)^2`` and its
minimizer is ``E[T | x_t] = E[x_0 | x_t]`` for the distribution whose noisy version at
``sigma_tn`` the data is. With ``sigma_tn = 0``: ``a = 1``, ``T = y`` and the loss is exactly the
EDM loss ``lambda(sigma) mean (x0_hat - y)^2``.

Buffer: the weight blows up as ``sigma_t -> sigma_tn``. Requiring ``sigma_t > b sigma_tn`` with
``b = sqrt(s / (s - 1))`` bounds ``1 / a = sigma_t^2 / (sigma_t^2 - sigma_tn^2) <= s``, hence
``w_amb <= s^2`` (s = 4: b = 1.1547, w_amb <= 16). The paper's text says the buffer bounds
``w_amb`` by ``s``; its formula (kept here) bounds ``1 / a``.

Variance weight (optional, ``variance_weight=True``; not in the paper): the ambient target's
spread around ``E[x_0 | x_t]`` is larger than the clean one's. For isotropic data of per-pixel
variance ``v = sigma_data^2`` the optimum of the ambient loss is ``r`` times the clean optimum,
``r = (1 + sigma_tn^2 / v) / a`` (:func:`ambient_omni.diffusion.gaussian.ambient_variance_ratio`):
10x or more at the sigma_min of blurred Fashion-MNIST. Multiplying each sample by ``1 / r``
(1 for clean samples) keeps every level's minimizer (clean and ambient terms share it) and makes
each sample's expected loss at the optimum the clean one, so high-noise ambient samples no longer
dominate the gradient scale that Adam normalizes by.

Target ``"x0"`` (optional, ``target="x0"``; not in the paper): regress on the image itself at every level
the annotation admits, ``loss_i = lambda(sigma_t) mean (D(y + sigma_t eps, sigma_t) - y)^2`` for
``sigma_t > b sigma_tn`` (the buffer and window are kept; only the target changes). Its minimizer is
``E[y | x_t]``, the same as the ambient loss's: with ``p_t`` the law of ``x_t`` (the same for both, ``y``
plus Gaussian noise of variance ``sigma_t^2``), Tweedie's formula from level ``sigma_tn`` to ``sigma_t`` gives
``E[x_tn | x_t] = x_t + (sigma_t^2 - sigma_tn^2) grad log p_t(x_t)``, hence
``E[T | x_t] = x_t + sigma_t^2 grad log p_t(x_t) = E[y | x_t]``. So over the population both losses
learn the same denoiser at the admitted levels (the corrupted distribution's, which the annotation
trusts to be close to the clean one there) and differ only in the spread of their targets, ``r`` times
larger for the ambient one; on a finite set they differ in what can be memorized (the ambient loss sees
each image only as ``y_i + sigma_tn z_i``). This separates the variance of the ambient target from the
bias of the admitted images (docs/RESULTS.md section 7).

Reduction: the per-sample loss is the MEAN over the pixels (C*H*W) of each image (over every entry
of a sample of any shape ``(B, ...)``); the caller reduces over the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ambient_omni.data.admissibility import buffer_factor
from ambient_omni.diffusion.edm import edm_weight, sample_column
from ambient_omni.errors import AmbientError
from ambient_omni.seeding import torch_seeds

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

TARGETS = ("ambient", "x0")
"""Regression targets of :class:`AmbientLoss` (module doc)."""

# Float32 batches carry sigmas rounded from float64 draws: allow this relative slack on 1/a <= s.
_BUFFER_RTOL = 1e-4


def fixed_noise(
    ids: torch.Tensor, shape: tuple[int, ...], seed: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Fixed per-sample noise ``z_i ~ N(0, I)`` of ``shape`` for every id, stacked to ``(B, *shape)``.

    ``z_i`` comes from its own CPU ``torch.Generator`` seeded by ``hash64(seed, "fixed_noise", id)``:
    the same every epoch, on every device, whatever the batch composition; global RNG is untouched.
    """
    ids_np = torch.as_tensor(ids).detach().cpu().to(torch.int64).reshape(-1).numpy()
    seeds = torch_seeds(int(seed), "fixed_noise", ids_np) if ids_np.size else []
    gen = torch.Generator()
    noise = torch.empty((len(seeds), *shape), dtype=torch.float32)
    for row, s in zip(noise.unbind(0), seeds):
        row.normal_(generator=gen.manual_seed(s))
    return noise.to(device) if device is not None else noise




def ambient_fraction(sigma_t: torch.Tensor, sigma_tn: torch.Tensor) -> torch.Tensor:
    """``a = (sigma_t^2 - sigma_tn^2) / sigma_t^2`` (exactly 1 where ``sigma_tn = 0``)."""
    return (sigma_t.square() - sigma_tn.square()) / sigma_t.square()


def variance_weight(sigma_t: torch.Tensor, sigma_tn: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """``1 / r = a / (1 + sigma_tn^2 / sigma_data^2)``: the inverse of the isotropic-Gaussian ratio of
    the ambient loss's optimum to the clean one (module doc); exactly 1 where ``sigma_tn = 0``."""
    return ambient_fraction(sigma_t, sigma_tn) / (1 + sigma_tn.square() / sigma_data**2)


def ambient_target(
    x_t: torch.Tensor, x_tn: torch.Tensor, sigma_t: torch.Tensor, sigma_tn: torch.Tensor
) -> torch.Tensor:
    """Equivalent x0-regression target ``T = (x_tn - (1 - a) x_t) / a``; ``E[T | x_t] = E[x_0 | x_t]``."""
    a = sample_column(ambient_fraction(sigma_t, sigma_tn), x_t)
    return (x_tn - (1 - a) * x_t) / a


@dataclass
class AmbientLoss:
    """Per-sample ambient loss (module doc) for any x0-predicting ``net(x, sigma, labels)``.

    Attributes:
        sigma_data: data standard deviation in ``lambda(sigma)``.
        ambient_weight: use ``w_amb = 1 / a^2`` (True) or ``w_amb = 1`` (the paper's ablation).
        buffer_s: buffer ``s``: reject batches with ``sigma_t^2 / (sigma_t^2 - sigma_tn^2) > s``;
            None or inf only requires ``sigma_t > sigma_tn``.
        edm_weighting: multiply by ``lambda(sigma_t)`` (True) or by 1.
        variance_weight: also multiply by ``1 / r = a / (1 + sigma_tn^2 / sigma_data^2)`` (module doc).
        noise_seed: seed of the fixed per-sample noise (use the dataset seed).
        target: ``"ambient"`` (the paper's loss) or ``"x0"``: regress on ``y`` itself at the admitted levels
            (module doc; the window ``sigma_t > b sigma_tn`` is still checked).
        images_carry_noise: ``batch["image"]`` already IS the noisy observation ``x_tn`` at level
            ``sigma_tn`` (data observed with Gaussian noise of known std, the paper's Table 7 setting), so no
            fixed noise is added: ``x_tn = image``. Default False: ``image`` is the (corrupted but noise-free)
            ``y`` and the loss adds ``sigma_tn z_i`` itself, as for blurred or JPEG images.
    """

    sigma_data: float = 0.5
    ambient_weight: bool = True
    buffer_s: float | None = 4.0
    edm_weighting: bool = True
    variance_weight: bool = False
    noise_seed: int = 0
    images_carry_noise: bool = False
    target: str = "ambient"

    def __post_init__(self) -> None:
        buffer_factor(self.buffer_s)  # validates buffer_s
        if self.target not in TARGETS:
            raise AmbientError(f"loss target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if not self.sigma_data > 0:
            raise AmbientError(f"sigma_data must be positive, got {self.sigma_data}")

    def check_sigmas(self, sigma_t: torch.Tensor, sigma_tn: torch.Tensor, ids: torch.Tensor) -> None:
        """Raise :class:`AmbientError` naming the samples where ``sigma_t`` violates the buffer.

        Needs ``sigma_tn >= 0``, ``sigma_t > sigma_tn`` and, with a buffer, ``1/a <= s`` (i.e.
        ``sigma_t >= b sigma_tn``, checked with relative slack 1e-4 for float32 rounding).
        """
        st, stn = sigma_t.detach().cpu().double(), sigma_tn.detach().cpu().double()
        bad = ~(stn >= 0) | ~(st > stn)
        if self.buffer_s is not None and not math.isinf(self.buffer_s):
            inv_a = st.square() / (st.square() - stn.square())
            bad |= inv_a > self.buffer_s * (1 + _BUFFER_RTOL)
        if bad.any():
            idx = torch.nonzero(bad).reshape(-1)[:5].tolist()
            detail = ", ".join(
                f"id {int(ids[i])}: sigma_t={st[i].item():.6g}, sigma_tn={stn[i].item():.6g}" for i in idx
            )
            raise AmbientError(
                f"{int(bad.sum())} sample(s) violate sigma_t > b*sigma_tn "
                f"(b={buffer_factor(self.buffer_s):.4f}, buffer_s={self.buffer_s}): {detail}"
            )

    def _fixed_noise_where_needed(
        self, ids: torch.Tensor, sigma_tn_cpu: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """``z_i`` for the rows with ``sigma_tn > 0``, zeros elsewhere (they are multiplied by 0 anyway)."""
        rows = torch.nonzero(sigma_tn_cpu > 0).reshape(-1)
        z = torch.zeros_like(y)
        if rows.numel():
            noise = fixed_noise(torch.as_tensor(ids).cpu()[rows], tuple(y.shape[1:]), self.noise_seed)
            z[rows.to(y.device)] = noise.to(device=y.device, dtype=y.dtype)
        return z

    def __call__(
        self,
        net: Denoiser,
        batch: dict[str, torch.Tensor],
        generator: torch.Generator | None = None,
        stats: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Per-sample loss ``(B,)`` for ``batch`` = {image, label, id, sigma_t, sigma_tn}; ``image`` may have any
        shape ``(B, ...)`` (``(B, C, H, W)`` images, ``(B, D)`` vectors): every sigma scales its own sample.

        Computed in the images' dtype (float32 normally; the network output is cast to it).

        ``eps`` is drawn from ``generator`` (which must live on the images' device) or, when it
        is None, from the global torch RNG of that device. If ``stats`` is a dict, it receives
        detached tensors: ``w_amb_mean``, ``w_amb_max`` and ``ambient_frac`` (share with sigma_tn > 0).
        """
        y = batch["image"]
        self.check_sigmas(batch["sigma_t"], batch["sigma_tn"], batch["id"])
        trusted = batch["sigma_tn"] if self.target == "ambient" else torch.zeros_like(batch["sigma_tn"])
        z = (torch.zeros_like(y) if self.images_carry_noise
             else self._fixed_noise_where_needed(batch["id"], trusted.detach().cpu(), y))
        sigma_t = batch["sigma_t"].to(device=y.device, dtype=y.dtype)
        sigma_tn = trusted.to(device=y.device, dtype=y.dtype)
        eps = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        a = ambient_fraction(sigma_t, sigma_tn)
        # sqrt(sigma_t^2 - sigma_tn^2) written as sigma_t sqrt(a): exactly sigma_t when sigma_tn = 0.
        x_tn = y + sample_column(sigma_tn, y) * z
        x_t = x_tn + sample_column(sigma_t * a.sqrt(), y) * eps
        x0_hat = net(x_t, sigma_t, batch["label"]).to(y.dtype)
        if x0_hat.shape != y.shape:
            raise AmbientError(f"the denoiser returned shape {tuple(x0_hat.shape)} for images of shape {tuple(y.shape)}")
        x_tn_hat = (1 - sample_column(a, y)) * x_t + sample_column(a, y) * x0_hat
        w_amb = 1 / a.square() if self.ambient_weight else torch.ones_like(a)
        lam = edm_weight(sigma_t, self.sigma_data) if self.edm_weighting else torch.ones_like(a)
        if self.variance_weight:
            lam = lam * variance_weight(sigma_t, sigma_tn, self.sigma_data)
        if stats is not None:
            stats.update(
                w_amb_mean=w_amb.detach().mean(),
                w_amb_max=w_amb.detach().max(),
                ambient_frac=(batch["sigma_tn"].detach().to(y.device) > 0).float().mean(),
            )
        return lam * w_amb * (x_tn_hat - x_tn).square().flatten(1).mean(1)
