"""Annotation part files: chunks shared out over ranks, resume after an interruption, settings that refuse
to mix parts."""

from pathlib import Path

import numpy as np
import pytest

from ambient_omni.annotate import parts
from ambient_omni.errors import AmbientError
from ambient_omni.files import read_json, write_json

IDS = np.array([1, 2, 4, 5, 6, 7])  # the images to annotate among 8: three chunks of 2
N = 8
SETTINGS = {"classifier": "stand-in", "tau": 0.45}


def annotate(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in annotation: sigma_min and calls that depend on the id only."""
    return 0.1 * ids + 0.05, 3 * ids + 1


def _run(out: Path, work=annotate, rank: int = 0, world: int = 1, settings: dict | None = None) -> int:
    return parts.run_parts(work, IDS, out, settings or SETTINGS, chunk=2, rank=rank, world_size=world, progress=False)


def _files(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(parts.parts_dir(out).iterdir())}


def test_parts_read_back_every_annotated_id_and_zero_elsewhere(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    assert _run(out) == 3
    assert parts.parts_dir(out) == tmp_path / "a.jsonl.parts"
    assert list(_files(out)) == ["chunk-000000.json", "chunk-000001.json", "chunk-000002.json", "settings.json"]
    assert read_json(parts.parts_dir(out) / "settings.json") == SETTINGS
    sigma_min, calls = parts.read_parts(out, IDS, N, chunk=2)
    want_sigma, want_calls = annotate(IDS)
    np.testing.assert_array_equal(sigma_min[IDS], want_sigma)
    np.testing.assert_array_equal(calls[IDS], want_calls)
    assert sigma_min[[0, 3]].tolist() == [0, 0] and calls[[0, 3]].tolist() == [0, 0]


def test_resume_after_interruption_gives_identical_parts(tmp_path: Path) -> None:
    ref = tmp_path / "ref.jsonl"
    _run(ref)
    seen: list[list[int]] = []

    def flaky(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if seen:  # interrupted in the second chunk
            raise KeyboardInterrupt
        seen.append(ids.tolist())
        return annotate(ids)

    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        _run(out, flaky)
    assert len(list(parts.parts_dir(out).glob("chunk-*.json"))) == 1
    with pytest.raises(AmbientError, match=r"chunks \[1, 2\] are not finished"):
        parts.read_parts(out, IDS, N, chunk=2)
    computed: list[list[int]] = []

    def counting(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        computed.append(ids.tolist())
        return annotate(ids)

    assert _run(out, counting) == 2  # only the unfinished chunks are computed
    assert computed == [[4, 5], [6, 7]]
    assert _run(out) == 0
    assert _files(out) == _files(ref)


def test_two_ranks_share_the_chunks_and_give_the_same_parts_as_one(tmp_path: Path) -> None:
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    _run(one)
    assert _run(two, rank=0, world=2) == 2 and _run(two, rank=1, world=2) == 1
    assert _files(one) == _files(two)


def test_changed_settings_refuse_to_mix_parts(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    _run(out, settings={"classifier": "stand-in", "tau": 0.45})
    _run(out, settings={"classifier": "stand-in", "tau": 0.45})  # the same settings: fine
    with pytest.raises(AmbientError, match=r"different settings \(tau\)"):
        _run(out, settings={"classifier": "stand-in", "tau": 0.4})


def test_parts_from_before_the_weights_record_are_not_taken_for_these_weights(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    settings = {"classifier": "stand-in", "classifier_sha256": "ab" * 32}
    _run(out, settings=settings)
    stored = parts.parts_dir(out) / "settings.json"
    write_json(stored, {k: v for k, v in read_json(stored).items() if k != "classifier_sha256"})  # an older run's
    with pytest.raises(AmbientError, match="older version that did not record the classifier's weights"):
        _run(out, settings=settings)
