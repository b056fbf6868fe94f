"""``ambient benchmark-annotate``: every inference path annotates the same images; rates and agreement print."""

import pytest

from ambient_omni.cli.main import main


def test_tiny_run_prints_rates_agreement_and_ratio(capsys: pytest.CaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_CPU_BF16", "1")
    code = main(["benchmark-annotate", "--images", "3", "--chunk", "2", "--threads", "1", "--max-points", "32",
                 "--paths", "fp32,bf16"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line for line in out.splitlines() if "calls/s" in line]
    assert [r.split(":")[0].strip() for r in rows] == ["fp32", "bf16"]
    assert "sigma_min equal to fp32's for 100.0%" in rows[0]  # the reference agrees with itself
    assert "speed ratio against fp32: bf16 " in out


def test_unknown_path_is_a_user_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["benchmark-annotate", "--paths", "fp32,turbo"]) == 2
    assert "--paths" in capsys.readouterr().err
