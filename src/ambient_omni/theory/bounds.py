"""The paper's bounds (Daras et al. 2025, arXiv 2506.10038, section 4) as functions of sigma.

Notation: ``p_sigma = p * N(0, sigma^2)``; ``p_hat_sigma`` the Gaussian kernel density estimate of
``n`` samples at bandwidth ``sigma`` (what an optimal denoiser trained on those samples produces).

Provenance of the constants. The paper's text is not available offline here; PAPER.md states the
results only up to constants (Theorem 4.1 with ``<~``). Therefore:

* Theorem 4.2 (contraction): ``D / (2 sigma)`` is exactly what Pinsker's inequality gives for two
  Gaussians at distance ``<= D`` (``KL = D^2 / (2 sigma^2)``, ``TV <= sqrt(KL / 2)``). The same proof
  with the exact Gaussian distance gives the sharper ``2 Phi(D / (2 sigma)) - 1`` (derived here).
* Theorem 4.1 (KDE): :func:`kde_tv_bound_rate` is the paper's stated rate with its hidden constant
  set to ``constant`` (default 1: a CHOICE, not from the paper). :func:`kde_tv_bound` is a bound
  with explicit constants that we derived ourselves (proof in its docstring and docs/THEORY.md); it
  needs only support in [0, 1] (no Lipschitz constant).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from ambient_omni.errors import AmbientError

DEFAULT_DELTA = 0.05
"""Failure probability of the high-probability bounds. A CHOICE (the paper keeps delta free)."""

_SQRT_2PI = float(np.sqrt(2.0 * np.pi))


def _positive(name: str, value: np.ndarray | float) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if np.any(~np.isfinite(arr)) or np.any(arr <= 0):
        raise AmbientError(f"{name} must be positive and finite, got {value!r}")
    return arr


def _check_tv(tv0: np.ndarray | float) -> np.ndarray:
    arr = np.asarray(tv0, dtype=float)
    if np.any(arr < 0) or np.any(arr > 1):
        raise AmbientError(f"a total variation distance must lie in [0, 1], got {tv0!r}")
    return arr


def contraction_bound(sigma: np.ndarray | float, tv0: np.ndarray | float, diameter: float) -> np.ndarray:
    """Theorem 4.2: ``d_TV(P_sigma, Q_sigma) <= d_TV(P, Q) * min(1, D / (2 sigma))``.

    ``P``, ``Q`` supported on a set of diameter ``D``. Proof: ``P - Q = t (mu+ - mu-)`` with
    ``t = d_TV(P, Q)`` and probability measures ``mu+-`` on that set; by joint convexity
    ``d_TV(mu+ * N, mu- * N) <= sup_{|x-y|<=D} d_TV(N(x, sigma^2 I), N(y, sigma^2 I)) <= D / (2 sigma)``
    (Pinsker). The ``min(1, .)`` is the data-processing inequality (noise never increases TV).
    """
    sigma = _positive("sigma", sigma)
    _positive("diameter", diameter)
    return _check_tv(tv0) * np.minimum(1.0, diameter / (2.0 * sigma))


def contraction_bound_sharp(
    sigma: np.ndarray | float, tv0: np.ndarray | float, diameter: float
) -> np.ndarray:
    """The same proof as :func:`contraction_bound` with the exact Gaussian distance (derived here).

    ``d_TV(P_sigma, Q_sigma) <= d_TV(P, Q) * (2 Phi(D / (2 sigma)) - 1)``. Equality holds for two point
    masses at distance ``D``, so no bound of the form ``d_TV(P, Q) * f(D, sigma)`` can be smaller.
    For large sigma ``2 Phi(D/(2 sigma)) - 1 ~ D / (sigma sqrt(2 pi))``: the ratio to Theorem 4.2's
    ``D / (2 sigma)`` tends to ``2 / sqrt(2 pi) = sqrt(2 / pi) ~ 0.798`` (Pinsker's loss).
    """
    sigma = _positive("sigma", sigma)
    _positive("diameter", diameter)
    return _check_tv(tv0) * erf(diameter / (2.0 * np.sqrt(2.0) * sigma))


def kde_tv_bound_rate(
    sigma: np.ndarray | float,
    n: int,
    lipschitz: float = 1.0,
    delta: float = DEFAULT_DELTA,
    constant: float = 1.0,
) -> np.ndarray:
    """Theorem 4.1 as stated (PAPER.md section 3), with its hidden constant made explicit.

    For ``n`` i.i.d. samples of a ``lambda``-Lipschitz density on [0, 1], with probability
    ``>= 1 - delta``::

        d_TV(p_sigma, p_hat_sigma) <= C * (1/n + 1/(sigma^2 n)
                                          + sqrt((log n + log(max(1, lambda)) + log(2/delta)) / (sigma^2 n)))

    ``C = constant`` defaults to 1: a CHOICE (the paper writes ``<~``; its constant is not available
    here). The result is clipped at 1 (a TV distance never exceeds 1).
    """
    sigma = _positive("sigma", sigma)
    n = int(_positive("n", n))
    log_term = np.log(n) + np.log(max(1.0, lipschitz)) + np.log(2.0 / delta)
    value = 1.0 / n + 1.0 / (sigma**2 * n) + np.sqrt(log_term / (sigma**2 * n))
    return np.minimum(1.0, constant * value)


def kde_expected_tv_bound(sigma: np.ndarray | float, n: int) -> np.ndarray:
    """``E d_TV(p_sigma, p_hat_sigma) <= e(sigma) / sqrt(n)`` for ANY density on [0, 1] (derived here).

    Proof. Pointwise ``E|p_hat_sigma(y) - p_sigma(y)| <= sqrt(Var phi_sigma(y - X) / n)`` (Jensen), and
    ``E d_TV = (1/2) int E|.| dy`` (Fubini). Two bounds on the variance give ``e = min(e_small, e_large)``:

    * small sigma: ``Var <= E phi_sigma(y - X)^2 = p_{sigma/sqrt 2}(y) / (2 sigma sqrt(pi))`` and, by
      Cauchy-Schwarz with weight ``1 + (y - 1/2)^2 / r^2``, ``int sqrt(p_s) <= sqrt(2 pi r)`` with
      ``r = sqrt(1/4 + s^2)``; so ``e_small = (1/2) (2 sigma sqrt(pi))^(-1/2) sqrt(2 pi r)``, ``s = sigma/sqrt 2``.
    * large sigma: ``Var <= E (phi_sigma(y - X) - phi_sigma(y - 1/2))^2 <= M(y)^2 / 4`` with
      ``M(y) = sup_{t in [0,1]} |phi_sigma'(y - t)|``; ``|phi'|`` is two unimodal bumps of mass
      ``phi_sigma(0)`` and height ``e^{-1/2} / (sigma^2 sqrt(2 pi))``, so
      ``int M <= 2 / (sigma sqrt(2 pi)) + 2 e^{-1/2} / (sigma^2 sqrt(2 pi))`` and
      ``e_large = (1/sigma + e^{-1/2}/sigma^2) / (2 sqrt(2 pi))``.

    The same holds for independent, non-identically distributed samples (each term bounded alike),
    which is what the mixed-data KDE (n1 clean + n2 corrupted) needs.
    """
    sigma = _positive("sigma", sigma)
    n = int(_positive("n", n))
    s2 = sigma**2 / 2.0
    r = np.sqrt(0.25 + s2)
    e_small = 0.5 * (2.0 * sigma * np.sqrt(np.pi)) ** -0.5 * np.sqrt(2.0 * np.pi * r)
    e_large = (1.0 / sigma + np.exp(-0.5) / sigma**2) / (2.0 * _SQRT_2PI)
    return np.minimum(e_small, e_large) / np.sqrt(n)


def kde_tv_bound(sigma: np.ndarray | float, n: int, delta: float = DEFAULT_DELTA) -> np.ndarray:
    """Explicit-constant version of Theorem 4.1 (derived here): with probability ``>= 1 - delta``::

        d_TV(p_sigma, p_hat_sigma) <= e(sigma)/sqrt(n) + (2 Phi(1/(2 sigma)) - 1) * sqrt(log(1/delta) / (2 n))

    for ``n`` independent samples with values in [0, 1]. First term: :func:`kde_expected_tv_bound`.
    Second term: McDiarmid's inequality; replacing one sample moves ``p_hat_sigma`` by ``1/n`` times the
    difference of two Gaussians at distance ``<= 1``, so ``d_TV`` moves by at most
    ``(2 Phi(1/(2 sigma)) - 1) / n``. Clipped at 1. For large sigma it decays like ``1/(sigma sqrt n)``,
    the paper's ``sqrt(log(.)/(sigma^2 n))`` rate, without the ``1/n`` floor and without ``lambda``.
    """
    sigma = _positive("sigma", sigma)
    if not 0 < delta < 1:
        raise AmbientError(f"delta must lie in (0, 1), got {delta!r}")
    n = int(_positive("n", n))
    bounded_difference = erf(1.0 / (2.0 * np.sqrt(2.0) * sigma))
    deviation = bounded_difference * np.sqrt(np.log(1.0 / delta) / (2.0 * n))
    return np.minimum(1.0, kde_expected_tv_bound(sigma, n) + deviation)


def accuracy_to_tv(accuracy: np.ndarray | float) -> np.ndarray:
    """Lower bound on ``d_TV`` from a classifier's accuracy on BALANCED classes: ``max(0, 2 acc - 1)``.

    The Bayes-optimal accuracy between two equally likely distributions is ``(1 + d_TV) / 2``; any
    classifier's held-out accuracy is (up to sampling error) at most that, hence the lower bound.
    """
    acc = np.asarray(accuracy, dtype=float)
    if np.any(acc < 0) or np.any(acc > 1):
        raise AmbientError(f"accuracies must lie in [0, 1], got {accuracy!r}")
    return np.maximum(0.0, 2.0 * acc - 1.0)


KDE_BOUNDS = ("paper", "explicit")
"""Which Theorem 4.1 bound the bias-variance comparison uses (see :func:`kde_bound`)."""


def kde_bound(
    sigma: np.ndarray | float,
    n: int,
    kind: str = "paper",
    lipschitz: float = 1.0,
    delta: float = DEFAULT_DELTA,
    constant: float = 1.0,
) -> np.ndarray:
    """Theorem 4.1 bound of the chosen ``kind``: ``"paper"`` -> :func:`kde_tv_bound_rate` (stated
    rate, constant ``constant`` chosen), ``"explicit"`` -> :func:`kde_tv_bound` (derived constants)."""
    if kind == "paper":
        return kde_tv_bound_rate(sigma, n, lipschitz=lipschitz, delta=delta, constant=constant)
    if kind == "explicit":
        return kde_tv_bound(sigma, n, delta=delta)
    raise AmbientError(f"unknown KDE bound {kind!r}; choose one of {', '.join(KDE_BOUNDS)}")


def clean_only_error_bound(sigma: np.ndarray | float, n_clean: int, **kde_options: object) -> np.ndarray:
    """Algorithm 1 (n1 clean samples only): ``d_TV(p_sigma, p_hat_sigma^{(n1)}) <= K(sigma, n1)``.

    ``K`` is :func:`kde_bound` (``kde_options`` are passed to it): pure variance, no bias.
    """
    return kde_bound(sigma, n_clean, **kde_options)  # type: ignore[arg-type]


def mixed_error_bound(
    sigma: np.ndarray | float,
    n_clean: int,
    n_corrupted: int,
    bias_tv: np.ndarray | float,
    **kde_options: object,
) -> np.ndarray:
    """Algorithm 2 (n1 clean + n2 corrupted, ``N = n1 + n2``): bias plus variance.

    With ``m = (n1 p + n2 q) / N`` the triangle inequality gives
    ``d_TV(p_sigma, m_hat_sigma) <= d_TV(p_sigma, m_sigma) + d_TV(m_sigma, m_hat_sigma)
    = (n2 / N) d_TV(p_sigma, q_sigma) + K(sigma, N)``. ``bias_tv`` is (a bound on or an estimate of)
    ``d_TV(p_sigma, q_sigma)``, e.g. :func:`contraction_bound` ``(sigma, d_TV(p0, q0), D)``; with
    Theorem 4.2 the bias is ``(n2/N) d_TV(p0, q0) D / (2 sigma)``. Clipped at 1.
    """
    n_total = int(n_clean) + int(n_corrupted)
    bias = (int(n_corrupted) / n_total) * _check_tv(bias_tv)
    return np.minimum(1.0, bias + kde_bound(sigma, n_total, **kde_options))  # type: ignore[arg-type]
