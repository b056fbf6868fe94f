"""A reference denoiser backbone in the style of the EDM DDPM++ U-Net, written here from the paper's description.

``ambient benchmark-net --baseline`` trains it beside this project's U-Net on the same batches, so the two
can be compared in speed and validation loss on one machine state. It is a yardstick, not a preset: it
needs H and W divisible by ``2 ** (levels - 1)`` and takes no class labels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _DDPMppBlock(nn.Module):
    """DDPM++-style block: ``(skip(x) + conv1(drop(SiLU(GN(conv0(SiLU(GN(x))))(1+s)+t)))) / sqrt 2``.

    ``resample`` is ``"down"`` (2x2 average) or ``"up"`` (nearest 2x) applied on both paths.
    """

    def __init__(self, cin: int, cout: int, emb: int, resample: str = "", attention: bool = False) -> None:
        super().__init__()
        self.resample = resample
        self.norm0 = nn.GroupNorm(max(1, min(32, cin // 4)), cin)
        self.conv0 = nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Linear(emb, 2 * cout)
        self.norm1 = nn.GroupNorm(max(1, min(32, cout // 4)), cout)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if (cin != cout or resample) else nn.Identity()
        self.attn = nn.MultiheadAttention(cout, 1, batch_first=True) if attention else None
        self.attn_norm = nn.GroupNorm(max(1, min(32, cout // 4)), cout) if attention else None

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv0(self._resample(F.silu(self.norm0(x))))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        # A multiply and an add like our ResBlock's, not torch.addcmul (slow on bf16 with (B, C, 1, 1) factors).
        h = self.conv1(F.silu(self.norm1(h) * (scale + 1) + shift))
        out = (h + self.skip(self._resample(x))) * (1 / math.sqrt(2))
        if self.attn is not None:
            b, c, hh, ww = out.shape
            seq = self.attn_norm(out).flatten(2).transpose(1, 2)
            att = self.attn(seq, seq, seq, need_weights=False)[0]
            out = (out + att.transpose(1, 2).reshape(b, c, hh, ww)) * (1 / math.sqrt(2))
        return out


class DDPMppStyleUNet(nn.Module):
    """Reference backbone in the style of the EDM DDPM++ U-Net (about 1.7M params at 32 channels).

    Positional noise embedding -> 2-layer MLP; encoder keeps every block output as a skip and
    down-samples with a resampling block; decoder has an attention block at the lowest level,
    ``num_blocks + 1`` blocks per level (each concatenating one skip) and an up-sampling block.
    Needs H and W divisible by ``2 ** (levels - 1)``.
    """

    def __init__(self, in_channels: int, out_channels: int, model_channels: int = 32,
                 channel_mult: tuple[int, ...] = (1, 2, 2), num_blocks: int = 2) -> None:
        super().__init__()
        emb = 4 * model_channels
        self.model_channels = model_channels
        self.map = nn.Sequential(nn.Linear(model_channels, emb), nn.SiLU(), nn.Linear(emb, emb), nn.SiLU())
        self.conv_in = nn.Conv2d(in_channels, model_channels, 3, padding=1)
        self.enc = nn.ModuleList()
        skips, cout = [model_channels], model_channels
        for level, mult in enumerate(channel_mult):
            if level > 0:
                self.enc.append(_DDPMppBlock(cout, cout, emb, "down"))
                skips.append(cout)
            for _ in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc.append(_DDPMppBlock(cin, cout, emb))
                skips.append(cout)
        self.dec = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            if level == len(channel_mult) - 1:
                self.dec.append(_DDPMppBlock(cout, cout, emb, attention=True))
                self.dec.append(_DDPMppBlock(cout, cout, emb))
            else:
                self.dec.append(_DDPMppBlock(cout, cout, emb, "up"))
            for _ in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                self.dec.append(_DDPMppBlock(cin, cout, emb))
        self.out_norm = nn.GroupNorm(max(1, min(32, cout // 4)), cout)
        self.conv_out = nn.Conv2d(cout, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        half = self.model_channels // 2
        freqs = (1 / 10000) ** (torch.arange(half, dtype=torch.float32, device=x.device) / half)
        phase = c_noise.reshape(-1, 1).float() * freqs
        emb = self.map(torch.cat([phase.cos(), phase.sin()], dim=1))
        h = self.conv_in(x)
        skips = [h]
        for block in self.enc:
            h = block(h, emb)
            skips.append(h)
        for block in self.dec:
            if block.conv0.in_channels != h.shape[1]:
                h = torch.cat([h, skips.pop()], dim=1)
            h = block(h, emb)
        return self.conv_out(F.silu(self.out_norm(h)))
