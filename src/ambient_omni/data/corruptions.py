"""Image corruptions, named by short spec strings and deterministic per image.

A spec is ``name:param=value,param=value``; several specs joined by ``+`` are applied in order
(``blur:sigma=1+jpeg:quality=25``). :func:`parse_corruption` turns a spec into a
:class:`Corruption`, a callable

    corruption(images, ids, seed) -> corrupted images

on float32 batches ``(N, C, H, W)`` in ``[-1, 1]`` (the project's image convention). Any
randomness is drawn from ``ambient_omni.seeding.generator(seed, purpose, image id)``, so an
image's corruption does not depend on which other images share its batch, on the batch size,
or on the device. Outputs are clamped to ``[-1, 1]`` except ``noise`` with ``clip=false``
(the default, see :class:`GaussianNoise`).

Available corruptions (``CORRUPTIONS``):

- ``blur:sigma=S``            Gaussian blur, ``y = k_S * x`` (std ``S`` pixels).
- ``jpeg:quality=Q``          Pillow / libjpeg encode-decode round trip at quality ``Q``.
- ``motion:length=L,angle=A`` linear motion blur along a segment of ``L`` pixels at ``A`` degrees.
- ``noise:std=S[,clip=B]``    additive Gaussian noise ``y = x + S z``, ``z ~ N(0, I)``.
- ``contrast:factor=F[,shift=B]`` low-frequency change ``y = F (x - mean) + mean + B``.
- ``identity``                ``y = x``: images labelled low-quality that are in fact clean (the oracle
  control of a bias experiment: the same annotation and loss without any corruption to be biased by).
"""

from __future__ import annotations

import abc
import io
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ambient_omni.data.imageset import from_uint8, to_uint8
from ambient_omni.errors import AmbientError
from ambient_omni.seeding import derive_seed, generator


class Param(NamedTuple):
    """One parameter of a corruption spec: its kind, valid range and default (None = required)."""

    name: str
    kind: str  # "float", "int", "bool" or "angle" (a float or the word "random")
    low: float | None
    high: float | None
    default: Any
    help: str
    low_open: bool = False

    def describe(self) -> str:
        """Human description, e.g. ``sigma (float, > 0, <= 20, required)``."""
        if self.kind == "bool":
            rng = "true/false"
        else:
            lo = f"{'>' if self.low_open else '>='} {_fmt(self.low)}" if self.low is not None else ""
            hi = f"<= {_fmt(self.high)}" if self.high is not None else ""
            rng = ", ".join(part for part in (self.kind, lo, hi) if part)
            if self.kind == "angle":
                rng += ' degrees or "random"'
        req = "required" if self.default is None else f"default {_fmt(self.default)}"
        return f"{self.name} ({rng}, {req}): {self.help}"


def _fmt(value: Any) -> str:
    """Canonical text of a parameter value: ``1`` not ``1.0``, ``0.6``, ``true``, ``random``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_batch(images: torch.Tensor, ids: torch.Tensor) -> None:
    """Raise when ``images`` is not a float ``(N, C, H, W)`` batch with ``N`` matching ids."""
    if images.ndim != 4 or not images.is_floating_point():
        raise AmbientError(f"corruption: expected a float (N, C, H, W) batch, got {tuple(images.shape)} {images.dtype}")
    if ids.ndim != 1 or ids.shape[0] != images.shape[0]:
        raise AmbientError(f"corruption: ids must have shape ({images.shape[0]},), got {tuple(ids.shape)}")


@dataclass(frozen=True)
class Corruption(abc.ABC):
    """A named, parametrised, deterministic image corruption (see the module docstring)."""

    name: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]
    summary: ClassVar[str]
    clamps: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for param in self.params:
            _check_range(self.name, param, getattr(self, param.name))

    @property
    def spec(self) -> str:
        """Canonical spec string; parameters equal to their default are left out."""
        parts = [
            f"{p.name}={_fmt(getattr(self, p.name))}"
            for p in self.params
            if p.default is None or getattr(self, p.name) != p.default
        ]
        return f"{self.name}:{','.join(parts)}" if parts else self.name

    def __call__(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        """Corrupt a batch; image ``i`` depends only on ``(images[i], ids[i], seed)``."""
        _check_batch(images, ids)
        out = self._apply(images.float(), ids.long().cpu(), int(seed))
        return out.clamp(-1.0, 1.0) if self.clamps else out

    @abc.abstractmethod
    def _apply(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        """The corruption itself, before clamping."""


def _check_range(name: str, param: Param, value: Any) -> None:
    """Raise an AmbientError when ``value`` lies outside ``param``'s range."""
    if param.kind in ("bool",) or (param.kind == "angle" and value == "random"):
        return
    too_low = param.low is not None and (value <= param.low if param.low_open else value < param.low)
    too_high = param.high is not None and value > param.high
    if too_low or too_high or (isinstance(value, float) and not math.isfinite(value)):
        raise AmbientError(f"corruption {name!r}: {param.name}={_fmt(value)} out of range; {param.describe()}")


@dataclass(frozen=True)
class GaussianBlur(Corruption):
    """Gaussian blur ``y = g_S * x`` with ``g_S(u, v) ∝ exp(-(u² + v²) / (2 S²))``.

    Kernel radius ``ceil(3 S)`` (capped at ``min(H, W) - 1`` so that reflect padding is
    defined on tiny images), reflect border, via ``kornia.filters.gaussian_blur2d``.
    """

    sigma: float
    name: ClassVar[str] = "blur"
    summary: ClassVar[str] = "Gaussian blur of std sigma pixels"
    params: ClassVar[tuple[Param, ...]] = (
        Param("sigma", "float", 0.0, 20.0, None, "blur std in pixels", low_open=True),
    )

    def _apply(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        from kornia.filters import gaussian_blur2d

        radius = min(math.ceil(3.0 * self.sigma), min(images.shape[-2:]) - 1)
        size = 2 * radius + 1
        sigma = torch.tensor([[self.sigma, self.sigma]], dtype=images.dtype, device=images.device)
        return gaussian_blur2d(images, (size, size), sigma.expand(images.shape[0], 2), border_type="reflect")


@dataclass(frozen=True)
class JPEG(Corruption):
    """JPEG compression: ``y = decode(encode(q(x), Q)) / 127.5 - 1`` with Pillow's libjpeg.

    ``q(x) = round((x + 1) * 127.5)`` clipped to ``0..255``; 1 channel is encoded as mode
    ``L``, 3 channels as ``RGB`` (Pillow's default 4:2:0 chroma subsampling). The output
    equals exactly what ``PIL.Image.save(format="JPEG", quality=Q)`` and reopening gives.
    """

    quality: int
    name: ClassVar[str] = "jpeg"
    summary: ClassVar[str] = "JPEG encode/decode round trip (Pillow/libjpeg) at the given quality"
    params: ClassVar[tuple[Param, ...]] = (Param("quality", "int", 1, 95, None, "JPEG quality (1 worst, 95 best)"),)

    def _apply(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        if images.shape[1] not in (1, 3):
            raise AmbientError(f"corruption 'jpeg': needs 1 or 3 channels, got {images.shape[1]}")
        u8 = to_uint8(images).cpu().numpy()
        out = np.stack([jpeg_roundtrip(img, self.quality) for img in u8])
        return from_uint8(out).to(images.device)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode a uint8 ``(C, H, W)`` image (C = 1 or 3) as JPEG in memory and decode it."""
    from PIL import Image

    pil = Image.fromarray(image[0], mode="L") if image.shape[0] == 1 else Image.fromarray(image.transpose(1, 2, 0), mode="RGB")
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    decoded = np.asarray(Image.open(buffer).convert(pil.mode))
    return decoded[None] if decoded.ndim == 2 else decoded.transpose(2, 0, 1)


def motion_kernels(length: float, angles_deg: torch.Tensor) -> torch.Tensor:
    """Anti-aliased linear motion kernels ``(N, K, K)``, one per angle, each summing to 1.

    The kernel is the uniform density on the segment ``{c + t (cos A, -sin A) : |t| <= L/2}``
    (``c`` the kernel centre, ``A`` counter-clockwise from the +x axis with y pointing down in
    the image), sampled at 16 points per pixel of length and splatted bilinearly onto the grid.
    ``K = 2 (floor(L/2) + 1) + 1``.
    """
    radius = math.floor(length / 2) + 1
    size = 2 * radius + 1
    count = max(2, math.ceil(16 * length) + 1)
    t = torch.linspace(-length / 2, length / 2, count, dtype=torch.float64)
    rad = torch.deg2rad(angles_deg.double())[:, None]
    x = radius + t[None] * torch.cos(rad)
    y = radius - t[None] * torch.sin(rad)
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    kernels = torch.zeros(angles_deg.shape[0], size * size, dtype=torch.float64)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        col = (x0 + dx).clamp(0, size - 1).long()
        row = (y0 + dy).clamp(0, size - 1).long()
        kernels.scatter_add_(1, row * size + col, w)
    kernels /= kernels.sum(dim=1, keepdim=True)
    return kernels.view(-1, size, size).float()


def filter_per_image(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve image ``n`` (all channels) with ``kernels[n]`` (odd square), reflect border.

    Falls back to replicate padding when the kernel radius is not smaller than the image side.
    """
    n, c, h, w = images.shape
    pad = kernels.shape[-1] // 2
    mode = "reflect" if pad < min(h, w) else "replicate"
    padded = F.pad(images.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode=mode)
    weight = kernels.to(images).repeat_interleave(c, dim=0)[:, None]
    # A centred segment is symmetric under a 180-degree turn, so correlation == convolution.
    return F.conv2d(padded, weight, groups=n * c).view(n, c, h, w)


@dataclass(frozen=True)
class MotionBlur(Corruption):
    """Linear motion blur ``y = m_{L,A} * x`` (see :func:`motion_kernels`), reflect border.

    ``angle=random`` draws ``A ~ U[0, 180)`` per image from the generator of
    ``(seed, "motion-angle", id)``.
    """

    length: float
    angle: float | str = 0.0
    name: ClassVar[str] = "motion"
    summary: ClassVar[str] = "linear motion blur along a segment of `length` pixels at `angle` degrees"
    params: ClassVar[tuple[Param, ...]] = (
        Param("length", "float", 1.0, 64.0, None, "segment length in pixels"),
        Param("angle", "angle", -360.0, 360.0, 0.0, "direction, counter-clockwise from horizontal"),
    )

    def _apply(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        if self.angle == "random":
            angles = torch.cat([torch.rand(1, generator=generator(seed, "motion-angle", i)) * 180.0 for i in ids.tolist()])
        else:
            angles = torch.full((images.shape[0],), float(self.angle))
        return filter_per_image(images, motion_kernels(self.length, angles))


@dataclass(frozen=True)
class GaussianNoise(Corruption):
    """Additive Gaussian noise ``y = x + S z``, ``z ~ N(0, I)`` from the generator of ``(seed, "noise", id)``.

    ``clip=false`` (default): the output is NOT clamped and may leave ``[-1, 1]``, so its
    deviation from ``x`` has std exactly ``S`` -- the quantity the paper's Table 7 check
    compares the annotated sigma_min with. Note that a uint8 dataset folder clips (and
    quantises) on storage, which lowers the effective std on near-saturated pixels (e.g. the
    black background of Fashion-MNIST); ``clip=true`` makes that explicit here. Measured on
    2000 Fashion-MNIST train images: nominal std 0.05 / 0.1 / 0.2 -> std of the stored
    (clipped, uint8) residual 0.041 / 0.082 / 0.161 (27-30 % of pixels clipped).
    """

    std: float
    clip: bool = False
    name: ClassVar[str] = "noise"
    summary: ClassVar[str] = "additive Gaussian noise of std `std` in [-1, 1] units"
    params: ClassVar[tuple[Param, ...]] = (
        Param("std", "float", 0.0, 10.0, None, "noise std in [-1, 1] units", low_open=True),
        Param("clip", "bool", None, None, False, "clamp the result to [-1, 1]"),
    )

    @property
    def clamps(self) -> bool:  # type: ignore[override]
        """Clamp only when ``clip=true``."""
        return self.clip

    def _apply(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        shape = images.shape[1:]
        z = torch.stack([torch.randn(shape, generator=generator(seed, "noise", i)) for i in ids.tolist()])
        return images + self.std * z.to(images.device)


@dataclass(frozen=True)
class Contrast(Corruption):
    """Low-frequency change ``y = F (x - m) + m + B``, ``m`` the per-image, per-channel mean.

    It changes only the DC/very-low-frequency content, which additive Gaussian noise does not
    hide (noise is white, the signal's energy is concentrated there): a noise-conditional
    classifier can tell it apart at every sigma, so such images end with ``sigma_min`` at the
    top of the grid and must be handled by filtering instead.
    """

    factor: float
    shift: float = 0.0
    name: ClassVar[str] = "contrast"
    summary: ClassVar[str] = "contrast factor and brightness shift (a low-frequency corruption)"
    params: ClassVar[tuple[Param, ...]] = (
        Param("factor", "float", 0.0, 10.0, None, "contrast factor F", low_open=True),
        Param("shift", "float", -2.0, 2.0, 0.0, "brightness shift B in [-1, 1] units"),
    )

    def _apply(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        mean = images.mean(dim=(-2, -1), keepdim=True)
        return self.factor * (images - mean) + mean + self.shift


@dataclass(frozen=True)
class Identity(Corruption):
    """``y = x``: the image unchanged, under a corrupted provenance (``corrupted:identity``).

    An oracle control, not a corruption: a dataset whose "corrupted" part is the clean originals lets an
    experiment keep an annotation and a loss while removing the bias that the corruption brings.
    """

    name: ClassVar[str] = "identity"
    summary: ClassVar[str] = "no change (oracle control: clean images under a corrupted label)"
    params: ClassVar[tuple[Param, ...]] = ()

    def _apply(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        return images.clone()


@dataclass(frozen=True)
class Composed:
    """Several corruptions applied in order; stage ``k > 0`` gets ``derive_seed(seed, "stage", k)``.

    Stage 0 uses ``seed`` itself, so ``noise:std=0.1`` and ``noise:std=0.1+blur:sigma=1``
    draw the same noise.
    """

    stages: tuple[Corruption, ...]

    @property
    def name(self) -> str:
        """Stage names joined by ``+``."""
        return "+".join(stage.name for stage in self.stages)

    @property
    def spec(self) -> str:
        """Canonical stage specs joined by ``+``."""
        return "+".join(stage.spec for stage in self.stages)

    def __call__(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        """Apply each stage in order (each clamps or not as it documents)."""
        for k, stage in enumerate(self.stages):
            stage_seed = seed if k == 0 else derive_seed(seed, "stage", k)
            images = stage(images, ids, stage_seed)
        return images


CORRUPTIONS: dict[str, type[Corruption]] = {
    cls.name: cls for cls in (GaussianBlur, JPEG, MotionBlur, GaussianNoise, Contrast, Identity)
}


def describe_corruptions() -> str:
    """Multi-line help text listing every corruption and its parameters (for CLI help)."""
    lines = ["corruption specs: NAME:PARAM=VALUE[,PARAM=VALUE] (join several with '+'):"]
    for name, cls in CORRUPTIONS.items():
        lines.append(f"  {name}: {cls.summary}")
        lines.extend(f"      {p.describe()}" for p in cls.params)
    return "\n".join(lines)


def _parse_value(name: str, param: Param, text: str) -> Any:
    """Convert the text of one parameter value to its kind, naming the culprit on failure."""
    low = text.strip().lower()
    try:
        if param.kind == "bool":
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return low in ("true", "1", "yes")
        if param.kind == "angle" and low == "random":
            return "random"
        if param.kind == "int":
            return int(low)
        return float(low)
    except ValueError:
        raise AmbientError(f"corruption {name!r}: bad value {param.name}={text!r}; {param.describe()}") from None


def _parse_single(spec: str) -> Corruption:
    """Parse one ``name:k=v,...`` spec (no ``+``)."""
    name, _, rest = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in CORRUPTIONS:
        raise AmbientError(f"unknown corruption {name!r} in {spec!r}.\n{describe_corruptions()}")
    cls = CORRUPTIONS[name]
    by_name = {p.name: p for p in cls.params}
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, text = item.partition("=")
        key = key.strip().lower()
        if not eq or key not in by_name:
            valid = "; ".join(p.describe() for p in cls.params)
            raise AmbientError(f"corruption {name!r}: unknown or malformed parameter {item!r}; valid: {valid}")
        if key in values:
            raise AmbientError(f"corruption {name!r}: parameter {key!r} given twice in {spec!r}")
        values[key] = _parse_value(name, by_name[key], text)
    missing = [p.describe() for p in cls.params if p.default is None and p.name not in values]
    if missing:
        raise AmbientError(f"corruption {name!r}: missing parameter {'; '.join(missing)} (in {spec!r})")
    return cls(**values)


def parse_corruption(spec: str) -> Corruption | Composed:
    """Parse ``name:k=v[,k=v]`` or several such specs joined by ``+`` (applied left to right).

    Raises :class:`AmbientError` naming the valid corruptions and parameters on any problem.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise AmbientError(f"empty corruption spec.\n{describe_corruptions()}")
    parts = re.split(r"\+(?=\s*[A-Za-z])", spec.strip())
    stages = tuple(_parse_single(part) for part in parts)
    return stages[0] if len(stages) == 1 else Composed(stages)


__all__ = [
    "CORRUPTIONS",
    "Composed",
    "Contrast",
    "Corruption",
    "GaussianBlur",
    "GaussianNoise",
    "Identity",
    "JPEG",
    "MotionBlur",
    "Param",
    "describe_corruptions",
    "filter_per_image",
    "jpeg_roundtrip",
    "motion_kernels",
    "parse_corruption",
]

