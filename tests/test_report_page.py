"""The report page: collects what a folder holds, inlines figures, writes a Markdown twin."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ambient_omni.cli.main import main
from ambient_omni.data.annotations import AnnotationTable, write_annotations
from ambient_omni.errors import AmbientError
from ambient_omni.report import plots
from ambient_omni.report.page import write_report


def _make_folder(root: Path) -> None:
    run = root / "run"
    (run / "samples").mkdir(parents=True)
    with open(run / "log.jsonl", "w") as handle:
        handle.write(json.dumps({"step": 0, "event": "start"}) + "\n")
        for step in range(1, 6):
            handle.write(json.dumps({"step": step, "images_seen": 64 * step, "loss_mean": 1.0 / step}) + "\n")
    png = plots.loss_curves({"x": (np.arange(3.0), np.ones(3))})
    (run / "samples" / "preview-00000005.png").write_bytes(png)
    (root / "sample_out").mkdir()
    (root / "sample_out" / "grid.png").write_bytes(png)
    (root / "sample_out" / "metrics.json").write_text(json.dumps({"features": {"fmnist-classifier": {"fd": 12.5, "precision": 0.7}}, "n_samples": 64}))
    table = AnnotationTable.fixed(np.arange(3), ["clean", "corrupted:blur", "corrupted:blur"], sigma_min=1.0)
    write_annotations(root / "annotations.jsonl", table)


def test_report_contains_every_part(tmp_path: Path) -> None:
    _make_folder(tmp_path)
    html_path, md_path = write_report(tmp_path)
    page = html_path.read_text()
    assert len(re.findall(r"src='data:image/png;base64,", page)) == 5  # 2 sample images, loss, 2 annotation plots
    assert "FD [fmnist-classifier]" in page and "12.5" in page
    assert "Training loss" in page and "Annotations: annotations.jsonl" in page
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing fetched
    md = md_path.read_text()
    refs = re.findall(r"\]\((report_files/[^)]+)\)", md)
    assert len(refs) == 5
    assert all((tmp_path / r).is_file() for r in refs)


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AmbientError, match="nothing to show"):
        write_report(tmp_path)
    with pytest.raises(AmbientError, match="not a folder"):
        write_report(tmp_path / "missing")


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _make_folder(tmp_path)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.html").is_file()
    assert "report.md" in capsys.readouterr().out
