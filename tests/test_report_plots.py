"""Report figures: availability counts by provenance, smoothing, PNG output."""

import numpy as np
import pytest

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


def _overlapping_tick_labels(fig) -> tuple[int, list[str]]:
    """Pairs of visible x tick labels inside the axes' range whose boxes overlap, and the label texts."""
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    lo, hi = ax.get_xlim()
    ticks = [(t, loc) for t, loc in zip(ax.get_xticklabels(), ax.get_xticks())]
    ticks += [(t, loc) for t, loc in zip(ax.get_xticklabels(minor=True), ax.get_xticks(minor=True))]
    shown = [t for t, loc in ticks if t.get_visible() and t.get_text() and lo <= loc <= hi]
    boxes = [t.get_window_extent(renderer) for t in shown]
    pairs = sum(boxes[i].overlaps(boxes[j]) for i in range(len(boxes)) for j in range(i + 1, len(boxes)))
    return pairs, [t.get_text() for t in shown]


@pytest.mark.parametrize("lo, hi", [(0.5, 4.0), (1.2, 2.5), (0.05, 20.0), (0.9, 1.1)])
def test_sigma_min_histogram_tick_labels_do_not_overlap(lo: float, hi: float) -> None:
    """Under a decade, matplotlib's log axis labelled every minor tick (2x10^0, 3x10^0, ...) and they overlapped."""
    import matplotlib.pyplot as plt

    values = np.geomspace(lo, hi, 200)
    table = AnnotationTable.fixed(np.arange(200), ["corrupted:blur"] * 200, sigma_min=1.0)
    table.sigma_min[:] = values
    fig = plots.sigma_min_figure(table)
    pairs, texts = _overlapping_tick_labels(fig)
    plt.close(fig)
    assert pairs == 0, texts
    assert 1 <= len(texts) <= 6 and all("times" not in t for t in texts), texts


def test_log_ticks() -> None:
    assert plots.log_ticks(0.5, 4.0) == [0.5, 0.7, 1.0, 1.5, 2.0, 3.0]
    assert plots.log_ticks(0.01, 100.0) == [0.01, 0.1, 1.0, 10.0, 100.0]
