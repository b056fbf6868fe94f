"""The paper's theory (section 4) as code: bounds, exact/numerical TV distances, checks, crossing.

Public names: :func:`kde_tv_bound` (Theorem 4.1, explicit constants), :func:`kde_tv_bound_rate`
(Theorem 4.1 as stated, chosen constant), :func:`contraction_bound` (Theorem 4.2),
:func:`clean_only_error_bound` / :func:`mixed_error_bound` (bias-variance), :func:`crossing_sigma`,
:func:`ideal_crossing_ratio` / :func:`effective_pixels` (where an ideal classifier annotates Gaussian noise).
See docs/THEORY.md.
"""

from ambient_omni.theory.bounds import (
    accuracy_to_tv,
    clean_only_error_bound,
    contraction_bound,
    contraction_bound_sharp,
    kde_bound,
    kde_expected_tv_bound,
    kde_tv_bound,
    kde_tv_bound_rate,
    mixed_error_bound,
)
from ambient_omni.theory.crossing import CrossingResult, CrossingSetup, crossing_sigma, edm_sigmas, step_choices
from ambient_omni.theory.noise_detection import effective_pixels, ideal_crossing_ratio
from ambient_omni.theory.tv import gaussian_shift_tv

__all__ = [
    "CrossingResult",
    "CrossingSetup",
    "accuracy_to_tv",
    "clean_only_error_bound",
    "contraction_bound",
    "contraction_bound_sharp",
    "crossing_sigma",
    "edm_sigmas",
    "effective_pixels",
    "gaussian_shift_tv",
    "ideal_crossing_ratio",
    "kde_bound",
    "kde_expected_tv_bound",
    "kde_tv_bound",
    "kde_tv_bound_rate",
    "mixed_error_bound",
    "step_choices",
]
