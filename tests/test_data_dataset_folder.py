"""Dataset folders (ambient_omni.data.dataset_folder): byte-deterministic writing, loading and validation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_omni.data.dataset_folder import FILES, load_dataset, write_dataset
from ambient_omni.data.imageset import to_uint8
from ambient_omni.data.mixed import build_mixed
from ambient_omni.errors import AmbientError
from _data_helpers import Darken, image_set


def test_write_is_byte_deterministic_and_load_round_trips(tmp_path: Path) -> None:
    folders = [tmp_path / "one", tmp_path / "nested" / "two"]
    for folder in folders:
        write_dataset(folder, build_mixed(image_set(), Darken(), 0.3, 2, "toy"), command="ambient corrupt ...")
    names = sorted(p.name for p in folders[0].iterdir())
    assert names == sorted([*FILES, "README.md"])
    for name in names:
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name
    info = json.loads((folders[0] / "dataset.json").read_text())
    assert info["format"] == "ambient-omni-dataset" and info["version"] == 1 and info["seed"] == 2
    assert info["counts"] == {"clean": 6, "corrupted:darken:test=1": 14} and info["specs"] == ["darken:test=1"]
    assert "ambient corrupt ..." in (folders[0] / "README.md").read_text()

    data = build_mixed(image_set(), Darken(), 0.3, 2, "toy")
    dataset = load_dataset(folders[0])
    assert len(dataset) == 20 and dataset.provenance == data.provenance
    assert torch.equal(to_uint8(dataset.images), torch.from_numpy(data.images))
    item = dataset[3]
    assert item["image"].shape == (1, 4, 5) and item["label"] == 0 and item["id"] == 3
    assert dataset.ids.tolist() == list(range(20)) and len(dataset.sha256) == 64
    lines = (folders[0] / "manifest.jsonl").read_text().splitlines()
    assert json.loads(lines[3]) == {"id": 3, "source": "toy", "source_index": 3, "label": 0,
                                    "provenance": data.provenance[3]}


def test_write_refuses_non_empty_folder(tmp_path: Path) -> None:
    data = build_mixed(image_set(), Darken(), 0.3, 0, "toy")
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(AmbientError, match="not empty"):
        write_dataset(tmp_path, data)
    write_dataset(tmp_path, data, overwrite=True)
    assert len(load_dataset(tmp_path)) == 20


@pytest.mark.parametrize("name", ["images.npy", "labels.npy", "manifest.jsonl"])
def test_load_detects_edited_files(tmp_path: Path, name: str) -> None:
    write_dataset(tmp_path, build_mixed(image_set(), Darken(), 0.3, 0, "toy"))
    blob = bytearray((tmp_path / name).read_bytes())
    blob[-2] ^= 1
    (tmp_path / name).write_bytes(bytes(blob))
    with pytest.raises(AmbientError, match=f"{name}: sha256 does not match"):
        load_dataset(tmp_path)


def test_load_errors(tmp_path: Path) -> None:
    write_dataset(tmp_path / "d", build_mixed(image_set(), Darken(), 0.3, 0, "toy"))
    info = json.loads((tmp_path / "d" / "dataset.json").read_text())
    info["counts"]["clean"] += 1
    (tmp_path / "d" / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(AmbientError, match="counts"):
        load_dataset(tmp_path / "d")
    info["format"] = "other"
    (tmp_path / "d" / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(AmbientError, match="format"):
        load_dataset(tmp_path / "d")
    (tmp_path / "d" / "labels.npy").unlink()
    with pytest.raises(AmbientError, match="missing labels.npy"):
        load_dataset(tmp_path / "d")


@pytest.mark.parametrize("edit, message", [
    (lambda lines: lines[:2] + ["{not json"] + lines[3:], r"manifest.jsonl:3: not valid JSON"),
    (lambda lines: lines[:-1], "19 lines for 20 images"),
    (lambda lines: [lines[1], lines[0], *lines[2:]], r"manifest.jsonl:1: expected id 0"),
])
def test_load_rejects_bad_manifest_even_with_matching_sha(tmp_path: Path, edit, message) -> None:
    import hashlib
    write_dataset(tmp_path, build_mixed(image_set(), Darken(), 0.3, 0, "toy"))
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    blob = ("\n".join(edit(lines)) + "\n").encode()
    (tmp_path / "manifest.jsonl").write_bytes(blob)
    info = json.loads((tmp_path / "dataset.json").read_text())
    info["sha256"]["manifest.jsonl"] = hashlib.sha256(blob).hexdigest()
    (tmp_path / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(AmbientError, match=message):
        load_dataset(tmp_path)


@pytest.mark.parametrize("key, value, message", [
    ("seed", "x", "'seed' must be an integer"), ("seed", [1], "'seed' must be an integer"),
    ("class_names", 5, "'class_names' must be a list of strings"), ("n", "x", "'n' must be an integer"),
    ("n", 21, "'n' is 21 but images.npy holds 20 images"), ("shape", [1, 4], "'shape' must be a list of 3"),
    ("shape", [1, 5, 4], "'shape' is [1, 5, 4] but images.npy has [1, 4, 5]"),
    ("sources", "toy", "'sources' must be a list of strings"),
])
def test_load_refuses_dataset_json_fields_of_the_wrong_type(tmp_path: Path, key: str, value: object,
                                                            message: str) -> None:
    write_dataset(tmp_path, build_mixed(image_set(), Darken(), 0.3, 0, "toy"))
    info = json.loads((tmp_path / "dataset.json").read_text())
    info[key] = value
    (tmp_path / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(AmbientError, match=r"dataset\.json: " + message.replace("[", r"\[").replace("]", r"\]")):
        load_dataset(tmp_path)


def test_load_refuses_a_sha256_that_is_not_a_string(tmp_path: Path) -> None:
    write_dataset(tmp_path, build_mixed(image_set(), Darken(), 0.3, 0, "toy"))
    info = json.loads((tmp_path / "dataset.json").read_text())
    info["sha256"]["labels.npy"] = 5
    (tmp_path / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(AmbientError, match="sha256 of labels.npy must be a hex string"):
        load_dataset(tmp_path)


def test_an_empty_dataset_is_not_written(tmp_path) -> None:
    import numpy as np
    import pytest

    from ambient_omni.data.dataset_folder import write_dataset
    from ambient_omni.data.mixed import MixedData
    from ambient_omni.errors import AmbientError

    empty = MixedData(np.zeros((0, 1, 4, 4), dtype=np.uint8), np.zeros(0, dtype=np.int64), [], np.zeros(0, np.int64),
                      [], 0)
    with pytest.raises(AmbientError, match="no images to write"):
        write_dataset(tmp_path / "d", empty)
    assert not (tmp_path / "d").exists()
