"""A small, CPU-fast U-Net backbone ``F(x_in, c_noise, labels)`` and its reusable encoder half.

Layout (``L = len(channel_mult)`` levels, ``c_i = model_channels * channel_mult[i]``):

    encoder: conv_in -> for each level i: [avg-pool /2 if i > 0] -> n_i ResBlocks (c_i)
             -> keep the level output as skip_i;  then one middle ResBlock at the lowest level
    decoder: for each level i from L-1 down to 0: [nearest upsample to skip_i's size if i < L-1]
             -> concat skip_i (and, at level 0 with ``input_skip``, conv_in's output)
             -> n_i ResBlocks (c_i);  then GroupNorm, SiLU, conv_out

``num_blocks`` gives ``n_i``: one int for every level or a list with one count per level.

Down-sampling uses ceil-mode 2x2 average pooling and up-sampling interpolates to the exact size
of the matching skip, so any H x W works (odd, non-square, down to 1 x 1 at the lowest level).

A ResBlock is ``x + conv(dropout(SiLU(GN(h) (1 + scale) + shift)))`` with
``h = conv(SiLU(GN(x)))`` and ``(scale, shift)`` a linear map of the shared noise/label
embedding (adaptive GroupNorm). The noise embedding is Fourier features of ``c_noise``
(fixed, log-spaced frequencies) through a 2-layer MLP; class labels add a learned embedding
where label ``-1`` (and label dropout) selects an extra "null" class for classifier-free guidance.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ambient_omni.errors import AmbientError
from ambient_omni.networks.fast_ops import FUSED_NORM_TAG, downsample, upsample
from ambient_omni.networks.group_norm_silu import group_norm_silu


def _groups(channels: int) -> int:
    """GroupNorm groups: the largest divisor of ``channels`` that is at most 32 and leaves at least
    4 channels per group (1 for fewer than 8 channels)."""
    return max(g for g in range(1, max(1, min(32, channels // 4)) + 1) if channels % g == 0)


def fused_norm(channels: int, affine: bool = True) -> nn.GroupNorm:
    """The GroupNorm before a SiLU (:func:`norm_silu` calls it), tagged as running in the fused kernel."""
    norm = nn.GroupNorm(_groups(channels), channels, affine=affine)
    setattr(norm, FUSED_NORM_TAG, True)
    return norm


def norm_silu(norm: nn.GroupNorm, x: torch.Tensor, weight: torch.Tensor | None = None,
              bias: torch.Tensor | None = None) -> torch.Tensor:
    """``SiLU(norm(x) * weight + bias)``: ``norm``'s groups, eps and (if affine) its own parameters, or the
    per-sample ``(B, C)`` modulation ``weight, bias`` of an ``affine=False`` norm (one fused op on the CPU,
    :mod:`ambient_omni.networks.group_norm_silu`)."""
    if norm.affine:
        weight, bias = norm.weight, norm.bias
    return group_norm_silu(x, norm.num_groups, weight, bias, norm.eps)


class NoiseEmbedding(nn.Module):
    """``(c_noise, labels) -> emb``: Fourier features of ``c_noise`` -> MLP, plus a label embedding.

    Fourier features are ``[cos(2 pi f_k c), sin(2 pi f_k c)]`` with ``f_k`` log-spaced in
    ``[1/16, 16]`` (``c_noise = ln(sigma)/4`` spans about ``[-1.6, 1.1]`` in practice).
    Labels are int64 ``(B,)``; ``-1`` means "no label" and maps to the null class ``label_dim``.
    While training, each label is replaced by the null class with probability ``label_dropout``
    (drawn from torch's global generator, like :class:`torch.nn.Dropout`).
    With ``label_dim = 0`` the network is unconditional and ignores ``labels``.

    Text conditioning (``text_dim > 0``, exclusive with ``label_dim``): ``labels`` are then float caption
    embeddings ``(B, text_dim)`` (:mod:`ambient_omni.networks.text_encoder`), added through a linear map
    ``W e`` (no bias), so the zero vector is the null caption: ``None`` means all zeros, and in training each
    row is zeroed with probability ``label_dropout`` (caption dropout, for classifier-free guidance).
    """

    def __init__(self, emb_dim: int, num_freqs: int = 16, label_dim: int = 0, label_dropout: float = 0.0,
                 text_dim: int = 0) -> None:
        super().__init__()
        if label_dim < 0 or text_dim < 0 or not 0.0 <= label_dropout <= 1.0:
            raise AmbientError(f"need label_dim >= 0, text_dim >= 0 and 0 <= label_dropout <= 1, got {label_dim}, "
                               f"{text_dim}, {label_dropout}")
        if label_dim and text_dim:
            raise AmbientError("a network is conditioned on class labels or on captions, not both")
        self.text_dim = text_dim
        self.label_dim = label_dim
        self.label_dropout = label_dropout
        freqs = 2 * math.pi * torch.logspace(-math.log10(16), math.log10(16), num_freqs)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * num_freqs, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(label_dim + 1, emb_dim) if label_dim > 0 else None
        self.text_proj = nn.Linear(text_dim, emb_dim, bias=False) if text_dim > 0 else None

    def forward(self, c_noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return ``SiLU(emb)`` of shape ``(B, emb_dim)`` (already activated for the block projections)."""
        phase = c_noise.to(torch.float32).reshape(-1, 1) * self.freqs
        emb = self.mlp(torch.cat([phase.cos(), phase.sin()], dim=1))
        if self.label_emb is not None:
            emb = emb + self.label_emb(self._label_index(labels, emb.shape[0], emb.device))
        if self.text_proj is not None:
            emb = emb + self.text_proj(self._captions(labels, emb.shape[0], emb.device))
        return F.silu(emb)

    def _captions(self, text: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        """Caption embeddings ``(B, text_dim)``, zeros for ``None``, rows zeroed by caption dropout in training."""
        if text is None:
            return torch.zeros(batch, self.text_dim, device=device)
        if text.shape != (batch, self.text_dim) or not text.is_floating_point():
            raise ValueError(f"caption embeddings must be float ({batch}, {self.text_dim}), got {text.dtype} "
                             f"{tuple(text.shape)}")
        text = text.to(device=device, dtype=torch.float32)
        if self.training and self.label_dropout > 0:
            keep = torch.rand(batch, device=device) >= self.label_dropout
            text = text * keep[:, None]
        return text

    def _label_index(self, labels: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        """Map labels to embedding rows: ``-1`` (or dropped) -> ``label_dim``; validates the range."""
        if labels is None:
            return torch.full((batch,), self.label_dim, dtype=torch.long, device=device)
        labels = labels.to(device=device, dtype=torch.long).reshape(-1)
        if labels.shape[0] != batch:
            raise ValueError(f"labels must have shape ({batch},), got {tuple(labels.shape)}")
        if bool(((labels < -1) | (labels >= self.label_dim)).any()):
            raise ValueError(f"labels must lie in [-1, {self.label_dim - 1}]")
        if self.training and self.label_dropout > 0:
            drop = torch.rand(batch, device=device) < self.label_dropout
            labels = labels.masked_fill(drop, -1)
        return torch.where(labels < 0, torch.full_like(labels, self.label_dim), labels)


class ResBlock(nn.Module):
    """Pre-activation residual block with adaptive GroupNorm conditioning (see module doc)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = fused_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = fused_norm(out_ch, affine=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        # Default (not zero) init of conv2: measured lower validation loss after 3072 Fashion-MNIST
        # images (0.951 vs 1.070, benchmark-net seed 0).
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``skip(x) + conv2(dropout(SiLU(GN(h)(1 + scale) + shift)))``, ``h = conv1(SiLU(GN(x)))``."""
        h = self.conv1(norm_silu(self.norm1, x))
        scale, shift = self.emb_proj(emb).chunk(2, dim=1)
        h = self.conv2(self.dropout(norm_silu(self.norm2, h, scale + 1, shift)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over all pixels, residual, output projection zero-initialised."""

    def __init__(self, channels: int, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        """``x + proj(softmax(q k^T / sqrt(d)) v)`` with q, k, v from ``GN(x)``; ``emb`` is unused."""
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


def _level_blocks(in_ch: int, out_ch: int, n: int, emb_dim: int, dropout: float, attn: bool) -> nn.ModuleList:
    """``n`` ResBlocks (the first maps ``in_ch -> out_ch``), each followed by attention if ``attn``."""
    blocks: list[nn.Module] = []
    for i in range(n):
        blocks.append(ResBlock(in_ch if i == 0 else out_ch, out_ch, emb_dim, dropout))
        if attn:
            blocks.append(SelfAttention(out_ch))
    return nn.ModuleList(blocks)


def _blocks_per_level(num_blocks: int | Sequence[int], levels: int) -> list[int]:
    """``num_blocks`` as one count per level (an int applies to every level); validated."""
    counts = [int(num_blocks)] * levels if isinstance(num_blocks, int) else [int(n) for n in num_blocks]
    if len(counts) != levels or min(counts) < 1:
        raise AmbientError(f"num_blocks must be a positive int or one positive int per level "
                           f"({levels} levels), got {num_blocks!r}")
    return counts


def _check_arch(channel_mult: Sequence[int], num_blocks: int | Sequence[int], attn_levels: Sequence[int],
                model_channels: int = 1, in_channels: int = 1) -> None:
    """Validate the architecture options (AmbientError names the option)."""
    for name, value in (("model_channels (--channels)", model_channels), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise AmbientError(f"{name} must be a positive int, got {value!r}")
    if not channel_mult or any(int(m) < 1 for m in channel_mult):
        raise AmbientError(f"channel_mult must be a non-empty list of positive ints, got {list(channel_mult)}")
    _blocks_per_level(num_blocks, len(channel_mult))
    bad = [a for a in attn_levels if not 0 <= a < len(channel_mult)]
    if bad:
        raise AmbientError(f"attn_levels {bad} out of range for {len(channel_mult)} levels")


def _init_args(local_vars: dict) -> dict:
    """Constructor arguments as plain JSON values (tuples -> lists), for :mod:`.registry`."""
    args = {k: v for k, v in local_vars.items() if k not in ("self", "__class__")}
    return {k: [int(x) for x in v] if isinstance(v, (tuple, list)) else v for k, v in args.items()}


class UNetEncoder(nn.Module):
    """Encoder half: noise/label embedding, conv_in, down levels and the middle block.

    ``forward(x, c_noise, labels) -> (B, out_dim)`` globally averaged lowest-level features;
    :meth:`features` returns the lowest-level map and the per-level skips for the decoder.
    """

    def __init__(
        self,
        in_channels: int,
        model_channels: int = 32,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_blocks: int | Sequence[int] = 2,
        attn_levels: Sequence[int] = (),
        dropout: float = 0.0,
        label_dim: int = 0,
        label_dropout: float = 0.0,
        emb_dim: int | None = None,
        text_dim: int = 0,
    ) -> None:
        super().__init__()
        _check_arch(channel_mult, num_blocks, attn_levels, model_channels, in_channels)
        self.init_args = _init_args(locals())
        if not text_dim:  # configs written before captions existed rebuild the same network
            del self.init_args["text_dim"]
        self.emb_dim = emb_dim or 4 * model_channels
        self.channels = [model_channels * int(m) for m in channel_mult]
        self.embed = NoiseEmbedding(self.emb_dim, label_dim=label_dim, label_dropout=label_dropout, text_dim=text_dim)
        self.conv_in = nn.Conv2d(in_channels, model_channels, 3, padding=1)
        prev = model_channels
        self.levels = nn.ModuleList()
        self.blocks = _blocks_per_level(num_blocks, len(self.channels))
        for i, ch in enumerate(self.channels):
            self.levels.append(_level_blocks(prev, ch, self.blocks[i], self.emb_dim, dropout, i in attn_levels))
            prev = ch
        self.mid = _level_blocks(prev, prev, 1, self.emb_dim, dropout, len(self.channels) - 1 in attn_levels)
        self.out_dim = prev

    def features(self, x: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run conv_in, the levels and the middle block.

        Returns ``(h_lowest, [conv_in(x), skip_0, ..., skip_{L-1}])``.
        """
        h = self.conv_in(x)
        skips: list[torch.Tensor] = [h]
        for i, blocks in enumerate(self.levels):
            if i > 0:
                h = downsample(h)
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        return h, skips

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled features ``mean_hw h`` of shape ``(B, out_dim)``."""
        h, _ = self.features(x, self.embed(c_noise, labels))
        return h.mean(dim=(2, 3))


class UNet(nn.Module):
    """U-Net backbone ``F(x_in, c_noise, labels) -> (B, out_channels, H, W)`` built on :class:`UNetEncoder`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        model_channels: int = 32,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_blocks: int | Sequence[int] = 2,
        attn_levels: Sequence[int] = (),
        dropout: float = 0.0,
        label_dim: int = 0,
        label_dropout: float = 0.0,
        emb_dim: int | None = None,
        input_skip: bool = False,
        text_dim: int = 0,
    ) -> None:
        super().__init__()
        self.init_args = _init_args(locals())
        if not text_dim:  # configs written before captions existed rebuild the same network
            del self.init_args["text_dim"]
        self.input_skip = input_skip
        self.encoder = UNetEncoder(
            in_channels, model_channels, channel_mult, num_blocks, attn_levels,
            dropout, label_dim, label_dropout, emb_dim, text_dim,
        )
        chans = self.encoder.channels
        emb = self.encoder.emb_dim
        self.up_levels = nn.ModuleList()
        prev = chans[-1]
        for i in reversed(range(len(chans))):
            extra = model_channels if (input_skip and i == 0) else 0
            self.up_levels.append(
                _level_blocks(prev + chans[i] + extra, chans[i], self.encoder.blocks[i], emb, dropout,
                              i in attn_levels))
            prev = chans[i]
        self.out_norm = fused_norm(prev)
        # Default (not zero) init of conv_out: after 4096 Fashion-MNIST training images the validation
        # loss was 0.886 vs 0.959 with a zero-initialised conv_out (benchmark-net --blocks 2
        # --no-input-skip, seed 0; docs/RESULTS.md section 4).
        self.conv_out = nn.Conv2d(prev, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder -> decoder with skip concatenation -> ``conv_out(SiLU(GN(h)))``.

        With ``input_skip`` the last decoder level also concatenates ``conv_in(x)`` (a short path
        from the input to the output, which the low-noise levels need: there ``D(x) ~ x``).
        """
        emb = self.encoder.embed(c_noise, labels)
        h, (h_in, *skips) = self.encoder.features(x, emb)
        for level, (blocks, skip) in enumerate(zip(self.up_levels, reversed(skips))):
            if h.shape[-2:] != skip.shape[-2:]:
                h = upsample(h, skip.shape[-2:])
            last = level == len(self.up_levels) - 1
            h = torch.cat([h, skip, h_in] if (last and self.input_skip) else [h, skip], dim=1)
            for block in blocks:
                h = block(h, emb)
        return self.conv_out(norm_silu(self.out_norm, h))
