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
from ambient_omni.report.page import collect, write_report


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


DEMO_FD = {"clean-only": 133.0, "all-data": 348.0, "ambient-o": 190.0}


def make_demo_folder(root: Path, images: np.ndarray | None = None) -> Path:
    """A folder laid out like `ambient demo`'s (bench layout): results.json, cells/<cell>/{result.json,
    samples/{grid.png,metrics.json}, run/{log.jsonl,config.json}}, a noise classifier run, two annotation
    files (clean-only's: every corrupted image unused, nothing to plot; ambient-o's: sigma_min per image)."""
    from ambient_omni.training.preview import save_grid

    rng = np.random.default_rng(0)
    n = 100
    provenance = ["clean"] * 10 + ["corrupted:blur:sigma=1.0"] * (n - 10)
    clean_only = AnnotationTable.by_provenance(np.arange(n), provenance, {"clean": (0.0, 0.0), "corrupted": (np.inf, 0.0)},
                                               "clean-only")
    ambient = AnnotationTable.fixed(np.arange(n), provenance, sigma_min=1.0)
    ambient.sigma_min[10:] = np.exp(rng.normal(np.log(1.6), 0.35, n - 10))
    files = {"clean-only": root / "annotations" / "blur-clean-only-aaaa.jsonl",
             "ambient-o": root / "annotations" / "blur-classifier-bbbb.jsonl"}
    write_annotations(files["clean-only"], clean_only)
    write_annotations(files["ambient-o"], ambient)
    cells = []
    for k, (method, fd) in enumerate(DEMO_FD.items()):
        cell = root / "cells" / f"blur-1.0__{method}__seed0"
        metrics = {"features": {"fmnist-classifier": {"fd": fd, "kid": fd / 100, "precision": 0.8 - k / 10,
                                                       "recall": 0.3 + k / 10}}, "n_samples": 500}
        grid = images[k] if images is not None else rng.integers(0, 256, (16, 1, 28, 28), dtype=np.uint8)
        save_grid(cell / "samples" / "grid.png", grid, scale=2)
        (cell / "samples" / "metrics.json").write_text(json.dumps(metrics))
        high = 90 if method == "ambient-o" else 0
        (cell / "run").mkdir(parents=True)
        (cell / "run" / "config.json").write_text(json.dumps({"task": {"kind": "denoiser",
                                                                      "annotation_counts": {"high_noise": high}}}))
        level = {"clean-only": 0.2, "all-data": 0.3, "ambient-o": 2.5}[method]
        _write_log(cell / "run" / "log.jsonl", level)
        result = {"name": cell.name, "setting": "blur-1.0", "method": method, "seed": 0, "metrics": metrics,
                  "paths": {"annotations": str(files[method]) if method in files else None}}
        (cell / "result.json").write_text(json.dumps(result))
        cells.append(result)
    (root / "results.json").write_text(json.dumps({"recipe": "demo", "description": "toy demo", "cells": cells}))
    classifier = root / "classifiers" / "blur-cccc"
    classifier.mkdir(parents=True)
    (classifier / "config.json").write_text(json.dumps({"task": {"kind": "classifier"}}))
    _write_log(classifier / "log.jsonl", 0.6)
    return root


def _write_log(path: Path, level: float) -> None:
    lines = [json.dumps({"step": s, "images_seen": 64 * s, "loss_mean": level * (1 + 1 / s)}) for s in range(1, 40)]
    path.write_text("\n".join(lines) + "\n")


def test_demo_report_leads_with_the_verdict(tmp_path: Path) -> None:
    blocks = collect(make_demo_folder(tmp_path))
    assert blocks[0].kind == "h2" and blocks[0].text == "Verdict"
    assert "FD [fmnist-classifier]" in blocks[1].text
    assert blocks[2].text.startswith("clean-only won: FD 133 against ambient-o 190, all-data 348 (57 lower than ambient-o")
    assert "one training seed" in blocks[2].text


def test_demo_report_samples_side_by_side_by_method(tmp_path: Path) -> None:
    html_path, md_path = write_report(make_demo_folder(tmp_path))
    rows = [b for b in collect(tmp_path) if b.kind == "row"]
    assert [item.text for item in rows[0].items] == ["clean-only", "all-data", "ambient-o"]  # results.json order
    page = html_path.read_text()
    assert "<div class='row'>" in page and "<figcaption>ambient-o</figcaption>" in page
    assert "| clean-only | all-data | ambient-o |" in md_path.read_text()
    assert all((tmp_path / "report_files" / item.filename).is_file() for item in rows[0].items)


def test_demo_report_classifier_loss_on_its_own_axes_with_ambient_caption(tmp_path: Path) -> None:
    blocks = collect(make_demo_folder(tmp_path))
    headings = [b.text for b in blocks if b.kind == "h2"]
    assert "Training loss: denoisers" in headings and "Training loss: noise classifiers" in headings
    caption = next(b.text for b in blocks if b.kind == "p" and "by construction" in b.text)
    assert "(ambient-o)" in caption and "Why the ambient loss runs high" in caption
    figures = [b.filename for b in blocks if b.kind == "figure"]
    assert "loss_curves.png" in figures and "loss_curves_classifiers.png" in figures


def test_demo_report_has_no_empty_annotation_section(tmp_path: Path) -> None:
    blocks = collect(make_demo_folder(tmp_path))
    headings = [b.text for b in blocks if b.kind == "h2" and b.text.startswith("Annotations")]
    assert headings == ["Annotations: ambient-o: annotations/blur-classifier-bbbb.jsonl"]
    note = next(b.text for b in blocks if b.kind == "p" and "nothing to plot" in b.text)
    assert "clean-only: annotations/blur-clean-only-aaaa.jsonl" in note


def test_run_folder_grids_are_captioned_by_run(tmp_path: Path) -> None:
    _make_folder(tmp_path)
    (tmp_path / "run" / "samples" / "final").mkdir()
    (tmp_path / "run" / "samples" / "final" / "grid.png").write_bytes((tmp_path / "sample_out" / "grid.png").read_bytes())
    captions = [item.text for b in collect(tmp_path) if b.kind == "row" for item in b.items]
    assert captions == ["run: final", "sample_out", "run: latest training preview"]


def test_a_run_folder_report_shows_the_annotations_it_trained_on(tmp_path: Path) -> None:
    from _training_helpers import write_tiny_dataset

    data, ann, run = write_tiny_dataset(tmp_path / "ds", corrupted=16), tmp_path / "ann.jsonl", tmp_path / "run"
    assert main(["annotate", "fixed", "--data", str(data), "--sigma-min", "1.5", "--out", str(ann)]) == 0
    assert main(["train", "--data", str(data), "--annotations", str(ann), "--out", str(run), "--steps", "2",
                 "--channels", "8", "--blocks", "1", "--batch", "8", "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["inputs"]["annotations"] == str(ann.resolve())
    page = write_report(run)[0].read_text()  # the annotation file lies outside the run folder
    assert "Annotations: ann.jsonl" in page


def test_a_log_with_fields_of_the_wrong_type_is_an_error_naming_the_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"step": 0, "event": "start"}\n{"step": 1, "images_seen": 64, "loss_mean": "abc"}\n')
    with pytest.raises(AmbientError, match=r"log.jsonl:2: images_seen and loss_mean must be numbers"):
        collect(tmp_path)
    (run / "log.jsonl").write_text('{"step": 1, "images_seen": 64, "loss_mean": 0.5}\n{"step": 2, "images_see\n')
    with pytest.raises(AmbientError, match=r"log.jsonl:2: not a JSON record"):
        collect(tmp_path)
