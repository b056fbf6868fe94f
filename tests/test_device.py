"""device: where bf16 autocast is on (CUDA, CPUs with native bf16, or as $AMBIENT_CPU_BF16 forces it)."""

import pytest
import torch

from ambient_omni import device
from ambient_omni.errors import AmbientError

CPU = torch.device("cpu")


def _conv_dtype() -> torch.dtype:
    conv = torch.nn.Conv2d(1, 2, 3)
    with device.autocast(CPU):
        return conv(torch.randn(1, 1, 5, 5)).dtype


def test_forced_on_runs_convolutions_in_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_CPU_BF16", "1")
    assert device.cpu_has_native_bf16() and device.uses_bf16(CPU)
    assert _conv_dtype() == torch.bfloat16


def test_forced_off_or_disabled_stays_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_CPU_BF16", "0")
    assert not device.uses_bf16(CPU) and _conv_dtype() == torch.float32
    monkeypatch.setenv("AMBIENT_CPU_BF16", "1")
    assert not device.uses_bf16(CPU, enabled=False)
    assert device.uses_bf16(torch.device("cuda"))  # decided without touching a GPU


def test_bad_forcing_value_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_CPU_BF16", "yes")
    with pytest.raises(AmbientError, match="AMBIENT_CPU_BF16"):
        device.uses_bf16(CPU)


def test_detection_follows_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMBIENT_CPU_BF16", raising=False)
    monkeypatch.setattr(device, "_cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert not device.cpu_has_native_bf16()
    monkeypatch.setattr(device, "_cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert device.cpu_has_native_bf16() == torch.backends.mkldnn.is_available()
    monkeypatch.setattr(device, "_cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert device.cpu_has_native_bf16() == torch.backends.mkldnn.is_available()
