"""Plots are written as non-empty PNG files."""

from pathlib import Path

import numpy as np

from ambient_omni.annotate import plots


def test_all_plots_write_png(tmp_path: Path) -> None:
    sigmas = np.geomspace(0.01, 10, 50)
    raw = np.stack([0.5 / (1 + np.exp(-np.log(sigmas / c))) for c in (0.1, 1.0)])
    plots.plot_curves(tmp_path / "c.png", sigmas, raw, [0.2, 2.0], ["a", "b"], 0.45, 4)
    plots.plot_histogram(tmp_path / "h.png", np.array([0.1, 0.2, np.inf, 0.0, 0.3]))
    report = {"sigmas": [0.1, 0.5], "crop_sizes": [4, 8], "errors": [[0.2, 0.1], [0.3, 0.2]],
              "full_errors": [0.1, 0.2], "crop_to_sigma_max": {"4": 0.1, "8": 0.5}}
    plots.plot_locality(tmp_path / "l.png", report)
    plots.plot_crop_probabilities(tmp_path / "p.png", np.zeros((1, 8, 8)), {4: np.full((2, 2), 0.3)}, 0.25)
    for name in "chlp":
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_crop_map_points_sort_sizes_numerically() -> None:
    from ambient_omni.annotate.plots import crop_map_points

    sizes, sigmas = crop_map_points({"crop_to_sigma_max": {"10": 0.05, "28": 1.5, "4": 0.025, "8": 0.05}})
    assert sizes == [4, 8, 10, 28] and sigmas == [0.025, 0.05, 0.05, 1.5]
