"""``ambient benchmark-net``: training throughput and validation denoising loss of a denoiser.

One training step is forward + backward + Adam step of the EDM loss
``lambda(sigma) ||D(y + sigma n; sigma) - y||^2`` with ``ln sigma ~ N(-1.2, 1.2^2)``.
The validation loss is the same loss, unweighted by sampling, averaged over a fixed held-out
set of images at 8 fixed, log-spaced sigmas in [0.01, 20] with fixed noise (seeded).
``--baseline`` also trains a reference network in the style of the EDM DDPM++ U-Net
(:class:`~ambient_omni.networks.ddpmpp_reference.DDPMppStyleUNet`) on the same batches,
interleaved step by step, so both see the same machine state; the ratio is what to quote.
``--against-fp32`` does the same with today's reference path: the same network, same initial weights,
float32, eager and PyTorch's own ops (no :mod:`~ambient_omni.networks.fast_ops`), against the training loop's
path (bf16 autocast where :mod:`ambient_omni.device` enables it, the fast ops and their memory format; the same
Adam). Every network's FLOPs per training image (forward + backward, counted by
``torch.utils.flop_counter``) are printed with the fraction of this machine's measured matrix-product peak
(a 1024 x 1024 product in the runner's precision, same threads) that its images/s achieve.
``--against-today ROUNDS`` compares whole processes instead (:mod:`ambient_omni.cli._against_today`).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import torch
from torch import nn

from ambient_omni.networks.ddpmpp_reference import DDPMppStyleUNet

_DESCRIPTION = __doc__.split("\n\n", 1)[0].split(": ", 1)[1] + (
    " Trains on real Fashion-MNIST train images when the resolution is 28x28x1 and the files are "
    "installed, else on random images; the validation set is Fashion-MNIST test images (or random)."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``benchmark-net`` subcommand."""
    p = subparsers.add_parser("benchmark-net", help="measure denoiser training speed and validation loss",
                              description=_DESCRIPTION)
    p.add_argument("--preset", default="fmnist-base", help="network preset (default fmnist-base)")
    p.add_argument("--channels", type=int, help="override model_channels of the preset")
    p.add_argument("--channel-mult", help="override channel_mult, e.g. 1,2,2")
    p.add_argument("--blocks", help="override num_blocks: one count for every level or one per level, e.g. 1,2,2")
    p.add_argument("--attn-levels", help="override attn_levels, e.g. 2 (comma-separated; 'none' for no attention)")
    p.add_argument("--input-skip", action=argparse.BooleanOptionalAction, default=None,
                   help="override input_skip (conv_in's output into the last decoder level)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--resolution", default="28", help="image size: N or HxW (default 28)")
    p.add_argument("--channels-in", type=int, default=1, help="image channels (default 1)")
    p.add_argument("--images", type=int, default=2048, help="training images per network (default 2048)")
    p.add_argument("--val-images", type=int, default=256, help="held-out validation images (default 256)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--channels-last", action="store_true",
                   help="force channels_last memory format (default: the training loop's choice, channels_last on "
                        "the CPU with the fast ops and kernels, NCHW otherwise)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, batches, sigmas and noise")
    p.add_argument("--baseline", action="store_true",
                   help="also train the DDPM++-style reference network, interleaved, and print the ratio")
    p.add_argument("--against-fp32", action="store_true",
                   help="also train the same network in float32 (today's reference path), interleaved, and print "
                        "the speed ratio and both validation losses")
    p.add_argument("--against-today", type=int, default=0, metavar="ROUNDS",
                   help="compare whole processes against today's path: ROUNDS rounds of two runs of this benchmark "
                        "in ABBA order, today's path in float32, eager, with glibc's default malloc "
                        "(AMBIENT_MALLOC=default), and ours as configured; prints each run's img/s and validation "
                        "loss and the median ratio (an even ROUNDS balances the order)")
    p.add_argument("--json", metavar="FILE", help="also write each network's figures (img/s, validation loss, "
                   "FLOPs per image, precision, malloc policy) to FILE; with --against-today, every round's "
                   "figures of both runs, the ratios and their median")
    p.add_argument("--no-bf16", action="store_true", help="train our network in float32 (no bf16 autocast)")
    p.add_argument("--compile", action="store_true", help="train our network through torch.compile")
    p.add_argument("--sample", type=int, default=0, metavar="N",
                   help="also time N samples (Heun, 18 steps, batch 64) from our trained network, float32 and bf16")
    p.add_argument("--data-path", metavar="DATA", help="also time the training data path alone on dataset folder "
                   "DATA (batch assembly as `ambient train` does it, one thread): samples/s by tensor indexing "
                   "and by the per-item DataLoader")
    p.add_argument("--device", help="device (default: $AMBIENT_DEVICE, else cuda if available, else cpu)")
    p.set_defaults(func=run)


def _resolution(text: str) -> tuple[int, int]:
    """Parse ``N`` or ``HxW``."""
    from ambient_omni.errors import AmbientError

    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise AmbientError(f"--resolution must be N or HxW with positive integers, got {text!r}")
    return (parts[0], parts[-1])


def _data(args: argparse.Namespace, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Training and validation images in [-1, 1]: Fashion-MNIST when it fits, else random."""
    from ambient_omni.errors import AmbientError

    if size == (28, 28) and args.channels_in == 1:
        try:
            from ambient_omni.data.readers import read_fashion_mnist

            train = read_fashion_mnist("train").images
            val = read_fashion_mnist("test").images[: args.val_images]
            return train, val, "Fashion-MNIST"
        except (AmbientError, ImportError, FileNotFoundError):
            pass
    gen = torch.Generator().manual_seed(args.seed + 1)
    train = torch.rand(max(args.images, args.batch), args.channels_in, *size, generator=gen) * 2 - 1
    val = torch.rand(args.val_images, args.channels_in, *size, generator=gen) * 2 - 1
    return train, val, "random"


def _build(args: argparse.Namespace, size: tuple[int, int], baseline: bool) -> nn.Module:
    """Our network from the preset (+ overrides), or the DDPM++-style reference, with seeded init."""
    from ambient_omni.diffusion.edm import EDMPrecond
    from ambient_omni.networks.registry import build_network, preset_config

    overrides: dict[str, Any] = {"in_channels": args.channels_in, "out_channels": args.channels_in}
    if args.channels:
        overrides["model_channels"] = args.channels
    if args.channel_mult:
        overrides["channel_mult"] = [int(v) for v in args.channel_mult.split(",")]
    if args.blocks:
        counts = [int(v) for v in args.blocks.split(",")]
        overrides["num_blocks"] = counts[0] if len(counts) == 1 else counts
    if args.input_skip is not None:
        overrides["input_skip"] = args.input_skip
    if args.attn_levels:
        text = args.attn_levels.strip().lower()
        overrides["attn_levels"] = [] if text == "none" else [int(v) for v in text.split(",")]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        if baseline:
            return EDMPrecond(DDPMppStyleUNet(args.channels_in, args.channels_in))
        config = preset_config(args.preset, **overrides)
        if config.get("kind") != "denoiser":
            from ambient_omni.errors import AmbientError

            raise AmbientError(f"--preset {args.preset}: benchmark-net needs a denoiser preset")
        return build_network(config)


class _Runner:
    """One network under training: model, optimizer and accumulated step time."""

    def __init__(self, name: str, net: nn.Module, lr: float, channels_last: bool, device: torch.device,
                 bf16: bool, fast_ops: bool) -> None:
        """``channels_last``: force it; else the training loop's choice (:func:`memory_format_for`) when
        ``fast_ops``, NCHW without."""
        from ambient_omni.device import uses_bf16
        from ambient_omni.networks.fast_ops import memory_format_for, using_fast_ops

        self.name, self.net, self.seconds, self.images = name, net.to(device), 0.0, 0
        with using_fast_ops(fast_ops):
            chosen = memory_format_for(self.net, device)
        self.format = torch.channels_last if channels_last else chosen
        self.net.to(memory_format=self.format)
        self.bf16, self.fast_ops = uses_bf16(device, bf16), fast_ops
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)  # as the Trainer builds it
        self.forward: nn.Module = self.net
        self.params = sum(p.numel() for p in net.parameters())

    def _loss(self, x: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        from ambient_omni.device import autocast
        from ambient_omni.diffusion.edm import denoising_loss
        from ambient_omni.networks.fast_ops import using_fast_ops

        with autocast(x.device, enabled=self.bf16), using_fast_ops(self.fast_ops):
            return denoising_loss(self.forward, x, sigma, noise).float().mean()

    def flops_per_image(self, x: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> float:
        """Forward + backward FLOPs of one training step divided by the batch size (no update made)."""
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            self._loss(x, sigma, noise).backward()
        self.opt.zero_grad(set_to_none=True)
        return counter.get_total_flops() / x.shape[0]

    def step(self, x: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, timed: bool) -> float:
        """One Adam step on the EDM loss; returns the loss; adds the wall time when ``timed``."""
        start = time.perf_counter()
        x, noise = x.contiguous(memory_format=self.format), noise.contiguous(memory_format=self.format)
        loss = self._loss(x, sigma, noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        if timed:
            self.seconds += time.perf_counter() - start
            self.images += x.shape[0]
        return float(loss.detach())

    @torch.no_grad()
    def validate(self, val: torch.Tensor, seed: int, batch: int) -> list[float]:
        """EDM-weighted loss over ``val`` at each of the 8 fixed sigmas, with fixed, seeded noise
        (their mean is the validation loss: every sigma sees the same images)."""
        from ambient_omni.diffusion.edm import denoising_loss, validation_sigmas
        from ambient_omni.networks.fast_ops import using_fast_ops

        self.net.eval()
        gen = torch.Generator().manual_seed(seed + 2)
        dev = next(self.net.parameters()).device
        per_sigma = []
        for s in validation_sigmas():
            noise = torch.randn(val.shape, generator=gen)
            total = 0.0
            for i in range(0, val.shape[0], batch):
                x, n = val[i:i + batch], noise[i:i + batch]
                sig = torch.full((x.shape[0],), float(s), device=dev)
                with using_fast_ops(self.fast_ops):
                    total += float(denoising_loss(self.net, x.to(dev), sig, n.to(dev)).sum())
            per_sigma.append(total / val.shape[0])
        self.net.train()
        return per_sigma


def sampling_seconds(net: nn.Module, n: int, shape: tuple[int, int, int]) -> dict[bool, float]:
    """Wall time of ``n`` seeded samples (Heun, 18 steps, batch 64) from ``net`` with and without bf16."""
    from ambient_omni.training.sampling import generate

    times = {}
    for bf16 in (False, True):
        start = time.perf_counter()
        generate(net, list(range(n)), shape, steps=18, batch_size=64, bf16=bf16)
        times[bf16] = time.perf_counter() - start
    return times


def data_path_rates(data: str, batch: int, steps: int = 200) -> dict[str, float]:
    """Samples/s of the denoiser task's batches of dataset folder ``data`` (every image clean), one thread:
    ``tensor``, the training path (:meth:`SigmaFirstSampler.tensor_batches`), and ``per-item``, a
    ``DataLoader`` over :class:`AmbientBatchDataset` (the path with ``--workers`` > 0, run in-process here)."""
    from torch.utils.data import DataLoader

    from ambient_omni.diffusion.sigma_sampler import AmbientBatchDataset
    from ambient_omni.training.tasks import DenoiserSettings, DenoiserTask

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = DenoiserTask(DenoiserSettings(data=data, annotations=None, batch_size=batch))
        ds = task.dataset
        paths = {"tensor": task.sampler(0, 0, 1).tensor_batches(ds.images, ds.labels, ds.ids),
                 "per-item": iter(DataLoader(AmbientBatchDataset(ds), batch_sampler=task.sampler(0, 0, 1)))}
        rates = {}
        for name, batches in paths.items():
            next(batches)
            start = time.perf_counter()
            for _ in range(steps):
                next(batches)
            rates[name] = steps * batch / (time.perf_counter() - start)
        return rates
    finally:
        torch.set_num_threads(threads)


def matmul_peak(device: torch.device, bf16: bool, size: int = 1024, repeats: int = 8) -> float:
    """Measured FLOP/s of a ``size x size`` matrix product (``2 size^3`` FLOPs) in bf16 or float32."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=gen).to(device, dtype) for _ in range(2))
    best = math.inf
    for _ in range(repeats + 1):
        start = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def run(args: argparse.Namespace) -> int:
    """Train the network(s) on ``--images`` images, print img/s, parameters and validation loss."""
    from tqdm import tqdm

    from ambient_omni.device import pick_device
    from ambient_omni.diffusion.edm import sample_lognormal_sigma, validation_sigmas
    from ambient_omni.errors import AmbientError
    from ambient_omni.networks.fast_ops import fast_ops_enabled

    if args.batch < 1 or args.images < args.batch or args.val_images < 1 or args.threads < 1:
        raise AmbientError("need --batch >= 1, --images >= --batch, --val-images >= 1, --threads >= 1")
    if args.against_today:
        from ambient_omni.cli._against_today import against_today

        return against_today(args)
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    size = _resolution(args.resolution)
    train, val, source = _data(args, size)
    fast = fast_ops_enabled()
    # Compiled code runs PyTorch's ops (their GroupNorm is slow in channels_last): no fast ops with --compile.
    runners = [_Runner("ours", _build(args, size, False), args.lr, args.channels_last, device, not args.no_bf16,
                       fast and not args.compile)]
    if args.compile:
        runners[0].forward = torch.compile(runners[0].net)
    if args.against_fp32:  # same seeded initial weights as "ours"
        runners.append(_Runner("fp32", _build(args, size, False), args.lr, False, device, False, False))
    if args.baseline:
        runners.append(_Runner("baseline", _build(args, size, True), args.lr, args.channels_last, device,
                               not args.no_bf16, fast))
    gen = torch.Generator().manual_seed(args.seed)
    steps = args.images // args.batch
    warmup = min(2, steps - 1)
    for step in tqdm(range(steps), desc="benchmark-net", unit="step"):
        idx = torch.randint(train.shape[0], (args.batch,), generator=gen)
        sigma = sample_lognormal_sigma(args.batch, generator=gen)
        noise = torch.randn((args.batch, *train.shape[1:]), generator=gen)
        x = train[idx]
        for r in runners if step % 2 == 0 else runners[::-1]:
            r.step(x.to(device), sigma.to(device), noise.to(device), timed=step >= warmup)
    print(f"data: {source}, {size[0]}x{size[1]}x{args.channels_in}, batch {args.batch}, "
          f"{steps * args.batch} training images, {args.threads} threads, device {device}")
    speeds: dict[str, float] = {}
    figures: dict[str, dict[str, Any]] = {}
    peaks = {bf16: matmul_peak(device, bf16) for bf16 in {r.bf16 for r in runners}}
    probe = (train[: args.batch].to(device), sample_lognormal_sigma(args.batch, generator=gen).to(device),
             torch.randn((args.batch, *train.shape[1:]), generator=gen).to(device))
    for r in runners:
        speeds[r.name] = r.images / r.seconds
        per_sigma = r.validate(val, args.seed, args.batch)
        flops = r.flops_per_image(*probe)
        print(f"{r.name:8s}: {r.params / 1e6:.3f}M params, {speeds[r.name]:.1f} img/s, "
              f"validation loss {sum(per_sigma) / len(per_sigma):.4f} ({val.shape[0]} images x 8 sigmas)")
        print(f"{'':8s}  per sigma {', '.join(f'{s:.3g}: {v:.3f}' for s, v in zip(validation_sigmas(), per_sigma))}")
        layout = "channels_last" if r.format == torch.channels_last else "NCHW"
        print(f"{'':8s}  {'bf16' if r.bf16 else 'fp32'}, fast ops {'on' if r.fast_ops else 'off'}, {layout}, "
              f"{flops / 1e6:.1f} MFLOP per training image, "
              f"{flops * speeds[r.name] / 1e9:.1f} GFLOP/s = {flops * speeds[r.name] / peaks[r.bf16]:.1%} of the "
              f"measured {'bf16' if r.bf16 else 'fp32'} matmul peak {peaks[r.bf16] / 1e9:.0f} GFLOP/s")
        figures[r.name] = {"images_per_s": speeds[r.name], "validation_loss": sum(per_sigma) / len(per_sigma),
                           "per_sigma": per_sigma, "flops_per_image": flops, "precision": "bf16" if r.bf16 else "fp32",
                           "fast_ops": r.fast_ops, "memory_format": layout, "params": r.params, "matmul_peak_flops": peaks[r.bf16]}
    if args.json:
        from ambient_omni.files import write_json
        from ambient_omni.host_memory import applied_malloc

        write_json(args.json, {"networks": figures, "malloc": applied_malloc(), "threads": args.threads,
                               "images": steps * args.batch, "batch": args.batch, "data": source})
    if args.sample:
        for bf16, seconds in sampling_seconds(runners[0].net, args.sample, (args.channels_in, *size)).items():
            print(f"sampling {args.sample} images (Heun, 18 steps), {'bf16' if bf16 else 'fp32'}: {seconds:.1f} s = "
                  f"{args.sample / seconds:.1f} images/s")
    if args.data_path:
        rates = data_path_rates(args.data_path, args.batch)
        print(f"data path, one thread, batch {args.batch}: {rates['tensor']:,.0f} samples/s by tensor indexing "
              f"(the training path), {rates['per-item']:,.0f} by the per-item DataLoader")
    if args.against_fp32:
        print(f"speed ratio ours/fp32: {speeds['ours'] / speeds['fp32']:.2f}x (same network and batches, interleaved)")
    if args.baseline:
        print(f"speed ratio ours/baseline: {speeds['ours'] / speeds['baseline']:.2f}x "
              "(re-measure on a quiet machine before quoting absolute img/s)")
    return 0
