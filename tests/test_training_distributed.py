"""Process-group helpers in a single process (the 2-process case is tested in test_training_loop)."""

import pytest
import torch

from ambient_omni.training.distributed import all_gather_objects, all_reduce_sum, broadcast_object, init_distributed


def test_single_process_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.is_main, info.distributed) == (0, 1, True, False)
    assert info.device == torch.device("cpu")


def test_collectives_are_identities_without_a_group() -> None:
    t = torch.tensor([1.0, 2.0])
    assert torch.equal(all_reduce_sum(t), torch.tensor([1.0, 2.0]))
    assert all_gather_objects({"a": 1}) == [{"a": 1}]
    assert broadcast_object(5) == 5
