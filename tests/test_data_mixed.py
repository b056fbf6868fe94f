"""Mixed-quality dataset folders: build, combine, write (byte-deterministic), load and validate."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_omni.data.imageset import ImageSet, to_uint8
from ambient_omni.data.mixed import (
    FILES, MixedData, Part, build_mixed, combine_datasets, load_dataset, round_half_up, write_dataset,
)
from ambient_omni.errors import AmbientError


class Darken:
    """Stand-in corruption: x -> x / 2 - 0.01 * (id mod 7) + 0.001 * seed (deterministic per id)."""

    spec = "darken:test=1"

    def __init__(self) -> None:
        self.seen_ids: list[int] = []

    def __call__(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        self.seen_ids += ids.tolist()
        return images / 2 - 0.01 * (ids % 7).float().view(-1, 1, 1, 1) + 0.001 * seed


def image_set(n: int = 20, shape: tuple[int, int, int] = (1, 4, 5), classes: int = 3) -> ImageSet:
    codes = np.random.default_rng(n).integers(0, 256, (n, *shape), dtype=np.uint8)
    return ImageSet.from_uint8(codes, labels=np.arange(n) % classes, class_names=["a", "b", "c"][:classes])


def test_build_mixed_counts_and_pixels() -> None:
    source, corruption = image_set(20), Darken()
    data = build_mixed(source, corruption, 0.25, seed=5, source_name="toy")
    clean = np.array([p == "clean" for p in data.provenance])
    assert clean.sum() == 5 and data.counts() == {"clean": 5, "corrupted:darken:test=1": 15}
    codes = source.to_uint8().numpy()
    assert np.array_equal(data.images[clean], codes[clean])
    positions = np.flatnonzero(~clean)
    assert corruption.seen_ids == positions.tolist()  # ids = dataset positions
    expected = to_uint8(Darken()(source.images[positions], torch.from_numpy(positions), 5)).numpy()
    assert np.array_equal(data.images[~clean], expected)
    assert data.labels.tolist() == source.labels.tolist() and data.source_index.tolist() == list(range(20))


def test_clean_count_rounding_and_subset() -> None:
    assert [round_half_up(x) for x in (0.5, 1.5, 2.5, 2.49)] == [1, 2, 3, 2]
    source = image_set(10)
    assert build_mixed(source, Darken(), 0.25, 0, "toy").counts()["clean"] == 3  # 2.5 -> 3
    assert build_mixed(source, Darken(), None, 0, "toy", clean_count=7).counts()["clean"] == 7
    assert build_mixed(source, None, 1.0, 0, "toy").counts() == {"clean": 10}
    sub = build_mixed(source, Darken(), 0.5, 0, "toy", n=4)
    assert len(sub) == 4 and sorted(sub.source_index.tolist()) == sub.source_index.tolist()
    with pytest.raises(AmbientError, match="corruption is needed"):
        build_mixed(source, None, 0.5, 0, "toy")
    with pytest.raises(AmbientError, match="fraction"):
        build_mixed(source, Darken(), 1.5, 0, "toy")
    with pytest.raises(AmbientError, match="count 11"):
        build_mixed(source, Darken(), None, 0, "toy", clean_count=11)
    with pytest.raises(AmbientError, match="--n 11"):
        build_mixed(source, Darken(), 0.5, 0, "toy", n=11)


def test_seed_changes_the_clean_choice() -> None:
    a = build_mixed(image_set(40), Darken(), 0.5, 0, "toy").provenance
    b = build_mixed(image_set(40), Darken(), 0.5, 1, "toy").provenance
    assert a != b


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


def test_combine_target_plus_ood_and_dataset(tmp_path: Path) -> None:
    target, other = image_set(30), image_set(12, classes=2)
    parts = [Part(target, "clean", "toy@class=a", count=4), Part(other, "ood:other", "other")]
    combined = combine_datasets(parts, seed=0)
    assert combined.counts() == {"clean": 4, "ood:other": 12}
    assert combined.sources[:4] == ["toy@class=a"] * 4 and combined.source_index[4:].tolist() == list(range(12))
    chosen = combined.source_index[:4]
    assert np.array_equal(combined.images[:4], target.to_uint8().numpy()[chosen])
    again = combine_datasets(parts, seed=0)
    assert np.array_equal(again.images, combined.images)

    write_dataset(tmp_path / "blur", build_mixed(image_set(8), Darken(), 0.5, 0, "toy"))
    stacked = combine_datasets([Part(load_dataset(tmp_path / "blur").to_mixed()),
                                Part(other, "ood:other", "other", fraction=0.5)], seed=1)
    assert stacked.counts() == {"clean": 4, "corrupted:darken:test=1": 4, "ood:other": 6}
    write_dataset(tmp_path / "stacked", stacked)
    assert load_dataset(tmp_path / "stacked").provenance[:8] == load_dataset(tmp_path / "blur").provenance


def test_combine_errors() -> None:
    with pytest.raises(AmbientError, match="shape"):
        combine_datasets([Part(image_set(), "clean", "a"), Part(image_set(shape=(3, 4, 5)), "clean", "b")], 0)
    with pytest.raises(AmbientError, match="provenance"):
        combine_datasets([Part(image_set(), None, "a")], 0)
    with pytest.raises(AmbientError, match="invalid provenance"):
        combine_datasets([Part(image_set(), "dirty", "a")], 0)
    with pytest.raises(AmbientError, match=r"invalid provenance 'synthetic:'.*synthetic:<model>"):
        combine_datasets([Part(image_set(), "synthetic:", "a")], 0)
    assert combine_datasets([Part(image_set(), "synthetic:edm", "a")], 0).counts() == {"synthetic:edm": len(image_set())}
    with pytest.raises(AmbientError, match="at least one"):
        combine_datasets([], 0)
    data = MixedData(np.zeros((1, 1, 2, 2), np.uint8), np.zeros(1, np.int64), ["s"], np.zeros(1, np.int64),
                     ["clean"], 0)
    with pytest.raises(AmbientError, match="own provenance"):
        combine_datasets([Part(data, "clean")], 0)


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

    from ambient_omni.data.mixed import MixedData, write_dataset
    from ambient_omni.errors import AmbientError

    empty = MixedData(np.zeros((0, 1, 4, 4), dtype=np.uint8), np.zeros(0, dtype=np.int64), [], np.zeros(0, np.int64),
                      [], 0)
    with pytest.raises(AmbientError, match="no images to write"):
        write_dataset(tmp_path / "d", empty)
    assert not (tmp_path / "d").exists()
