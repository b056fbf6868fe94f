"""Stage cache keys: the hash ignores key order but not values; a marker answers only for its own key."""

from pathlib import Path

from ambient_omni.experiments.stage_keys import config_hash, mark_stage, stage_done


def test_config_hash_is_order_free_and_value_sensitive() -> None:
    assert config_hash({"a": 1, "b": [2, 3]}) == config_hash({"b": [2, 3], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2}) and len(config_hash({})) == 12


def test_a_marker_answers_for_its_own_key_only(tmp_path: Path) -> None:
    assert not stage_done(tmp_path, "k1")
    mark_stage(tmp_path, "k1", note="x")
    assert stage_done(tmp_path, "k1") and not stage_done(tmp_path, "k2")
