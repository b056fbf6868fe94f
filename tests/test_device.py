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


class _RowSum(torch.nn.Module):
    """out_i = sum(x_i) + sigma_i: any mix-up of rows or padding shows in the values."""

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).sum(1) + sigma


def test_inference_forward_pads_to_power_of_two_buckets_and_drops_the_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_CPU_BF16", "0")
    seen: list[int] = []

    def fake_compile(model: torch.nn.Module, dynamic: bool) -> object:
        assert dynamic is False

        def run(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            assert x.is_contiguous() and s.is_contiguous()  # the strides real calls have (graphs guard on them)
            seen.append(x.shape[0])
            return model(x, s)

        return run

    monkeypatch.setattr(torch, "compile", fake_compile)
    forward = device.InferenceForward(_RowSum(), CPU, compile=True, batch=32)
    x, sigma = torch.randn(45, 1, 2, 2), torch.rand(45)
    torch.testing.assert_close(forward(x, sigma), x.flatten(1).sum(1) + sigma)
    assert seen == [32, 16]  # 45 rows = 32 + 13, the 13 padded to 16
    seen.clear()
    forward.warm_up(x, sigma)
    assert seen == [8, 16, 32]
    assert device._bucket(1, 256) == 8 and device._bucket(9, 256) == 16 and device._bucket(200, 128) == 128


def test_inference_forward_falls_back_to_eager_when_compile_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no compiler")

    monkeypatch.setattr(torch, "compile", lambda model, dynamic: broken)
    forward = device.InferenceForward(_RowSum(), CPU, bf16=False, compile=True, batch=8)
    x, sigma = torch.randn(5, 3), torch.rand(5)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        out = forward(x, sigma)
    torch.testing.assert_close(out, x.sum(1) + sigma)
    assert forward.compiled is None


def test_inference_forward_bf16_runs_the_network_in_bf16_and_returns_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_CPU_BF16", "1")
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    x = torch.randn(3, 1, 6, 6)
    out = device.InferenceForward(conv, CPU, bf16=True).__call__(x)
    assert out.dtype == torch.float32 and out.shape == (3, 1, 6, 6)
    with torch.no_grad():
        exact = conv(x)
    assert not torch.equal(out, exact)
    torch.testing.assert_close(out, exact, atol=0.05, rtol=0.05)
    with pytest.raises(AmbientError, match="batch"):
        device.InferenceForward(conv, CPU, batch=0)


def test_threads_follow_the_free_cores_unless_an_environment_variable_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMBIENT_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert device.choose_threads(cores=2, load=0.1) == (2, "idle machine")
    assert device.choose_threads(cores=2, load=1.2) == (1, "1.2 of 2 cores busy")
    assert device.choose_threads(cores=2, load=7.0)[0] == 1  # never fewer than one
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert device.choose_threads(cores=2, load=5.0) == (2, "OMP_NUM_THREADS")
    monkeypatch.setenv("AMBIENT_THREADS", "1")
    assert device.choose_threads(cores=2, load=0.0) == (1, "AMBIENT_THREADS")
    monkeypatch.setenv("AMBIENT_THREADS", "two")
    with pytest.raises(AmbientError, match="AMBIENT_THREADS"):
        device.choose_threads()


def test_the_command_line_says_when_a_busy_machine_gets_fewer_threads(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture) -> None:
    from ambient_omni.cli.main import main

    monkeypatch.delenv("AMBIENT_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(device.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(device, "busy_cores", lambda: 1.6)
    threads = torch.get_num_threads()
    try:
        main(["annotations", "validate", "/nonexistent.jsonl"])  # any command: the threads are set first
        assert torch.get_num_threads() == 1
        assert "1.6 of 2 cores busy: using 1 torch thread(s)" in capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)


def test_inference_forward_refuses_an_empty_batch() -> None:
    with pytest.raises(AmbientError, match="no inputs"):
        device.InferenceForward(_RowSum(), CPU, bf16=False)(torch.zeros(0, 3), torch.zeros(0))


def test_busy_cores_reads_the_present_not_the_last_minute() -> None:
    busy = device.busy_cores(seconds=0.05)
    assert busy is None or 0.0 <= busy <= (device.os.cpu_count() or 1)
