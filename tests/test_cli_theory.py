"""``ambient theory``: crossing output, JSON, accuracy curves, one-line errors."""

import json
from pathlib import Path

import pytest

from ambient_omni.cli.main import main


def test_crossing_prints_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "c.json"
    rc = main(["theory", "--n-clean", "1000", "--n-corrupted", "9000", "--tv", "0.3", "--steps", "6", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "mixed data has the better bound for" in text and "choice" in text
    headline = text.splitlines()[0]
    assert "< sigma <" in headline and "sigma > 75.5151" in headline, "the small-sigma window is part of the headline"
    data = json.loads(out.read_text())
    assert data["status"] == "crossing" and len(data["steps"]) == 6
    assert [i["hi"] is None for i in data["mixed_intervals"]] == [False, True]
    assert data["crossing_sigma"] > 1


def test_accuracy_curve_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    curve = tmp_path / "acc.json"
    curve.write_text(json.dumps({"sigma": [0.1, 1.0, 10.0], "accuracy": [0.99, 0.7, 0.51]}))
    assert main(["theory", "crossing", "--n-clean", "100", "--n-corrupted", "900", "--accuracy-curve", str(curve)]) == 0
    assert "crossing:" in capsys.readouterr().out


def test_user_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["theory", "--n-clean", "10", "--n-corrupted", "10"]) == 2
    assert "--tv" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["theory", "--n-clean", "10", "--n-corrupted", "10", "--accuracy-curve", str(bad)]) == 2
    assert "bad.json" in capsys.readouterr().err
    assert main(["theory", "checks"]) == 2
    assert "--out" in capsys.readouterr().err


def test_noise_detection_prints_ratios_and_effective_pixels(capsys: pytest.CaptureFixture) -> None:
    from ambient_omni.theory.noise_detection import effective_pixels, ideal_crossing_ratio

    assert main(["theory", "noise-detection", "--pixels", "50", "--ratios", "2.5", "--tau", "0.4"]) == 0
    out = capsys.readouterr().out
    assert f"sigma* / s = {ideal_crossing_ratio(50, 0.4):.3f}" in out
    assert f"the evidence of {effective_pixels(2.5, 0.4):.3g} pixels" in out
    assert main(["theory", "noise-detection", "--ratios", "x"]) == 2
    assert main(["theory", "noise-detection", "--tau", "0.6"]) == 2
    assert "tau" in capsys.readouterr().err
