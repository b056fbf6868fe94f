"""Latent datasets (ambient_omni.latents): scaling, encoding a folder, decoding with the recorded autoencoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_omni.data.dataset_folder import load_dataset, write_dataset
from ambient_omni.data.mixed import MixedData
from ambient_omni.errors import AmbientError
from ambient_omni.latents import AutoencoderCodec, decode_latents, encode_dataset, latent_scale, load_codec
from ambient_omni.networks.registry import build_network
from ambient_omni.training.checkpoint import save_model

NET = {"kind": "autoencoder", "in_channels": 1, "latent_channels": 2, "model_channels": 4, "channel_mult": [1, 2],
       "num_blocks": 1}


def _autoencoder(folder: Path, seed: int = 0) -> Path:
    model = build_network(NET, init_seed=seed)
    save_model(folder, model, {"kind": "autoencoder", "network": NET, "factor": 2})
    return folder


def _pixels(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    provenance = ["clean"] * 3 + ["corrupted:blur:sigma=1"] * 5
    write_dataset(folder, MixedData(rng.integers(0, 256, (8, 1, 8, 8), dtype=np.uint8), np.arange(8) % 2,
                                    ["t"] * 8, np.arange(8), provenance, 4, class_names=["a", "b"]))
    return folder


def test_latent_scale_gives_each_channel_mean_0_and_std_sigma_data() -> None:
    x = torch.randn(50, 3, 4, 4) * torch.tensor([1.0, 5.0, 0.1])[None, :, None, None] + 3.0
    shift, scale = latent_scale(x)
    z = (x - shift[None, :, None, None]) * scale[None, :, None, None]
    torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(dim=(0, 2, 3), unbiased=False), torch.full((3,), 0.5), atol=1e-5, rtol=0)
    with pytest.raises(AmbientError, match=r"channel\(s\) \[1\] are constant"):
        latent_scale(torch.cat([torch.randn(4, 1, 2, 2), torch.ones(4, 1, 2, 2)], dim=1))


def test_encode_writes_a_latent_folder_with_the_pixel_folders_records(tmp_path: Path) -> None:
    pixels = load_dataset(_pixels(tmp_path / "px"))
    codec = AutoencoderCodec(_autoencoder(tmp_path / "ae"))
    write_dataset(tmp_path / "lat", encode_dataset(pixels, codec, batch=3))
    latent = load_dataset(tmp_path / "lat")
    assert latent.images.shape == (8, 2, 4, 4) and latent.images.dtype == torch.float32
    assert latent.provenance == pixels.provenance and torch.equal(latent.labels, pixels.labels)
    assert latent.info["class_names"] == ["a", "b"] and latent.info["seed"] == 4
    info = latent.latent
    assert info["autoencoder"]["kind"] == "ambient-autoencoder" and info["image_shape"] == [1, 8, 8]
    assert info["pixels"] == {"dataset": "px", "sha256": pixels.sha256}
    torch.testing.assert_close(latent.images.std(dim=(0, 2, 3), unbiased=False), torch.full((2,), 0.5), atol=1e-4,
                               rtol=0)
    # Decoding the stored latents equals decoding the autoencoder's own posterior means.
    expected = codec.decode(codec.encode(pixels.images))
    torch.testing.assert_close(decode_latents(latent.images, info), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(AmbientError, match="already a latent dataset"):
        encode_dataset(latent, codec)


def test_another_autoencoder_under_the_recorded_path_is_refused(tmp_path: Path) -> None:
    pixels = load_dataset(_pixels(tmp_path / "px"))
    write_dataset(tmp_path / "lat", encode_dataset(pixels, AutoencoderCodec(_autoencoder(tmp_path / "ae"))))
    info = load_dataset(tmp_path / "lat").latent
    _autoencoder(tmp_path / "ae", seed=1)  # retrained in place: other weights, same folder
    with pytest.raises(AmbientError, match="not the autoencoder these latents were made with"):
        load_codec(info["autoencoder"])
    with pytest.raises(AmbientError, match="unknown autoencoder kind"):
        load_codec({"kind": "vqgan"})


def test_latent_folders_are_validated(tmp_path: Path) -> None:
    pixels = load_dataset(_pixels(tmp_path / "px"))
    data = encode_dataset(pixels, AutoencoderCodec(_autoencoder(tmp_path / "ae")))
    with pytest.raises(AmbientError, match="finite"):
        MixedData(np.full((1, 2, 4, 4), np.nan, dtype=np.float32), np.zeros(1, dtype=np.int64), ["t"], np.zeros(1),
                  ["clean"], 0, latent=data.latent)
    with pytest.raises(ValueError, match="must be float32"):
        MixedData(data.images.astype(np.float64), data.labels, data.sources, data.source_index, data.provenance, 0,
                  latent=data.latent)
    with pytest.raises(ValueError, match="must be uint8"):
        MixedData(data.images, data.labels, data.sources, data.source_index, data.provenance, 0)
    with pytest.raises(AmbientError, match=r"decode: need latents \(N, 2, h, w\)"):
        decode_latents(torch.zeros(1, 3, 4, 4), data.latent)


def test_a_model_folder_of_another_kind_is_no_codec(tmp_path: Path) -> None:
    net = {"kind": "classifier", "in_channels": 1, "model_channels": 4, "channel_mult": [1], "num_blocks": 1}
    save_model(tmp_path / "clf", build_network(net), {"kind": "classifier", "network": net})
    with pytest.raises(AmbientError, match="not an autoencoder"):
        AutoencoderCodec(tmp_path / "clf")


class _FakeVAE(torch.nn.Module):
    """Stands in for diffusers' AutoencoderKL: 3 input channels, latents = the 2x2 mean pool of the input."""

    class config:  # noqa: N801 - the attribute diffusers models carry
        in_channels = 3

    def encode(self, x: torch.Tensor) -> object:
        mean = torch.nn.functional.avg_pool2d(x, 2)
        return type("Out", (), {"latent_dist": type("Dist", (), {"mean": mean})()})()

    def decode(self, z: torch.Tensor) -> object:
        return type("Out", (), {"sample": torch.nn.functional.interpolate(z, scale_factor=2)})()


def test_the_diffusers_adapter_maps_grey_images_to_rgb_and_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from ambient_omni.latents import DiffusersCodec

    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / DiffusersCodec.WEIGHTS).write_bytes(b"weights")
    fake = types.ModuleType("diffusers")
    fake.AutoencoderKL = type("AutoencoderKL", (), {"from_pretrained": staticmethod(lambda *a, **k: _FakeVAE())})
    monkeypatch.setitem(sys.modules, "diffusers", fake)
    codec = DiffusersCodec(tmp_path / "vae", channels=1)
    x = torch.rand(2, 1, 4, 4) * 2 - 1
    z = codec.encode(x)
    assert z.shape == (2, 3, 2, 2) and torch.allclose(z[:, 0], z[:, 2])
    assert codec.decode(z).shape == (2, 1, 4, 4)
    assert codec.identity()["channels"] == 1 and len(codec.identity()["sha256"]) == 64
    assert load_codec(codec.identity()).identity() == codec.identity()
    with pytest.raises(AmbientError, match="cannot encode 2-channel"):
        DiffusersCodec(tmp_path / "vae", channels=2)
    monkeypatch.setitem(sys.modules, "diffusers", None)  # not installed
    with pytest.raises(AmbientError, match="optional package diffusers"):
        DiffusersCodec(tmp_path / "vae", channels=1)


def test_a_random_diffusers_autoencoderkl_encodes_and_decodes_a_grey_folder(tmp_path: Path) -> None:
    from diffusers import AutoencoderKL  # the optional dependency, installed with the dev extra

    from ambient_omni.latents import DiffusersCodec

    torch.manual_seed(0)
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                  latent_channels=2, norm_num_groups=8, sample_size=8).save_pretrained(tmp_path / "vae",
                                                                                       safe_serialization=True)
    pixels = load_dataset(_pixels(tmp_path / "px"))
    codec = DiffusersCodec(tmp_path / "vae", channels=1)
    write_dataset(tmp_path / "lat", encode_dataset(pixels, codec))
    latent = load_dataset(tmp_path / "lat")
    assert latent.images.shape == (8, 2, 4, 4) and latent.latent["autoencoder"]["kind"] == "diffusers-autoencoderkl"
    images = decode_latents(latent.images[:3], latent.latent)
    assert images.shape == (3, 1, 8, 8) and float(images.abs().max()) <= 1
    torch.testing.assert_close(images, codec.decode(codec.encode(pixels.images[:3])), atol=1e-4, rtol=1e-4)
