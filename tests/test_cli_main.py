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
