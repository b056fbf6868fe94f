"""Mixed-quality datasets in memory (ambient_omni.data.mixed): build and combine; combined parts written and loaded."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_omni.data.imageset import to_uint8
from ambient_omni.data.dataset_folder import load_dataset, write_dataset
from ambient_omni.data.mixed import MixedData, Part, build_mixed, combine_datasets, round_half_up
from ambient_omni.errors import AmbientError
from _data_helpers import Darken, image_set


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


class Brighten(Darken):
    """A second stand-in corruption: x -> (x + 1) / 2."""

    spec = "brighten:test=1"

    def __call__(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        self.seen_ids += ids.tolist()
        return (images + 1) / 2


def test_several_corruptions_take_the_corrupted_positions_in_turn() -> None:
    source, darken, brighten = image_set(20), Darken(), Brighten()
    data = build_mixed(source, [darken, brighten], 0.25, seed=5, source_name="toy")
    positions = np.flatnonzero([p != "clean" for p in data.provenance])
    assert darken.seen_ids == positions[0::2].tolist() and brighten.seen_ids == positions[1::2].tolist()
    assert data.counts() == {"clean": 5, "corrupted:brighten:test=1": 7, "corrupted:darken:test=1": 8}
    expected = to_uint8(Brighten()(source.images[positions[1::2]], torch.from_numpy(positions[1::2]), 5)).numpy()
    assert np.array_equal(data.images[positions[1::2]], expected)
    assert data.recipe[0]["corruption"] == ["darken:test=1", "brighten:test=1"]
    single = build_mixed(source, [Darken()], 0.25, seed=5, source_name="toy")
    assert np.array_equal(single.images, build_mixed(source, Darken(), 0.25, 5, "toy").images)
    assert single.recipe[0]["corruption"] == "darken:test=1"


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
