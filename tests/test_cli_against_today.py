"""``benchmark-net --against-today``: child runs as processes, their arguments and environment, the ABBA order."""

import argparse
import json
import subprocess

import pytest

from ambient_omni.cli import _against_today as today_mod
from ambient_omni.cli.main import build_parser, main
from ambient_omni.errors import AmbientError


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["benchmark-net", *argv])


def test_against_today_runs_both_paths_as_processes(tmp_path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "today.json"
    code = main(["benchmark-net", "--preset", "fmnist-small", "--channels", "8", "--resolution", "8x12",
                 "--batch", "2", "--images", "4", "--val-images", "2", "--threads", "1", "--against-today", "1",
                 "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "speed ratio ours/today: median" in printed
    result = json.loads(out.read_text())
    today, ours = result["rounds"][0]["today"], result["rounds"][0]["ours"]
    assert (today["precision"], today["malloc"]) == ("fp32", "default")  # today's path: float32, glibc's policy
    assert ours["malloc"] in ("tuned", "unavailable") and ours["images_per_s"] > 0
    assert result["ratios"] == [ours["images_per_s"] / today["images_per_s"]]


def test_child_runs_repeat_the_network_settings() -> None:
    args = _args("--preset", "fmnist-small", "--blocks", "1,2,2", "--compile", "--no-input-skip", "--against-today", "2")
    ours, today = today_mod.child_argv(args, reference=False), today_mod.child_argv(args, reference=True)
    assert ours[ours.index("--blocks") + 1] == "1,2,2" and "--no-input-skip" in ours and "--compile" in ours
    assert "--compile" not in today and today[-1] == "--no-bf16" and "--against-today" not in ours + today


def test_every_benchmark_net_option_is_repeated_switched_or_refused() -> None:
    """A new benchmark-net option fails here until the process comparison says what to do with it."""
    sub = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "benchmark-net")[1]
    dests = {a.dest for a in sub._actions} - {"help"}
    known = {d for d, _ in today_mod.CHILD_VALUES + today_mod.OUR_SWITCHES + today_mod.REFUSED}
    assert dests - known == {"input_skip", "against_today", "json"}  # both children / the comparison's own
    flags = {f for a in sub._actions for f in a.option_strings}
    assert {f for _, f in today_mod.CHILD_VALUES + today_mod.OUR_SWITCHES + today_mod.REFUSED} <= flags


def test_every_repeated_value_reaches_both_children() -> None:
    values = {"--preset": "fmnist-base", "--channels": "8", "--channel-mult": "1,2", "--blocks": "1,1",
              "--attn-levels": "1", "--batch": "4", "--resolution": "8x12", "--channels-in": "3", "--images": "8",
              "--val-images": "2", "--lr": "0.002", "--threads": "1", "--seed": "5", "--device": "cpu"}
    args = _args(*[x for kv in values.items() for x in kv], "--against-today", "1")
    for reference in (True, False):
        argv = today_mod.child_argv(args, reference)
        assert {flag: argv[argv.index(flag) + 1] for flag in values} == values


def test_todays_child_runs_without_malloc_tunables() -> None:
    environ = {"PATH": "/bin", "MALLOC_ARENA_MAX": "2", "MALLOC_TRIM_THRESHOLD_": "1", "GLIBC_TUNABLES": "x=1",
               "LD_PRELOAD": "libjemalloc.so", "AMBIENT_MALLOC": "tuned"}
    assert today_mod.child_env(True, environ) == {"PATH": "/bin", "AMBIENT_MALLOC": "default"}
    assert today_mod.child_env(False, environ) == environ
    assert today_mod.child_env(False, {"PATH": "/bin"})["AMBIENT_MALLOC"] == "tuned"


def test_rounds_alternate_abba() -> None:
    assert [today_mod.round_order(r) for r in (1, 2, 3, 4)] == [("today", "ours"), ("ours", "today")] * 2


def test_a_failed_child_names_its_exit_code(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    failed = subprocess.CompletedProcess([], 3, "", "Traceback ...\nRuntimeError: boom")
    monkeypatch.setattr(today_mod.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(AmbientError, match=r"(?s)the today run exited with code 3 .*RuntimeError: boom"):
        today_mod._run_child("today", _args("--against-today", "1"), True, str(tmp_path / "x.json"))


def test_negative_rounds_and_mixed_comparisons_are_user_errors(capsys: pytest.CaptureFixture) -> None:
    assert main(["benchmark-net", "--against-today", "-1"]) == 2
    assert "--against-today" in capsys.readouterr().err
    assert main(["benchmark-net", "--against-today", "1", "--baseline", "--sample", "4"]) == 2
    assert "drop --baseline, --sample" in capsys.readouterr().err
