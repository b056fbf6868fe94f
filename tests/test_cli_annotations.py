"""``ambient annotations validate / summary / merge / floor`` on a tiny real dataset folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_omni.cli.main import main
from ambient_omni.data.annotations import AnnotationTable, read_annotations, write_annotations
from ambient_omni.data.corruptions import parse_corruption
from ambient_omni.data.imageset import ImageSet
from ambient_omni.data.dataset_folder import load_dataset, write_dataset
from ambient_omni.data.mixed import build_mixed


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """A 6-image dataset folder: 2 clean, 4 blurred."""
    gen = torch.Generator().manual_seed(0)
    images = ImageSet(torch.rand(6, 1, 8, 8, generator=gen) * 2 - 1, torch.zeros(6, dtype=torch.int64),
                      [f"img{i}" for i in range(6)])
    data = build_mixed(images, parse_corruption("blur:sigma=1"), None, seed=0, source_name="synthetic", clean_count=2)
    write_dataset(tmp_path / "data", data)
    return tmp_path / "data"


def _fixed(folder: Path, path: Path, sigma_min: float = 1.5) -> Path:
    ds = load_dataset(folder)
    write_annotations(path, AnnotationTable.fixed(ds.ids.numpy(), ds.provenance, sigma_min, dataset_sha256=ds.sha256))
    return path


def test_validate_ok_and_errors(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = _fixed(dataset, tmp_path / "a.jsonl")
    assert main(["annotations", "validate", str(good), "--data", str(dataset)]) == 0
    assert "OK, 6 records against" in capsys.readouterr().out
    lines = good.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines[:-1]).replace('"n": 6', '"n": 5') + "\n")  # last image missing
    assert main(["annotations", "validate", str(bad), "--data", str(dataset)]) == 2
    assert "no annotation for dataset ids 5" in capsys.readouterr().err
    other = tmp_path / "other.jsonl"
    other.write_text(good.read_text().replace(load_dataset(dataset).sha256, "f" * 64))
    assert main(["annotations", "validate", str(other), "--data", str(dataset)]) == 2
    assert "made for a different dataset" in capsys.readouterr().err
    assert main(["annotations", "validate", str(other)]) == 0  # without --data only the file is checked


def test_summary_text_and_json(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _fixed(dataset, tmp_path / "a.jsonl")
    assert main(["annotations", "summary", str(path), "--data", str(dataset), "--sigmas", "0.5,1.8"]) == 0
    out = capsys.readouterr().out
    assert "6 images: 2 clean, 4 corrupted" in out and "corrupted:blur:sigma=1: 4 images" in out
    assert "usable images per sigma: 0.5: 2, 1.8: 6" in out  # 1.8 > 1.5 * 1.1547 = 1.732
    assert main(["annotations", "summary", str(path), "--json", "--sigmas", "1.7"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["usable"] == {"1.7": 2} and summary["sigma_min"]["mean"] == 1.5
    assert main(["annotations", "summary", str(path), "--sigmas", "0,1"]) == 2
    assert "--sigmas" in capsys.readouterr().err


def test_merge(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _fixed(dataset, tmp_path / "a.jsonl", sigma_min=1.5)
    table = read_annotations(a)
    table.sigma_max[0] = 0.1
    b = tmp_path / "b.jsonl"
    write_annotations(b, AnnotationTable(table.ids, np.where(table.sigma_min > 0, 3.0, 0.0), table.sigma_max,
                                         ["crop"] * 6, [None] * 6, [None] * 6, dataset_sha256=table.dataset_sha256))
    out = tmp_path / "c.jsonl"
    assert main(["annotations", "merge", str(a), str(b), "--out", str(out)]) == 2
    assert "disagree on sigma_min" in capsys.readouterr().err and not out.exists()
    args = ["annotations", "merge", str(a), str(b), "--out", str(out), "--sigma-min", "min", "--sigma-max", "b",
            "--data", str(dataset)]
    assert main(args) == 0
    merged = read_annotations(out)
    np.testing.assert_array_equal(merged.sigma_min, np.minimum(read_annotations(a).sigma_min, read_annotations(b).sigma_min))
    assert merged.sigma_max[0] == 0.1 and merged.method[0] == "fixed+crop"
    header = json.loads(out.read_text().splitlines()[0])
    assert header["created_by"]["files"] == [str(a), str(b)] and header["created_by"]["sigma_min"] == "min"


def test_floor(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _fixed(dataset, tmp_path / "a.jsonl", sigma_min=0.5)
    out = tmp_path / "floored.jsonl"
    assert main(["annotations", "floor", str(a), "--sigma-min", "1.5", "--out", str(out), "--data", str(dataset)]) == 0
    assert "4 sigma_min raised to 1.5" in capsys.readouterr().out
    floored = read_annotations(out)
    clean = np.array([p == "clean" for p in load_dataset(dataset).provenance])
    np.testing.assert_array_equal(floored.sigma_min, np.where(clean, 0.0, 1.5))
    assert json.loads(out.read_text().splitlines()[0])["created_by"]["sigma_min_floor"] == 1.5
    assert main(["annotations", "floor", str(a), "--sigma-min", "0", "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "floor" in capsys.readouterr().err and not (tmp_path / "x.jsonl").exists()
