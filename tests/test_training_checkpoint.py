"""Checkpoints and model folders: round trips, atomic commit marker, latest detection, pruning, no pickles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ambient_omni.errors import AmbientError
from ambient_omni.training import checkpoint as ckpt


def _adam_after_one_step() -> tuple[nn.Module, torch.optim.Adam]:
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1, betas=(0.8, 0.9))
    model(torch.ones(4, 3)).square().sum().backward()
    opt.step()
    return model, opt


def test_optimizer_state_round_trip_continues_identically() -> None:
    model, opt = _adam_after_one_step()
    tensors, meta = ckpt.flatten_optimizer_state(opt.state_dict())
    assert all(isinstance(v, torch.Tensor) for v in tensors.values()) and "state.0.exp_avg" in tensors
    twin = nn.Linear(3, 2)
    twin.load_state_dict(model.state_dict())
    opt2 = torch.optim.Adam(twin.parameters(), lr=0.5)
    opt2.load_state_dict(ckpt.unflatten_optimizer_state({k: v.clone() for k, v in tensors.items()}, meta))
    assert opt2.param_groups[0]["betas"] == (0.8, 0.9) and opt2.param_groups[0]["lr"] == 0.1
    for m, o in ((model, opt), (twin, opt2)):
        o.zero_grad()
        m(torch.ones(4, 3)).square().sum().backward()
        o.step()
    torch.testing.assert_close(model.weight, twin.weight, atol=0.0, rtol=0.0)


def test_save_load_checkpoint_and_latest(tmp_path: Path) -> None:
    assert ckpt.find_latest_checkpoint(tmp_path) is None
    for step in (5, 10):
        ckpt.save_checkpoint(tmp_path, step, {"a": torch.full((2,), float(step))}, {"note": step})
    ref = ckpt.find_latest_checkpoint(tmp_path)
    tensors, meta = ckpt.load_checkpoint(ref)
    assert ref.step == 10 and meta["note"] == 10 and torch.equal(tensors["a"], torch.full((2,), 10.0))


def test_incomplete_checkpoints_are_ignored(tmp_path: Path) -> None:
    ckpt.save_checkpoint(tmp_path, 1, {"a": torch.zeros(3)}, {})
    tensor2, json2 = ckpt.checkpoint_paths(tmp_path, 2)
    tensor2.write_bytes(b"partial")  # killed before the JSON commit marker
    ref3 = ckpt.save_checkpoint(tmp_path, 3, {"a": torch.zeros(3)}, {})
    ref3.tensor_path.write_bytes(ref3.tensor_path.read_bytes()[:-4])  # torn tensor file
    ckpt.checkpoint_paths(tmp_path, 4)[1].write_text("{not json")  # torn JSON
    assert [r.step for r in ckpt.list_checkpoints(tmp_path)] == [1]


def test_corrupted_tensor_file_is_detected_on_load(tmp_path: Path) -> None:
    ref = ckpt.save_checkpoint(tmp_path, 1, {"a": torch.zeros(3)}, {})
    data = bytearray(ref.tensor_path.read_bytes())
    data[-1] ^= 0xFF
    ref.tensor_path.write_bytes(bytes(data))
    with pytest.raises(AmbientError, match="SHA-256"):
        ckpt.load_checkpoint(ref)


def test_prune_keeps_newest(tmp_path: Path) -> None:
    for step in range(1, 6):
        ckpt.save_checkpoint(tmp_path, step, {"a": torch.zeros(1)}, {})
    ckpt.prune_checkpoints(tmp_path, keep=2)
    assert [r.step for r in ckpt.list_checkpoints(tmp_path)] == [4, 5]
    assert len(list((tmp_path / "checkpoints").iterdir())) == 4


def test_model_folder_round_trip_with_real_network(tmp_path: Path) -> None:
    from ambient_omni.networks.registry import build_network, preset_config

    network = preset_config("fmnist-small", model_channels=8, num_blocks=1)
    model = build_network(network)
    ckpt.save_model(tmp_path, model, {"kind": "denoiser", "network": network})
    loaded = ckpt.load_model(tmp_path)
    x, sigma = torch.randn(2, 1, 8, 8), torch.tensor([0.5, 2.0])
    torch.testing.assert_close(loaded(x, sigma), model.eval()(x, sigma), atol=0.0, rtol=0.0)
    assert not any(p.name.endswith((".pt", ".pkl")) for p in tmp_path.iterdir())


def test_model_loads_in_a_fresh_process_outside_the_repository(tmp_path: Path) -> None:
    from ambient_omni.networks.registry import build_network, preset_config

    network = preset_config("fmnist-small", model_channels=8, num_blocks=1)
    ckpt.save_model(tmp_path / "m", build_network(network), {"kind": "denoiser", "network": network})
    code = ("import sys, torch; from ambient_omni.training.checkpoint import load_model; "
            "m = load_model(sys.argv[1]); print(tuple(m(torch.zeros(1, 1, 8, 8), 1.0).shape))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m")], cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(1, 1, 8, 8)"


def test_load_model_rejects_non_folders_and_mismatched_weights(tmp_path: Path) -> None:
    with pytest.raises(AmbientError, match="not a model folder"):
        ckpt.load_model(tmp_path)
    ckpt.register_model_kind("test-linear", lambda cfg: nn.Linear(cfg["network"]["n"], 1))
    ckpt.save_model(tmp_path, nn.Linear(3, 1), {"kind": "test-linear", "network": {"n": 3}})
    assert isinstance(ckpt.load_model(tmp_path), nn.Linear)
    ckpt.save_model(tmp_path, nn.Sequential(nn.Linear(3, 1)), {"kind": "test-linear", "network": {"n": 3}})
    with pytest.raises(AmbientError, match="does not match"):
        ckpt.load_model(tmp_path)


def test_load_model_verifies_the_recorded_sha256(tmp_path: Path) -> None:
    ckpt.register_model_kind("test-linear", lambda cfg: nn.Linear(cfg["network"]["n"], 1))
    ckpt.save_model(tmp_path, nn.Linear(3, 1), {"kind": "test-linear", "network": {"n": 3}})
    weights = tmp_path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x10  # one flipped bit in the last float: still a valid file of the same size
    weights.write_bytes(bytes(data))
    with pytest.raises(AmbientError, match=r"model\.safetensors: contents do not match the SHA-256 recorded in .*config\.json"):
        ckpt.load_model(tmp_path)
    config = ckpt.read_model_config(tmp_path)
    del config["sha256"]  # a folder that records no digest loads as it is
    (tmp_path / "config.json").write_text(__import__("json").dumps(config))
    assert isinstance(ckpt.load_model(tmp_path), nn.Linear)
