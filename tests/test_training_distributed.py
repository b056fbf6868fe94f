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


def test_checked_device_names_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    from ambient_omni.errors import AmbientError
    from ambient_omni.training.distributed import checked_device

    assert checked_device("cpu") == torch.device("cpu")
    with pytest.raises(AmbientError, match="--device 'banana': not a torch device"):
        checked_device("banana")
    monkeypatch.setenv("AMBIENT_DEVICE", "banana")
    with pytest.raises(AmbientError, match=r"\$AMBIENT_DEVICE 'banana'"):
        init_distributed(None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(AmbientError, match="cuda:1: CUDA is not available"):
        checked_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(AmbientError, match="cuda:1: this machine has 1 CUDA device"):
        checked_device("cuda:1")
