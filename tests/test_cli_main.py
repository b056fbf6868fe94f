"""The ``ambient`` entry point: help works for the top level and every discovered subcommand."""

import pytest

from ambient_omni.cli.main import build_parser, main


def test_top_level_help(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "Ambient Diffusion Omni" in capsys.readouterr().out


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture) -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0, name
        assert capsys.readouterr().out.strip(), name


def test_operating_system_errors_are_one_line(tmp_path, capsys: pytest.CaptureFixture) -> None:
    import numpy as np

    from ambient_omni.data.dataset_folder import write_dataset
    from ambient_omni.data.mixed import MixedData

    data = MixedData(np.zeros((2, 1, 4, 4), np.uint8), np.zeros(2, np.int64), ["s"] * 2, np.arange(2),
                     ["clean", "corrupted:x"], 0)
    write_dataset(tmp_path / "d", data)
    (tmp_path / "taken").mkdir()  # --out names a folder where a file belongs
    assert main(["annotate", "fixed", "--data", str(tmp_path / "d"), "--sigma-min", "1",
                 "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err == f"ambient annotate: error: {tmp_path / 'taken'}: Is a directory\n"
    assert not list(tmp_path.glob(".taken.*.tmp"))


def test_os_error_message_names_the_path() -> None:
    from ambient_omni.cli.main import os_error_message

    assert os_error_message(OSError(28, "No space left on device", "/x/ckpt")) == "/x/ckpt: No space left on device"
    assert os_error_message(OSError("plain")) == "plain"
    assert os_error_message(OSError(21, "Is a directory", "/x/.out.tmp", None, "/x/out")) == "/x/out: Is a directory"


def test_every_command_applies_the_malloc_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    from ambient_omni import host_memory

    calls: list[str | None] = []
    monkeypatch.setattr(host_memory, "tune_malloc", lambda policy=None: calls.append(policy) or "tuned")
    assert main(["benchmark-net", "--resolution", "8y8"]) == 2  # a user error after the start-up
    assert calls == [None]  # None: the policy $AMBIENT_MALLOC chooses


def test_a_bad_malloc_policy_is_a_user_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("AMBIENT_MALLOC", "bogus")
    assert main(["benchmark-net", "--resolution", "8"]) == 2
    assert "AMBIENT_MALLOC must be 'tuned' or 'default'" in capsys.readouterr().err
