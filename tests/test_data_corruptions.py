"""Corruptions: analytic oracles (blur of a constant, noise std, contrast formula), exact Pillow
JPEG equality, motion-blur direction, per-image determinism, and every parse error."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ambient_omni.data.corruptions import (
    CORRUPTIONS,
    Composed,
    GaussianBlur,
    describe_corruptions,
    motion_kernels,
    parse_corruption,
)
from ambient_omni.data.imageset import to_uint8
from ambient_omni.errors import AmbientError


def _images(n: int = 4, c: int = 3, h: int = 16, w: int = 12, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=gen) * 2 - 1


def _dot(h: int = 21, w: int = 21) -> torch.Tensor:
    """A single bright pixel at the centre of a dark image, shape (1, 1, h, w)."""
    img = -torch.ones(1, 1, h, w)
    img[0, 0, h // 2, w // 2] = 1.0
    return img


ALL_SPECS = [
    "blur:sigma=0.6",
    "jpeg:quality=25",
    "motion:length=5,angle=30",
    "motion:length=4.5,angle=random",
    "noise:std=0.1",
    "noise:std=0.2,clip=true",
    "contrast:factor=0.5,shift=0.1",
    "blur:sigma=1+jpeg:quality=25",
]


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_shape_range_and_batch_independence(spec: str) -> None:
    corruption = parse_corruption(spec)
    images, ids = _images(), torch.tensor([7, 3, 11, 0])
    out = corruption(images, ids, seed=5)
    assert out.shape == images.shape and out.dtype == torch.float32
    if not spec.startswith("noise:std=0.1"):
        assert out.min() >= -1 and out.max() <= 1
    # Same image + id + seed -> same output, whatever the batch around it and its position.
    alone = corruption(images[2:3], ids[2:3], seed=5)
    torch.testing.assert_close(out[2:3], alone, rtol=0, atol=1e-6)
    shuffled = corruption(images[[3, 2, 1, 0]], ids[[3, 2, 1, 0]], seed=5)
    torch.testing.assert_close(shuffled[[3, 2, 1, 0]], out, rtol=0, atol=1e-6)
    assert not torch.equal(out, images)


def test_canonical_spec_round_trips() -> None:
    for spec in ALL_SPECS:
        corruption = parse_corruption(spec)
        assert parse_corruption(corruption.spec) == corruption
    assert parse_corruption(" Blur : sigma = 1.0 ").spec == "blur:sigma=1"
    assert parse_corruption("noise:std=0.1,clip=false").spec == "noise:std=0.1"
    assert parse_corruption("contrast:factor=1,shift=+0.1").spec == "contrast:factor=1,shift=0.1"  # "+" of a number is no join
    assert parse_corruption("motion:length=5,angle=0").spec == "motion:length=5"  # defaults left out
    composed = parse_corruption("blur:sigma=1+jpeg:quality=25")
    assert isinstance(composed, Composed)
    assert composed.spec == "blur:sigma=1+jpeg:quality=25" and composed.name == "blur+jpeg"


def test_blur_keeps_constants_and_matches_gaussian_variance() -> None:
    const = torch.full((2, 1, 15, 15), 0.3)
    torch.testing.assert_close(parse_corruption("blur:sigma=1.5")(const, torch.arange(2), 0), const)
    # Blurring a dot (on a 0 background) spreads it with variance sigma^2 along each axis.
    img = torch.zeros(1, 1, 31, 31)
    img[0, 0, 15, 15] = 1.0
    out = GaussianBlur(sigma=1.5)._apply(img, torch.arange(1), 0)[0, 0].double()
    coords = torch.arange(31, dtype=torch.float64) - 15
    var_x = (out.sum(0) * coords**2).sum() / out.sum()
    assert math.isclose(float(var_x), 1.5**2, rel_tol=0.02)


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_equals_pillow_exactly(channels: int) -> None:
    images = _images(n=2, c=channels, h=24, w=20)
    out = parse_corruption("jpeg:quality=10")(images, torch.arange(2), 0)
    for k in range(2):
        u8 = to_uint8(images[k]).numpy()
        pil = Image.fromarray(u8[0]) if channels == 1 else Image.fromarray(u8.transpose(1, 2, 0))
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=10)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
        expected = decoded[None] if channels == 1 else decoded.transpose(2, 0, 1)
        got = ((out[k] + 1) * 127.5).round().to(torch.uint8).numpy()
        np.testing.assert_array_equal(got, expected)


def test_jpeg_quality_orders_error() -> None:
    images = parse_corruption("blur:sigma=1")(_images(n=2, h=32, w=32), torch.arange(2), 0)
    err = [float((parse_corruption(f"jpeg:quality={q}")(images, torch.arange(2), 0) - images).abs().mean()) for q in (5, 50, 95)]
    assert err[0] > err[1] > err[2]


def test_motion_kernel_is_a_normalised_segment() -> None:
    kernels = motion_kernels(7.0, torch.tensor([0.0, 90.0, 45.0]))
    torch.testing.assert_close(kernels.sum(dim=(1, 2)), torch.ones(3))
    size = kernels.shape[-1]
    assert size == 2 * (7 // 2 + 1) + 1
    c = size // 2
    # 0 degrees: all mass on the centre row, spread over 7-8 columns; 90 degrees: the transpose.
    assert math.isclose(float(kernels[0, c].sum()), 1.0, abs_tol=1e-6)
    torch.testing.assert_close(kernels[1], kernels[0].T)
    # 45 degrees: mass on the anti-diagonal (up-right), none on the main diagonal's far corners.
    assert kernels[2, c - 2, c + 2] > 0 and kernels[2, c + 2, c - 2] > 0
    assert kernels[2, c - 2, c - 2] == 0


def test_motion_blur_is_direction_dependent() -> None:
    dot = _dot()
    ids = torch.arange(1)
    horiz = (parse_corruption("motion:length=7,angle=0")(dot, ids, 0)[0, 0] + 1) / 2
    vert = (parse_corruption("motion:length=7,angle=90")(dot, ids, 0)[0, 0] + 1) / 2
    assert not torch.allclose(horiz, vert)
    c = 10
    assert horiz[c].sum() > 0.99 * horiz.sum() and horiz[c].count_nonzero() >= 7
    assert vert[:, c].sum() > 0.99 * vert.sum() and vert[:, c].count_nonzero() >= 7
    # On a random image, 0-degree blur smooths horizontal gradients far more than vertical ones.
    img = _images(n=1, c=1, h=32, w=32)
    out = parse_corruption("motion:length=9,angle=0")(img, ids, 0)
    gx = out.diff(dim=-1).pow(2).mean()
    gy = out.diff(dim=-2).pow(2).mean()
    assert gx < 0.3 * gy


def test_motion_random_angle_varies_per_id_and_seed() -> None:
    corruption = parse_corruption("motion:length=9,angle=random")
    dots = _dot().repeat(3, 1, 1, 1)
    out = corruption(dots, torch.tensor([0, 1, 2]), seed=0)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])
    again = corruption(dots, torch.tensor([0, 1, 2]), seed=1)
    assert not torch.allclose(out[0], again[0])


def test_noise_has_the_requested_std_and_is_unclipped_by_default() -> None:
    images = torch.full((8, 1, 32, 32), 0.95)
    ids = torch.arange(8)
    out = parse_corruption("noise:std=0.2")(images, ids, seed=3)
    residual = out - images
    assert abs(float(residual.std()) - 0.2) < 0.01
    assert abs(float(residual.mean())) < 0.01
    assert out.max() > 1.0  # values leave [-1, 1] without clip
    clipped = parse_corruption("noise:std=0.2,clip=true")(images, ids, seed=3)
    torch.testing.assert_close(clipped, out.clamp(-1, 1))
    assert not torch.equal(out, parse_corruption("noise:std=0.2")(images, ids, seed=4))


def test_contrast_formula() -> None:
    images = _images(n=2, c=3, h=8, w=8) * 0.3
    out = parse_corruption("contrast:factor=1.5,shift=-0.2")(images, torch.arange(2), 0)
    mean = images.mean(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(out, (1.5 * (images - mean) + mean - 0.2).clamp(-1, 1))
    # Spatial std per channel scales by exactly the factor (no clamping here).
    torch.testing.assert_close(out.std(dim=(-2, -1)), 1.5 * images.std(dim=(-2, -1)))


def test_identity_returns_the_image_and_has_a_bare_spec() -> None:
    images, ids = _images(n=3), torch.arange(3)
    identity = parse_corruption("identity")
    out = identity(images, ids, 4)
    torch.testing.assert_close(out, images, rtol=0, atol=0)
    assert out.data_ptr() != images.data_ptr()  # a copy: editing the output leaves the input alone
    assert identity.spec == "identity" and parse_corruption(" Identity: ") == identity
    assert parse_corruption("identity+blur:sigma=1").spec == "identity+blur:sigma=1"
    with pytest.raises(AmbientError, match="unknown or malformed parameter 'x=1'"):
        parse_corruption("identity:x=1")


def test_composition_applies_in_order() -> None:
    images, ids = _images(n=2), torch.arange(2)
    composed = parse_corruption("blur:sigma=1+jpeg:quality=25")(images, ids, 0)
    step = parse_corruption("jpeg:quality=25")(parse_corruption("blur:sigma=1")(images, ids, 0), ids, 0)
    torch.testing.assert_close(composed, step)
    reversed_order = parse_corruption("jpeg:quality=25+blur:sigma=1")(images, ids, 0)
    assert not torch.allclose(composed, reversed_order)
    # Stage 0 keeps the seed, so a leading noise stage draws the same noise as on its own.
    first = parse_corruption("noise:std=0.1+contrast:factor=1")(images, ids, 2)
    torch.testing.assert_close(first, parse_corruption("noise:std=0.1")(images, ids, 2).clamp(-1, 1))


def test_tiny_images_do_not_crash() -> None:
    images = _images(n=2, c=1, h=4, w=5)
    for spec in ("blur:sigma=5", "motion:length=20,angle=30"):
        out = parse_corruption(spec)(images, torch.arange(2), 0)
        assert out.shape == images.shape and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("sharpen:amount=2", "unknown corruption 'sharpen'"),
        ("blur:radius=2", "unknown or malformed parameter 'radius=2'"),
        ("blur", "missing parameter sigma"),
        ("blur:sigma=0", "sigma=0 out of range"),
        ("blur:sigma=abc", "bad value sigma='abc'"),
        ("blur:sigma=nan", "out of range"),
        ("jpeg:quality=0", "quality=0 out of range"),
        ("jpeg:quality=96", "quality=96 out of range"),
        ("jpeg:quality=50.5", "bad value quality"),
        ("motion:length=0.5", "length=0.5 out of range"),
        ("noise:std=0.1,clip=maybe", "bad value clip"),
        ("noise:std=0.1,std=0.2", "given twice"),
        ("", "empty corruption spec"),
        ("blur:sigma=1+nope:x=1", "unknown corruption 'nope'"),
    ],
)
def test_parse_errors_name_the_problem(spec: str, needle: str) -> None:
    with pytest.raises(AmbientError) as exc:
        parse_corruption(spec)
    assert needle in str(exc.value)


def test_unknown_name_lists_valid_names_and_params() -> None:
    with pytest.raises(AmbientError) as exc:
        parse_corruption("sharpen:amount=2")
    for name in CORRUPTIONS:
        assert name in str(exc.value)
    assert "quality (int, >= 1, <= 95" in describe_corruptions()


def test_bad_batches_are_rejected() -> None:
    blur = parse_corruption("blur:sigma=1")
    with pytest.raises(AmbientError):
        blur(torch.zeros(1, 8, 8), torch.arange(1), 0)
    with pytest.raises(AmbientError):
        blur(torch.zeros(2, 1, 8, 8), torch.arange(3), 0)
    with pytest.raises(AmbientError, match="1 or 3 channels"):
        parse_corruption("jpeg:quality=50")(torch.zeros(1, 2, 8, 8), torch.arange(1), 0)
