"""Annotation files: round trip, every validation error, merge rules, floor and summary (admissible counts:
test_data_admissibility)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ambient_omni.data.admissibility import admissible_counts
from ambient_omni.data.annotations import (
    AnnotationTable,
    few_ids,
    read_annotations,
    write_annotations,
)
from ambient_omni.errors import AmbientError

SHA = "0123456789abcdef" * 4
PROVENANCE = ["clean", "corrupted:blur:sigma=1", "ood:sandal", "clean", "corrupted:jpeg:quality=10"]


def _fixed() -> AnnotationTable:
    return AnnotationTable.fixed(np.arange(5), PROVENANCE, sigma_min=1.5, sigma_max=0.2, dataset_sha256=SHA)


def _header(n: int = 2, **changes: object) -> dict:
    header = {"format": "ambient-omni-annotations", "version": 1, "dataset": {"n": n, "sha256": SHA}, "created_by": {}}
    header.update(changes)
    return header


def _record(i: int, **changes: object) -> dict:
    record = {"id": i, "sigma_min": 0.5, "sigma_max": 0.0, "method": "classifier", "classifier": "m", "threshold": 0.45}
    record.update(changes)
    return record


def _write(path: Path, lines: list) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_fixed_baseline_values() -> None:
    table = _fixed()
    np.testing.assert_array_equal(table.sigma_min, [0, 1.5, math.inf, 0, 1.5])
    np.testing.assert_array_equal(table.sigma_max, [0, 0, 0.2, 0, 0])
    assert table.method == ["fixed"] * 5 and table.extra[2] == {"provenance": "ood:sandal"}
    with pytest.raises(AmbientError, match="unknown provenance 'weird'"):
        AnnotationTable.fixed([0], ["weird"], 1.0)
    synthetic = AnnotationTable.fixed([0, 1, 2], ["clean", "synthetic:edm", "corrupted:blur:sigma=1.0"], 1.5)
    assert synthetic.sigma_min.tolist() == [0, 1.5, 1.5] and synthetic.sigma_max.tolist() == [0, 0, 0]
    with pytest.raises(AmbientError, match="0 < sigma_min"):
        AnnotationTable.fixed([0], ["clean"], 0.0)


def test_all_clean() -> None:
    table = AnnotationTable.all_clean([2, 0, 1])
    np.testing.assert_array_equal(table.sigma_min, 0)
    assert (admissible_counts(table, [1e-3, 1.0, 80.0]) == 3).all()


def test_round_trip_with_inf_and_reordering(tmp_path: Path) -> None:
    path = tmp_path / "annotations.jsonl"
    write_annotations(path, _fixed())
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "ambient-omni-annotations" and header["version"] == 1
    assert header["dataset"] == {"n": 5, "sha256": SHA} and header["created_by"]["rule"] == "fixed"
    assert json.loads(lines[3])["sigma_min"] == "inf"
    table = read_annotations(path, ids=[4, 2, 0, 1, 3], dataset_sha256=SHA)
    np.testing.assert_array_equal(table.ids, [4, 2, 0, 1, 3])
    np.testing.assert_array_equal(table.sigma_min, [1.5, math.inf, 0, 1.5, 0])
    np.testing.assert_array_equal(table.sigma_max, [0, 0.2, 0, 0, 0])
    assert table.extra[0] == {"provenance": "corrupted:jpeg:quality=10"}
    default = read_annotations(path)  # ids default to 0..n-1 from the header
    np.testing.assert_array_equal(default.ids, np.arange(5))
    assert default.records() == _fixed().records()


def test_round_trip_keeps_classifier_and_threshold(tmp_path: Path) -> None:
    table = AnnotationTable([1, 0], [0.25, 0.0], [0.0, 0.1], ["dense", "dense"], ["clf", None], [0.45, None])
    write_annotations(tmp_path / "a.jsonl", table)
    back = read_annotations(tmp_path / "a.jsonl")
    assert back.classifier == [None, "clf"] and back.threshold == [None, 0.45]
    assert back.dataset_sha256 is None and back.dataset_n == 2


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        ([], "empty annotation file"),
        (['{"format": "something-else", "version": 1}'], "line 1 is not an annotation header"),
        ([_header(version=2)], "unsupported annotation format version 2"),
        ([_header(dataset={"sha256": None})], "header needs"),
        ([_header(), _record(0), "{not json"], ":3: malformed line"),
        ([_header(), _record(0), '{"id": 1, "sigma_min": NaN, "sigma_max": 0, "method": "m", "classifier": null, "threshold": null}'],
         ":3: malformed line (non-standard JSON constant NaN"),
        ([_header(), _record(0), _record(1, sigma_min=-0.1)], ":3: sigma_min is negative"),
        ([_header(), _record(0), _record(1, sigma_max=-1)], ":3: sigma_max is negative"),
        ([_header(), _record(0), _record(1, sigma_max="inf")], ":3: sigma_max must be a number"),
        ([_header(), _record(0), _record(1, sigma_min="big")], ':3: sigma_min must be a number or "inf"'),
        ([_header(), _record(0), {"id": 1, "sigma_min": 0.1}], ":3: missing field(s) sigma_max, method"),
        ([_header(), _record(0), _record("1")], ":3: id must be an integer"),
        ([_header(), _record(0), _record(1, method=3)], ":3: method must be a string"),
        ([_header(), _record(0), _record(1, threshold="x")], ":3: threshold must be a number or null"),
        ([_header(), _record(0), [1, 2]], ":3: a record must be a JSON object"),
        ([_header(n=3), _record(0), _record(0), _record(2)], "duplicated ids 0"),
        ([_header(n=3), _record(0), _record(1)], "header says dataset.n = 3 but the file has 2 records"),
        ([_header(n=2), _record(0), _record(5)], "no annotation for dataset ids 1"),
    ],
)
def test_read_errors_name_file_and_problem(tmp_path: Path, lines: list, needle: str) -> None:
    path = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(AmbientError) as exc:
        read_annotations(path)
    assert str(path) in str(exc.value) and needle in str(exc.value)


def test_read_errors_against_dataset_ids_and_sha(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", [_header(n=3), _record(0), _record(1), _record(2)])
    with pytest.raises(AmbientError, match=r"no annotation for dataset ids 3, 4"):
        read_annotations(path, ids=np.arange(5))
    with pytest.raises(AmbientError, match=r"annotations for ids not in the dataset: 2"):
        read_annotations(path, ids=[0, 1])
    with pytest.raises(AmbientError, match="made for a different dataset"):
        read_annotations(path, dataset_sha256="f" * 64)
    assert len(read_annotations(path, dataset_sha256=SHA)) == 3
    with pytest.raises(AmbientError, match="cannot read annotation file"):
        read_annotations(tmp_path / "missing.jsonl")


def test_few_ids_lists_five_then_the_total() -> None:
    assert few_ids([3, 1]) == "3, 1"
    assert few_ids(range(7)) == "0, 1, 2, 3, 4, ... (7 in all)"


def test_missing_ids_message_lists_a_few(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", [_header(n=1), _record(0)])
    with pytest.raises(AmbientError) as exc:
        read_annotations(path, ids=np.arange(100))
    assert "1, 2, 3, 4, 5, ... (99 in all)" in str(exc.value)


def test_table_rejects_bad_values() -> None:
    with pytest.raises(AmbientError, match="NaN or negative"):
        AnnotationTable([0], [math.nan], [0.0], ["m"], [None], [None])
    with pytest.raises(AmbientError, match="sigma_max must be a finite"):
        AnnotationTable([0], [0.0], [math.inf], ["m"], [None], [None])
    with pytest.raises(AmbientError, match="duplicated ids 3"):
        AnnotationTable([3, 3], [0.0, 0.0], [0.0, 0.0], ["m", "m"], [None, None], [None, None])
    with pytest.raises(AmbientError, match="different lengths"):
        AnnotationTable([0, 1], [0.0], [0.0, 0.0], ["m", "m"], [None, None], [None, None])


def test_a_null_dataset_sha_warns_when_read_against_a_known_dataset(tmp_path: Path) -> None:
    import warnings

    path = _write(tmp_path / "a.jsonl", [_header(n=2, dataset={"n": 2, "sha256": None}), _record(0), _record(1)])
    with pytest.warns(UserWarning, match=r"a\.jsonl: the header records no dataset sha256 \(null\)"):
        table = read_annotations(path, dataset_sha256=SHA)
    assert len(table) == 2 and table.dataset_sha256 is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_annotations(path)  # no dataset to compare with: nothing to warn about
        read_annotations(_write(tmp_path / "b.jsonl", [_header(n=1), _record(0)]), dataset_sha256=SHA)
