"""FID Inception path: state-dict names/shapes, loading from a file, clear error without weights."""

import pytest
import torch
from safetensors.torch import save_file

from ambient_omni.errors import AmbientError
from ambient_omni.metrics.inception import (WEIGHTS_ENV, FIDInceptionV3, InceptionExtractor, load_state,
                                            resolve_weights)
from ambient_omni.metrics.inception_weights import default_weights_path


def test_state_dict_layout_matches_fid_weights():
    state = FIDInceptionV3().state_dict()
    assert not any(key.startswith("fc.") for key in state)  # FID uses the pool features only
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert state["Mixed_6e.branch7x7dbl_5.conv.weight"].shape == (192, 192, 1, 7)
    assert "Mixed_5b.branch_pool.bn.running_var" in state
    # torchvision-layout Inception-v3 without aux logits: 23,850,960 parameters with the FID graph's
    # 1008-class head (2048 x 1008 + 1008), 21,785,568 without it
    assert sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var",
                                                                       "num_batches_tracked"))) == 21785568


def test_missing_weights_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("AMBIENT_CACHE", str(tmp_path))
    with pytest.raises(AmbientError, match="setup.sh` installs them"):
        InceptionExtractor()
    with pytest.raises(AmbientError, match="not found"):
        InceptionExtractor(tmp_path / "absent.pth")


@pytest.mark.slow
def test_loads_weights_file_and_extracts(tmp_path, monkeypatch):
    model = FIDInceptionV3()
    path = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    monkeypatch.setenv(WEIGHTS_ENV, str(path))
    ext = InceptionExtractor(resolution=75, device="cpu")
    feats = ext(torch.rand(2, 1, 28, 28) * 2 - 1, progress=False)
    assert feats.shape == (2, 2048) and (feats >= 0).all()
    assert len(ext.settings()["weights_sha256"]) == 64
    bad = tmp_path / "bad.safetensors"
    save_file({"x": torch.zeros(1)}, str(bad))
    with pytest.raises(AmbientError, match="not the FID Inception"):
        InceptionExtractor(bad)


def test_pytorch_fid_state_dict_loads_without_its_classifier_head(tmp_path):
    state = FIDInceptionV3().state_dict()
    path = tmp_path / "pt_inception.pth"
    torch.save({**state, "fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}, path)
    loaded = load_state(path)
    assert set(loaded) == set(state)
    FIDInceptionV3().load_state_dict(loaded, strict=True)


def test_default_is_the_installed_conversion(monkeypatch, tmp_path):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    default = default_weights_path(tmp_path)
    default.parent.mkdir(parents=True)
    default.write_bytes(b"")
    assert resolve_weights(None, tmp_path) == default
