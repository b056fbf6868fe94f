"""``ambient benchmark-net``: tiny end-to-end runs and its user errors."""

import pytest
import torch

from ambient_omni.cli.main import main


def test_tiny_run_prints_speed_loss_and_ratio(capsys: pytest.CaptureFixture) -> None:
    code = main(["benchmark-net", "--preset", "fmnist-small", "--channels", "8", "--resolution", "8x12",
                 "--channels-in", "3", "--batch", "2", "--images", "6", "--val-images", "2", "--baseline",
                 "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "data: random, 8x12x3" in out
    assert out.count(" img/s, validation loss") == 2 and "validation loss" in out and "speed ratio" in out


def test_bad_resolution_is_a_user_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["benchmark-net", "--resolution", "8y8"]) == 2
    assert "--resolution" in capsys.readouterr().err


def test_per_sigma_losses_average_to_the_validation_loss(capsys: pytest.CaptureFixture) -> None:
    code = main(["benchmark-net", "--preset", "fmnist-small", "--channels", "8", "--resolution", "8",
                 "--batch", "2", "--images", "4", "--val-images", "3", "--threads", "1", "--no-input-skip",
                 "--blocks", "1,1,2"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    head = next(i for i, line in enumerate(lines) if line.startswith("ours"))
    mean = float(lines[head].split("validation loss ")[1].split()[0])
    values = [float(part.split(": ")[1]) for part in lines[head + 1].split("per sigma ")[1].split(", ")]
    assert len(values) == 8 and abs(sum(values) / 8 - mean) < 5e-3


def test_against_fp32_prints_ratio_losses_flops_and_peak_fraction(capsys: pytest.CaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_CPU_BF16", "1")
    code = main(["benchmark-net", "--preset", "fmnist-small", "--channels", "8", "--resolution", "8",
                 "--batch", "2", "--images", "6", "--val-images", "2", "--threads", "1", "--against-fp32"])
    out = capsys.readouterr().out
    assert code == 0 and "speed ratio ours/fp32: " in out
    ours = next(line for line in out.splitlines() if line.startswith("ours"))
    fp32 = next(line for line in out.splitlines() if line.startswith("fp32"))
    assert "validation loss" in ours and "validation loss" in fp32
    flops = [line for line in out.splitlines() if "MFLOP per training image" in line]
    assert [line.split()[0] for line in flops] == ["bf16,", "fp32,"]
    assert "fast ops on" in flops[0] and "fast ops off" in flops[1]  # today's path runs PyTorch's own ops
    counted = [float(line.split(" MFLOP")[0].split()[-1]) for line in flops]
    assert counted[0] == counted[1] > 0  # the same network: the same FLOPs, whatever the precision
    assert all("% of the measured" in line and "matmul peak" in line for line in flops)


def test_matmul_peak_is_a_positive_rate() -> None:
    from ambient_omni.cli.benchmark_net import matmul_peak

    assert matmul_peak(torch.device("cpu"), False, size=64, repeats=1) > 1e6


def test_data_path_rates_are_printed_for_both_paths(tmp_path, capsys: pytest.CaptureFixture) -> None:
    from _training_helpers import write_tiny_dataset

    data = tmp_path / "data"
    write_tiny_dataset(data)
    code = main(["benchmark-net", "--preset", "fmnist-small", "--channels", "8", "--resolution", "8", "--batch", "4",
                 "--images", "8", "--val-images", "2", "--threads", "1", "--data-path", str(data)])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("data path"))
    assert code == 0 and "by tensor indexing" in line and "by the per-item DataLoader" in line
    rates = [float(part.split()[0].replace(",", "")) for part in line.split(": ", 1)[1].split(" samples/s")[:1]]
    assert rates[0] > 0
