"""``ambient train`` then ``ambient sample`` end to end on a tiny dataset folder (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _training_helpers import write_tiny_dataset
from ambient_omni.cli.main import main
from ambient_omni.training.logging import read_log

TINY = ["--channels", "8", "--blocks", "1", "--batch", "8", "--no-progress"]


def test_train_resume_and_sample(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, run = write_tiny_dataset(tmp_path / "ds"), tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(run), "--steps", "3", "--checkpoint-every", "2",
            "--log-every", "1", "--preview-every", "3", "--preview-n", "4", "--preview-steps", "2", "--cond", "--variance-weight", "--loss-target", "x0", *TINY]
    assert main(args) == 0
    assert (run / "model" / "model.safetensors").is_file() and (run / "samples" / "preview-00000003.png").is_file()
    assert "every image treated as clean" in capsys.readouterr().out
    settings = json.loads((run / "model" / "config.json").read_text())["settings"]
    assert settings["variance_weight"] is True and settings["loss_target"] == "x0"
    # same command with a longer length: continues from step 3
    assert main([*args[:5], "--steps", "4", *args[7:]]) == 0
    steps = [r["step"] for r in read_log(run / "log.jsonl") if "loss_mean" in r]
    assert steps == [1, 2, 3, 4]
    out = tmp_path / "samples"
    assert main(["sample", "--model", str(run), "--seeds", "0-3", "--out", str(out), "--steps", "2",
                 "--batch", "4", "--class", "1"]) == 0
    with np.load(out / "samples.npz") as npz:
        assert npz["images"].shape == (4, 1, 8, 8) and npz["images"].dtype == np.uint8
        assert npz["seeds"].tolist() == list(range(4)) and npz["labels"].tolist() == [1] * 4
    settings = json.loads((out / "sampling.json").read_text())
    assert settings["steps"] == 2 and settings["class"] == 1 and (out / "grid.png").stat().st_size > 0


def test_user_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "missing" in capsys.readouterr().err
    data = write_tiny_dataset(tmp_path / "ds")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--resume", "--steps", "1", *TINY]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--batch", "0"]) == 2
    assert main(["sample", "--model", str(tmp_path), "--out", str(tmp_path / "s"), "--seeds", "9-1"]) == 2


@pytest.mark.parametrize("option, message", [
    (["--ema-halflife", "nan"], "--ema-halflife must be a positive finite"),
    (["--ema-decay", "2"], "--ema-decay must lie in [0, 1)"),
    (["--checkpoint-every", "-1"], "--checkpoint-every must be >= 0"),
    (["--channels", "0"], "model_channels (--channels) must be a positive int"),
    (["--channels", "-8"], "model_channels (--channels) must be a positive int"),
    (["--device", "banana"], "--device 'banana': not a torch device"),
    (["--kimg", "inf"], "--kimg must be a positive finite number"),
    (["--kimg", "nan"], "--kimg must be a positive finite number"),
])
def test_bad_options_are_one_line_errors(option: list[str], message: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    data = write_tiny_dataset(tmp_path / "ds")
    steps = [] if option[0] == "--kimg" else ["--steps", "1"]
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), *steps, *TINY, *option]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "r" / "model").exists()


def test_cuda_on_a_machine_without_cuda_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = write_tiny_dataset(tmp_path / "ds")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--steps", "1", "--device", "cuda",
                 *TINY]) == 2
    assert "--device cuda: CUDA is not available" in capsys.readouterr().err


def test_out_naming_a_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_tiny_dataset(tmp_path / "ds")
    (tmp_path / "afile").write_text("x")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "afile"), "--steps", "1", *TINY]) == 2
    err = capsys.readouterr().err
    assert "afile: exists and is not a folder" in err and err.count("\n") == 1


def test_resume_on_another_annotation_file_of_the_same_name_is_refused(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    data, run = write_tiny_dataset(tmp_path / "ds", corrupted=16), tmp_path / "run"
    ann = tmp_path / "ann.jsonl"
    assert main(["annotate", "fixed", "--data", str(data), "--sigma-min", "1.5", "--out", str(ann)]) == 0
    args = ["train", "--data", str(data), "--annotations", str(ann), "--out", str(run), "--checkpoint-every", "2",
            *TINY]
    assert main([*args, "--steps", "2"]) == 0
    ann.unlink()  # the same name and counts, other sigma_min: what a resume used to accept
    assert main(["annotate", "fixed", "--data", str(data), "--sigma-min", "3.0", "--out", str(ann)]) == 0
    capsys.readouterr()
    assert main([*args, "--steps", "4"]) == 2
    err = capsys.readouterr().err
    assert "contents of annotations" in err and len(err.strip().splitlines()) == 1


def test_loss_target_choices_are_the_losses_targets() -> None:
    from ambient_omni.cli.train import LOSS_TARGETS
    from ambient_omni.diffusion.ambient_loss import TARGETS

    assert LOSS_TARGETS == TARGETS


def test_the_default_cpu_path_resumes_exactly_and_repeats_itself(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 with the CPU kernels and channels_last (the default where they build): a run continued from its
    checkpoint ends with the bits of a straight run, and a second straight run repeats them."""
    from safetensors.torch import load_file

    from ambient_omni.networks.cpu_kernels import kernels_available

    monkeypatch.setenv("AMBIENT_CPU_BF16", "1")
    data = write_tiny_dataset(tmp_path / "ds")

    def train(name: str, steps: int) -> int:
        return main(["train", "--data", str(data), "--out", str(tmp_path / name), "--steps", str(steps),
                     "--checkpoint-every", "2", *TINY])

    assert train("straight", 4) == 0 and train("again", 4) == 0
    assert train("resumed", 2) == 0 and train("resumed", 4) == 0
    weights = {name: load_file(tmp_path / name / "model" / "model.safetensors")
               for name in ("straight", "again", "resumed")}
    for other in ("again", "resumed"):
        assert weights[other].keys() == weights["straight"].keys()
        assert all(torch.equal(weights[other][k], weights["straight"][k]) for k in weights["straight"])
    meta = json.loads(sorted((tmp_path / "resumed" / "checkpoints").glob("*.json"))[-1].read_text())
    assert meta["precision"] == "bf16" and meta["fast_ops"] is True
    if kernels_available():  # the path under test really is the kernels' one
        from ambient_omni.networks.fast_ops import memory_format_for
        from ambient_omni.networks.unet import UNet

        assert memory_format_for(UNet(1, 1, model_channels=8, num_blocks=1), torch.device("cpu")) == \
            torch.channels_last
