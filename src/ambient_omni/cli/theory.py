"""``ambient theory``: the paper's bounds, the clean-vs-mixed crossing, numerical checks, empirical curve."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ambient_omni.errors import AmbientError

_DESCRIPTION = """\
The theory of Ambient Diffusion Omni (paper section 4), computed.

  ambient theory [crossing] --n-clean N1 --n-corrupted N2 --tv TV [--diameter D] [--plot FILE]
      From which sigma is training on clean + corrupted data better than clean only, according to
      the bounds (Thm 4.1 + Thm 4.2)? Prints the crossing and the choice per EDM sampling step.
      Instead of --tv, --accuracy-curve FILE (JSON {"sigma": [...], "accuracy": [...]}) uses a
      noise classifier's balanced accuracy: d_TV(p_sigma, q_sigma) >= 2 acc - 1.
  ambient theory checks --out DIR [--quick]
      Numerical verification of the theorems on 1-D densities and a 2-D Gaussian mixture; PNGs.
  ambient theory empirical --images FILE --out DIR
      Clean vs blurred Fashion-MNIST: a small CNN's held-out accuracy at each sigma -> d_TV lower
      bound, next to Theorem 4.2's 1/sigma decay anchored at the smallest sigma.
  ambient theory noise-detection [--pixels 50,389] [--ratios 1.16,2.5] [--tau 0.45]
      Gaussian-noise corruption of std s (paper Table 7): where an ideal classifier that sees d
      constant pixels annotates (sigma* / s, a lower bound), and how many pixels' evidence a
      measured annotation ratio corresponds to.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``theory`` command."""
    parser = subparsers.add_parser(
        "theory",
        help="the paper's bounds, the clean-vs-mixed sigma crossing, numerical and empirical checks",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", nargs="?", default="crossing", choices=("crossing", "checks", "empirical", "noise-detection"))
    cross = parser.add_argument_group("crossing")
    cross.add_argument("--n-clean", type=int, help="number of clean samples n1")
    cross.add_argument("--n-corrupted", type=int, help="number of corrupted samples n2")
    cross.add_argument("--tv", type=float, help="estimate of d_TV(p0, q0), clean vs corrupted, in [0, 1]")
    cross.add_argument("--accuracy-curve", type=Path, help='JSON {"sigma": [...], "accuracy": [...]} of a noise classifier')
    cross.add_argument("--diameter", type=float, default=1.0, help="diameter D of the data support (default 1)")
    cross.add_argument("--lipschitz", type=float, default=1.0, help="Lipschitz constant of the clean density (paper bound)")
    cross.add_argument("--delta", type=float, default=0.05, help="failure probability of the bounds (default 0.05)")
    cross.add_argument("--kde-bound", choices=("paper", "explicit"), default="paper", help="Thm 4.1 form: paper rate (C=1) or explicit constants")
    cross.add_argument("--constant", type=float, default=1.0, help="hidden constant C of the paper's Thm 4.1 rate (a choice)")
    cross.add_argument("--sharp", action="store_true", help="use the sharp contraction 2 Phi(D/(2 sigma)) - 1 instead of D/(2 sigma)")
    cross.add_argument("--steps", type=int, default=18, help="EDM sampling steps for the per-step table (default 18)")
    cross.add_argument("--sigma-min", type=float, default=0.002, help="smallest sampling sigma (default 0.002)")
    cross.add_argument("--sigma-max", type=float, default=80.0, help="largest sampling sigma (default 80)")
    cross.add_argument("--plot", type=Path, help="write a PNG of both bounds versus sigma")
    cross.add_argument("--json", type=Path, help="also write the result as JSON")
    check = parser.add_argument_group("checks / empirical")
    check.add_argument("--out", type=Path, help="output folder for figures and numbers")
    check.add_argument("--quick", action="store_true", help="coarse grids / fewer images (for smoke tests)")
    check.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    check.add_argument("--images", type=Path, help="Fashion-MNIST IDX image file (.gz or raw) for `empirical`")
    check.add_argument("--blur", type=float, default=1.0, help="Gaussian blur sigma_B of the corrupted class (default 1.0)")
    check.add_argument("--epochs", type=int, default=2, help="training epochs per sigma for `empirical` (default 2)")
    noise = parser.add_argument_group("noise-detection")
    noise.add_argument("--pixels", default="1,10,50,100,389,784",
                       help="comma-separated numbers of constant pixels d (default 1,10,50,100,389,784; 389 is "
                       "Fashion-MNIST's median count of black pixels)")
    noise.add_argument("--ratios", default="", help="comma-separated annotation ratios sigma_min / s to convert "
                       "into effective pixels, e.g. 1.16,2.5")
    noise.add_argument("--tau", type=float, default=0.45, help="annotation threshold (default 0.45)")
    parser.set_defaults(func=run)


def _crossing_setup(args: argparse.Namespace) -> object:
    from ambient_omni.files import read_json
    from ambient_omni.theory.crossing import CrossingSetup, setup_from_accuracy

    if args.n_clean is None or args.n_corrupted is None:
        raise AmbientError("crossing needs --n-clean and --n-corrupted")
    options = dict(
        n_clean=args.n_clean, n_corrupted=args.n_corrupted, diameter=args.diameter, lipschitz=args.lipschitz,
        delta=args.delta, kde=args.kde_bound, constant=args.constant, sharp=args.sharp,
    )
    if args.accuracy_curve is not None:
        if args.tv is not None:
            raise AmbientError("give either --tv or --accuracy-curve, not both")
        curve = read_json(args.accuracy_curve)
        if not isinstance(curve, dict) or "sigma" not in curve or "accuracy" not in curve:
            raise AmbientError(f"{args.accuracy_curve}: expected an object with lists 'sigma' and 'accuracy'")
        return setup_from_accuracy(curve["sigma"], curve["accuracy"], **options)
    if args.tv is None:
        raise AmbientError("crossing needs --tv (an estimate of d_TV(p0, q0)) or --accuracy-curve FILE")
    return CrossingSetup(tv0=args.tv, **options)


def _run_crossing(args: argparse.Namespace) -> int:
    from ambient_omni.files import write_json
    from ambient_omni.theory.crossing import (
        crossing_sigma, describe_intervals, edm_sigmas, mixed_win_intervals, plot_crossing, step_choices,
    )

    setup = _crossing_setup(args)
    result = plot_crossing(setup, args.plot) if args.plot else crossing_sigma(setup)  # type: ignore[arg-type]
    intervals = mixed_win_intervals(setup)  # type: ignore[arg-type]
    steps = step_choices(setup, edm_sigmas(args.steps, args.sigma_min, args.sigma_max))  # type: ignore[arg-type]
    print(f"crossing: {describe_intervals(intervals)}  (Thm 4.1 bound: {args.kde_bound})")
    print(f"{'step':>4} {'sigma':>10} {'clean bound':>12} {'mixed bound':>12}  choice")
    for row in steps:
        print(f"{row['step']:>4} {row['sigma']:>10.4g} {row['clean_bound']:>12.4g} {row['mixed_bound']:>12.4g}  {row['choice']}")
    if args.plot:
        print(f"wrote {args.plot}")
    if args.json:
        write_json(args.json, {"crossing_sigma": result.sigma, "status": result.status, "vacuous": result.vacuous,
                               "mixed_intervals": [_interval_json(i) for i in intervals], "steps": steps})
    return 0


def _interval_json(interval: object) -> dict[str, float | None]:
    """A :class:`WinInterval` as JSON (``hi = null`` for an open range)."""
    lo, hi, below = interval.lo, interval.hi, interval.vacuous_below  # type: ignore[attr-defined]
    return {"lo": lo, "hi": hi if hi != float("inf") else None, "clean_bound_trivial_below": below}


def _jsonable(value: object) -> object:
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _require_out(args: argparse.Namespace) -> Path:
    if args.out is None:
        raise AmbientError(f"`ambient theory {args.action}` needs --out DIR")
    return args.out


def _run_checks(args: argparse.Namespace) -> int:
    from ambient_omni.files import write_json
    from ambient_omni.theory.checks import write_check_figures

    out = _require_out(args)
    numbers = write_check_figures(out, quick=args.quick, seed=args.seed)
    write_json(out / "theory_checks.json", _jsonable(numbers))
    bv = numbers["bias_variance"]
    print(f"wrote theory_contraction.png, theory_kde.png, theory_bias_variance.png, theory_checks.json to {out}")
    print(f"bias-variance example: true crossing {float(bv['true_crossing']):.4g}, bound crossing {float(bv['bound_crossing']):.4g}")  # type: ignore[index]
    return 0


def _run_empirical(args: argparse.Namespace) -> int:
    from ambient_omni.files import write_json
    from ambient_omni.theory.empirical import EmpiricalConfig, measure_blur_distinguishability, plot_empirical

    out = _require_out(args)
    if args.images is None:
        raise AmbientError("`ambient theory empirical` needs --images (a Fashion-MNIST IDX image file)")
    config = EmpiricalConfig.quick() if args.quick else EmpiricalConfig()
    config = config.with_options(blur=args.blur, epochs=args.epochs, seed=args.seed)
    curve = measure_blur_distinguishability(args.images, config)
    plot_empirical(curve, out / "theory_empirical_fmnist.png")
    write_json(out / "theory_empirical_fmnist.json", _jsonable(curve))
    print(f"{'sigma':>8} {'accuracy':>9} {'tv >=':>7}")
    for s, a, t in zip(curve["sigma"], curve["accuracy"], curve["tv_lower"]):
        print(f"{s:>8.4g} {a:>9.4f} {t:>7.4f}")
    print(f"wrote theory_empirical_fmnist.png and .json to {out}")
    return 0


def _run_noise_detection(args: argparse.Namespace) -> int:
    from ambient_omni.cli._options import comma_floats
    from ambient_omni.theory.noise_detection import effective_pixels, ideal_crossing_ratio

    pixels, ratios = comma_floats(args.pixels, "--pixels"), comma_floats(args.ratios, "--ratios")
    try:
        print(f"ideal classifier on d constant pixels, tau {args.tau:g}: annotation sigma* / s (a lower bound)")
        for d in pixels:
            print(f"  d = {d:>8g}: sigma* / s = {ideal_crossing_ratio(d, args.tau):.3f}")
        for ratio in ratios:
            print(f"  annotation ratio {ratio:g} = the evidence of {effective_pixels(ratio, args.tau):.3g} pixels")
    except ValueError as err:
        raise AmbientError(str(err)) from None
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch on ``action``."""
    actions = {"crossing": _run_crossing, "checks": _run_checks, "empirical": _run_empirical,
               "noise-detection": _run_noise_detection}
    return actions[args.action](args)
