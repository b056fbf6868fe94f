"""`ambient eval` end to end on tiny files (pixel features, so no network is needed)."""

import json

import numpy as np

from ambient_omni.cli.main import main


def _write(tmp_path):
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, size=(80, 1, 8, 8), dtype=np.uint8)
    (tmp_path / "ref").mkdir()
    np.save(tmp_path / "ref" / "images.npy", ref)
    np.savez(tmp_path / "samples.npz", images=np.concatenate([ref[:10], rng.integers(0, 256, (30, 1, 8, 8),
                                                                                       dtype=np.uint8)]))


def test_table_and_json(tmp_path, capsys):
    _write(tmp_path)
    common = ["eval", "--samples", str(tmp_path / "samples.npz"), "--reference", str(tmp_path / "ref"),
              "--features", "pixels", "--memorization-train", str(tmp_path / "ref"), "--kid-subsets", "3", "--kid-subset-size", "20",
              "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(common + ["--json", str(tmp_path / "out.json")]) == 0
    table = capsys.readouterr().out
    assert "samples: 40" in table and "FD" in table and "PROTOCOL.md" in table
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["memorization"]["share"] == 0.25
    assert main(common + ["--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["features"]["pixels"]["fd"] == saved["features"]["pixels"]["fd"]


def test_bad_input_exits_2(tmp_path, capsys):
    assert main(["eval", "--samples", str(tmp_path / "missing.npz"), "--features", "pixels",
                 "--reference", str(tmp_path)]) == 2
    assert main(["eval", "--samples", str(tmp_path / "x.npz"), "--features", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "ambient eval: error" in err


def test_help_mentions_protocol(capsys):
    try:
        main(["eval", "--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert "PROTOCOL" in capsys.readouterr().out


def test_k_zero_exits_2(tmp_path, capsys):
    _write(tmp_path)
    assert main(["eval", "--samples", str(tmp_path / "samples.npz"), "--reference", str(tmp_path / "ref"),
                 "--features", "pixels", "--k", "0", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 2
    assert "--k (k of the k-NN precision/recall) must be a positive int" in capsys.readouterr().err


def test_run_folder_then_report_shows_its_metrics(tmp_path, capsys):
    """eval on a run folder evaluates RUN/samples/final/samples.npz (not the RGBA preview PNGs) and writes
    metrics.json beside it, which `ambient report RUN` shows without any --json path."""
    from PIL import Image

    _write(tmp_path)
    run = tmp_path / "run"
    (run / "samples" / "final").mkdir(parents=True)
    (run / "log.jsonl").write_text(json.dumps({"step": 1, "images_seen": 64, "loss_mean": 0.5}) + "\n")
    Image.new("RGBA", (8, 8)).save(run / "samples" / "preview-00000001.png")
    (tmp_path / "samples.npz").rename(run / "samples" / "final" / "samples.npz")
    assert main(["eval", "--samples", str(run), "--reference", str(tmp_path / "ref"), "--features", "pixels",
                 "--kid-subsets", "2", "--kid-subset-size", "20", "--cache-dir", str(tmp_path / "cache"),
                 "--no-progress"]) == 0
    assert f"wrote {run / 'samples' / 'final' / 'metrics.json'}" in capsys.readouterr().out
    fd = json.loads((run / "samples" / "final" / "metrics.json").read_text())["features"]["pixels"]["fd"]
    assert main(["report", str(run)]) == 0
    assert f"{fd:.4g}" in (run / "report.html").read_text()


def test_no_metrics_file(tmp_path, capsys):
    _write(tmp_path)
    assert main(["eval", "--samples", str(tmp_path / "samples.npz"), "--reference", str(tmp_path / "ref"),
                 "--features", "pixels", "--kid-subsets", "2", "--kid-subset-size", "20", "--no-metrics-file",
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    assert not (tmp_path / "metrics.json").exists()


def test_a_truncated_samples_file_exits_2(tmp_path, capsys):
    _write(tmp_path)
    blob = (tmp_path / "samples.npz").read_bytes()
    (tmp_path / "samples.npz").write_bytes(blob[: len(blob) // 2])
    assert main(["eval", "--samples", str(tmp_path / "samples.npz"), "--reference", str(tmp_path / "ref"),
                 "--features", "pixels", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "truncated or damaged" in err and err.count("\n") == 1
