"""Report figures: availability counts by provenance, smoothing, PNG output."""

import numpy as np

from ambient_omni.data.annotations import AnnotationTable
from ambient_omni.report import plots


def _table() -> AnnotationTable:
    provenance = ["clean", "corrupted:blur", "corrupted:blur", "ood:sandal"]
    return AnnotationTable.fixed(np.arange(4), provenance, sigma_min=1.0, sigma_max=0.2)


def test_availability_counts_by_provenance() -> None:
    b = np.sqrt(4 / 3)  # buffer factor for s = 4
    sigmas = np.array([0.1, 0.2, 0.5, 1.0, 1.01 * b, 10.0])
    counts = plots.availability(_table(), sigmas, buffer_s=4.0)
    assert counts["clean"].tolist() == [1, 1, 1, 1, 1, 1]
    assert counts["corrupted"].tolist() == [0, 0, 0, 0, 2, 2]  # only above b * sigma_min
    assert counts["ood"].tolist() == [1, 1, 0, 0, 0, 0]  # only at sigma <= sigma_max


def test_kinds_fall_back_to_annotation_values() -> None:
    table = AnnotationTable(np.arange(3), [0.0, 0.5, np.inf], [0.0, 0.0, 0.1], ["x"] * 3, [None] * 3, [None] * 3)
    assert plots.provenance_kinds(table) == ["clean", "corrupted", "ood"]


def test_smooth_is_trailing_mean() -> None:
    out = plots.smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2)
    assert np.allclose(out, [1.0, 2.0, 4.0, 6.0])


def test_figures_are_png() -> None:
    for png in (plots.availability_plot(_table()), plots.sigma_min_histogram(_table()),
                plots.loss_curves({"run": (np.arange(10.0), np.linspace(1, 0.1, 10))})):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
