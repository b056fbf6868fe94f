"""EDM samplers (Karras et al. 2022, Algorithms 1 and 2), written from the paper.

The probability-flow ODE for ``x_sigma = x_0 + sigma n`` is
``dx/dsigma = (x - D(x; sigma)) / sigma``. On the Karras schedule ``sigma_0 > ... > sigma_{N-1} > 0``
the Euler step is ``x_{i+1} = x_i + (sigma_{i+1} - sigma_i) d_i`` with ``d_i = (x_i - D(x_i; sigma_i)) / sigma_i``;
Heun adds the trapezoidal correction ``x_{i+1} = x_i + (sigma_{i+1} - sigma_i) (d_i + d'_{i+1}) / 2``
except on the last step to ``sigma = 0`` (so N steps cost 2N - 1 network evaluations).
Stochastic "churn" first raises the noise level to ``hat sigma_i = sigma_i (1 + gamma_i)``,
``gamma_i = min(S_churn / N, sqrt 2 - 1)`` for ``sigma_i in [S_min, S_max]``, by adding
``sqrt(hat sigma_i^2 - sigma_i^2) S_noise eps``.
Classifier-free guidance: ``D = D(x; sigma, null) + w (D(x; sigma, c) - D(x; sigma, null))`` with the
null label ``-1``. With ``bf16`` the network runs under bf16 autocast (where :mod:`ambient_omni.device` enables
it) while the ODE state and the update stay in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ambient_omni.device import autocast
from ambient_omni.diffusion.edm import karras_sigmas
from ambient_omni.errors import AmbientError

Denoiser = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


class PerImageGenerator:
    """One ``torch.Generator`` per image, so image ``k``'s random draws depend only on ``seeds[k]``."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        """Stack one ``N(0, I)`` draw of per-image ``shape`` from each generator -> ``(len(seeds), *shape)``."""
        draws = [torch.randn(tuple(shape), generator=g) for g in self.generators]
        return torch.stack(draws).to(self.device)


def _randn_like(x: torch.Tensor, generator: torch.Generator | PerImageGenerator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``x`` from ``generator`` (per image when a PerImageGenerator)."""
    if isinstance(generator, PerImageGenerator):
        if len(generator.generators) != x.shape[0]:
            raise ValueError(f"PerImageGenerator has {len(generator.generators)} seeds for a batch of {x.shape[0]}")
        return generator.randn(x.shape[1:]).to(x.dtype)
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def _net_device(net: Denoiser) -> torch.device:
    """Device of the first parameter of ``net`` (CPU for parameter-free callables)."""
    params = net.parameters() if isinstance(net, torch.nn.Module) else iter(())
    first = next(params, None)
    return first.device if first is not None else torch.device("cpu")


def guided_denoiser(net: Denoiser, labels: torch.Tensor | None, guidance: float) -> Callable:
    """``D(x, sigma)`` with labels bound; with ``guidance != 1`` it is ``D_u + w (D_c - D_u)`` (one batched call)."""
    if guidance == 1.0 or labels is None:
        if guidance != 1.0:
            raise AmbientError("classifier-free guidance (guidance != 1) needs labels")
        return lambda x, sigma: net(x, sigma, labels)

    def guided(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        null = torch.zeros_like(labels) if labels.is_floating_point() else torch.full_like(labels, -1)  # null caption
        both = net(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([labels, null]))
        cond, uncond = both.chunk(2)
        return uncond + guidance * (cond - uncond)

    return guided


@torch.no_grad()
def edm_sampler(
    net: Denoiser,
    latents: torch.Tensor,
    labels: torch.Tensor | None = None,
    steps: int = 18,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    solver: str = "heun",
    s_churn: float = 0.0,
    s_min: float = 0.0,
    s_max: float = math.inf,
    s_noise: float = 1.0,
    guidance: float = 1.0,
    generator: torch.Generator | PerImageGenerator | None = None,
    progress: bool = False,
    bf16: bool = False,
) -> torch.Tensor:
    """Integrate from ``x = sigma_max * latents`` (``latents ~ N(0, I)``) down to ``sigma = 0``; returns ``x_0``.

    ``net(x, sigma (B,), labels)`` is an x0-predicting denoiser (e.g. :class:`EDMPrecond`).
    ``generator`` supplies the churn noise (only used when ``s_churn > 0``). Float64 state; ``bf16`` runs
    the network under bf16 autocast where the device supports it fast (:func:`ambient_omni.device.uses_bf16`).
    """
    if solver not in ("heun", "euler"):
        raise AmbientError(f"solver must be 'heun' or 'euler', got {solver!r}")
    denoise = guided_denoiser(net, labels, guidance)
    sigmas = karras_sigmas(steps, sigma_min, sigma_max, rho).to(latents.device)
    gamma_max = min(s_churn / steps, math.sqrt(2) - 1)
    batch = latents.shape[0]

    def d_of(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        with autocast(x.device, enabled=bf16):
            denoised = denoise(x.to(torch.float32), s.to(torch.float32).expand(batch))
        return (x - denoised.to(torch.float64)) / s

    x = latents.to(torch.float64) * sigmas[0]
    pairs = list(zip(sigmas[:-1], sigmas[1:]))
    if progress:
        from tqdm import tqdm

        pairs = tqdm(pairs, desc="sampling", unit="step", leave=False)
    for i, (s_cur, s_next) in enumerate(pairs):
        gamma = gamma_max if s_min <= float(s_cur) <= s_max else 0.0
        s_hat = s_cur * (1 + gamma)
        if gamma > 0:
            x = x + (s_hat**2 - s_cur**2).sqrt() * s_noise * _randn_like(x, generator)
        d = d_of(x, s_hat)
        x_next = x + (s_next - s_hat) * d
        if solver == "heun" and i < steps - 1:
            x_next = x + (s_next - s_hat) * 0.5 * (d + d_of(x_next, s_next))
        x = x_next
    return x.to(torch.float32)


def sample_images(
    net: Denoiser,
    n: int,
    seeds: Sequence[int] | None,
    shape: Sequence[int],
    batch_size: int = 64,
    labels: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    clip: bool = True,
    progress: bool = True,
    **sampler_kwargs: object,
) -> torch.Tensor:
    """Generate ``n`` images of ``shape = (C, H, W)`` with :func:`edm_sampler`; returns ``(n, C, H, W)`` on CPU.

    Image ``k``'s latent and churn noise come from a generator seeded by ``seeds[k]``
    (default ``seeds = range(n)``), so results do not depend on ``batch_size``.
    ``clip`` clamps the result to ``[-1, 1]``.
    """
    seeds = list(range(n)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != n or n < 1 or batch_size < 1:
        raise AmbientError(f"need n >= 1, batch_size >= 1 and len(seeds) == n, got {n}, {batch_size}, {len(seeds)}")
    if labels is not None and (labels.shape[:1] != (n,) or labels.ndim > (2 if labels.is_floating_point() else 1)):
        raise AmbientError(f"labels must have shape ({n},) (classes) or ({n}, D) (caption embeddings), "
                           f"got {tuple(labels.shape)}")
    device = torch.device(device) if device is not None else _net_device(net)
    out = []
    starts = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="sample_images", unit="batch")
    for start in starts:
        chunk = seeds[start:start + batch_size]
        gen = PerImageGenerator(chunk, device)
        latents = gen.randn(tuple(shape))
        lab = None if labels is None else labels[start:start + batch_size].to(device)
        images = edm_sampler(net, latents, lab, generator=gen, **sampler_kwargs)  # type: ignore[arg-type]
        out.append((images.clamp(-1, 1) if clip else images).cpu())
    return torch.cat(out)
