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
    assert ours["malloc"] in ("tuned", "unavailable", "refused") and ours["images_per_s"] > 0
    assert today["flops_per_image"] == ours["flops_per_image"] > 0 and today["matmul_peak_flops"] > 0
    assert "MFLOP per image" in printed and "% of the measured fp32 matmul peak" in printed
    assert result["ratios"] == [ours["images_per_s"] / today["images_per_s"]]


def test_child_runs_repeat_the_network_settings() -> None:
    args = _args("--preset", "fmnist-small", "--blocks", "1,2,2", "--compile", "--no-input-skip", "--against-today", "2")
    ours, today = today_mod.child_argv(args, reference=False), today_mod.child_argv(args, reference=True)
    assert ours[ours.index("--blocks") + 1] == "1,2,2" and "--no-input-skip" in ours and "--compile" in ours
    assert "--compile" not in today and today[-1] == "--no-bf16" and "--against-today" not in ours + today


def test_every_benchmark_net_option_is_repeated_switched_or_refused() -> None:
    """A new benchmark-net option fails here until the process comparison says what to do with it."""
    sub = build_parser()._subparsers._group_actions[0].choices["benchmark-net"]
    dest_of = {flag: action.dest for action in sub._actions for flag in action.option_strings}
    groups = (today_mod.CHILD_VALUES, today_mod.OUR_SWITCHES, today_mod.REFUSED)
    for group in groups:
        assert all(dest_of[flag] == dest for dest, flag in group), group  # each pair names one option
    dests = [dest for group in groups for dest, _ in group]
    assert len(dests) == len(set(dests))  # no option in two groups
    own = {"help", "input_skip", "against_today", "json"}  # input_skip goes to both children; the rest is ours
    assert set(dest_of.values()) - set(dests) == own


def test_every_repeated_value_reaches_both_children() -> None:
    values = {"--preset": "fmnist-base", "--channels": "8", "--channel-mult": "1,2", "--blocks": "1,1",
              "--attn-levels": "1", "--batch": "4", "--resolution": "8x12", "--channels-in": "3", "--images": "8",
              "--val-images": "2", "--lr": "0.002", "--threads": "1", "--seed": "5", "--device": "cpu"}
    args = _args(*[x for kv in values.items() for x in kv], "--against-today", "1")
    for reference in (True, False):
        argv = today_mod.child_argv(args, reference)
        assert {flag: argv[argv.index(flag) + 1] for flag in values} == values


def test_children_run_without_malloc_tunables() -> None:
    environ = {"PATH": "/bin", "MALLOC_ARENA_MAX": "2", "MALLOC_TRIM_THRESHOLD_": "1", "GLIBC_TUNABLES": "x=1",
               "LD_PRELOAD": "libjemalloc.so", "AMBIENT_MALLOC": "tuned"}
    assert today_mod.child_env(True, environ) == {"PATH": "/bin", "AMBIENT_MALLOC": "default",
                                                  "AMBIENT_FAST_OPS": "off"}
    assert today_mod.child_env(False, environ) == {"PATH": "/bin", "AMBIENT_MALLOC": "tuned", "AMBIENT_FAST_OPS": "on"}
    assert today_mod.child_env(False, {"PATH": "/bin", "AMBIENT_MALLOC": "default"})["AMBIENT_MALLOC"] == "default"
    assert today_mod.child_env(False, {"PATH": "/bin"})["AMBIENT_MALLOC"] == "tuned"


def test_today_runs_pytorch_ops_and_ours_the_callers_choice() -> None:
    assert today_mod.child_env(True, {"AMBIENT_FAST_OPS": "on"})["AMBIENT_FAST_OPS"] == "off"
    assert today_mod.child_env(False, {"AMBIENT_FAST_OPS": "off"})["AMBIENT_FAST_OPS"] == "off"


def test_rounds_run_in_abba_order(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture) -> None:
    calls = []

    def fake_child(name: str, args: argparse.Namespace, reference: bool, out: str) -> dict:
        calls.append((name, reference))
        speed = 100.0 if reference else 180.0
        return {"images_per_s": speed, "validation_loss": 0.5, "precision": "fp32", "malloc": "default",
                "fast_ops": not reference, "memory_format": "NCHW", "flops_per_image": 1e8, "matmul_peak_flops": 2e11}

    monkeypatch.setattr(today_mod, "_run_child", fake_child)
    out = tmp_path / "r.json"
    assert main(["benchmark-net", "--against-today", "4", "--json", str(out)]) == 0
    assert calls == [("today", True), ("ours", False), ("ours", False), ("today", True)] * 2
    result = json.loads(out.read_text())
    assert [r["first"] for r in result["rounds"]] == ["today", "ours", "today", "ours"]
    printed = capsys.readouterr().out
    assert "round 2 ours : 180.0 img/s" in printed  # 1e8 FLOP x 180 img/s = 18 GFLOP/s of a 200 GFLOP/s peak
    assert "100.0 MFLOP per image, 18.0 GFLOP/s = 9.0% of the measured fp32 matmul peak 200 GFLOP/s" in printed
    assert result["ratios"] == [1.8] * 4 and result["median_ratio"] == 1.8


def test_a_failed_child_names_its_exit_code(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    failed = subprocess.CompletedProcess([], 3, "", "Traceback ...\nRuntimeError: boom")
    monkeypatch.setattr(today_mod.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(AmbientError, match=r"(?s)the today run exited with code 3 .*RuntimeError: boom"):
        today_mod._run_child("today", _args("--against-today", "1"), True, str(tmp_path / "x.json"))


def test_a_killed_child_names_its_signal(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(today_mod.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess([], -9, "", ""))
    with pytest.raises(AmbientError, match="the ours run was killed by SIGKILL"):
        today_mod._run_child("ours", _args("--against-today", "1"), False, str(tmp_path / "x.json"))


def test_negative_rounds_and_mixed_comparisons_are_user_errors(capsys: pytest.CaptureFixture) -> None:
    assert main(["benchmark-net", "--against-today", "-1"]) == 2
    assert "--against-today" in capsys.readouterr().err
    assert main(["benchmark-net", "--against-today", "1", "--baseline", "--sample", "4"]) == 2
    assert "drop --baseline, --sample" in capsys.readouterr().err
