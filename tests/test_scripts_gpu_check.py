"""scripts/gpu_check.sh in its CPU smoke mode: every step of the GPU check runs (tiny sizes) and reports, and a
failing step makes the script fail and says which."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _smoke(out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                          env={**os.environ, "SMOKE": "1", "PYTHON": sys.executable, "OUT": str(out), **env},
                          check=False, timeout=300)


def test_smoke_run_reports_every_step(tmp_path: Path) -> None:
    done = _smoke(tmp_path)
    summary = (tmp_path / "summary.txt").read_text()
    assert done.returncode == 0, summary + done.stderr
    assert summary.count("speed ratio ours/fp32") == 1  # training, batch 2, eager
    assert summary.count(" calls/s, ") == 4  # fp32 and bf16 for each classifier preset
    assert summary.count("sampling 2 images") == 2 and "(0 failed steps)" in summary


def test_a_failing_step_fails_the_check_and_is_named(tmp_path: Path) -> None:
    done = _smoke(tmp_path, AMBIENT_MALLOC="bogus")  # every ambient command refuses this setting
    summary = (tmp_path / "summary.txt").read_text()
    assert done.returncode == 1
    assert "FAILED: training, batch 2 eager (exit 2" in summary and "FAILED: sampling" in summary
    assert "(4 failed steps)" in summary
    assert "AMBIENT_MALLOC" in (tmp_path / "sample.txt").read_text()
