"""The DDPM++-style reference backbone: its size matches EDM's DDPM++ at 32 channels and any multiple-of-4 size works."""

import torch

from ambient_omni.networks.ddpmpp_reference import DDPMppStyleUNet


def test_reference_network_shape_and_size() -> None:
    net = DDPMppStyleUNet(1, 1)
    assert 1.6e6 < sum(p.numel() for p in net.parameters()) < 2.0e6  # EDM DDPM++ at 32 channels: ~1.7M
    small = DDPMppStyleUNet(3, 3, model_channels=8)
    assert small(torch.randn(2, 3, 8, 12), torch.zeros(2)).shape == (2, 3, 8, 12)
