"""``ambient annotate noise|fixed|crossing|crops``: write annotation files (sigma_min / sigma_max per image)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ambient_omni.cli._options import require_positive
from ambient_omni.errors import AmbientError

DESCRIPTION = """\
Annotate a dataset folder (writes annotations.jsonl-format files; see docs/ARCHITECTURE.md).

  noise  sigma_min from a noise-conditional classifier (`ambient classifier train`): the first
         sigma at which the smoothed P(clean | x + sigma eps) exceeds --tau (0.45).
         --method dense: the authors' reference (2048 log-normal sigmas x 4 draws = 8192 calls
         per image, EMA span 32); --method fast (default): at most 512 calls per image on the
         same grid and the same noise draws (see annotate/curves.py). Clean images get 0 with
         no calls (unless --annotate-clean). Resumable (finished chunks in OUT.parts/) and
         shardable with torchrun. --compare N also runs dense on the first N annotated images
         and prints the agreement. Writes OUT, OUT-curves.png and OUT-hist.png.
  fixed  the single-annotation baseline: every corrupted or synthetic image gets --sigma-min,
         every ood:* image sigma_min = inf and --sigma-max, clean images 0.
  crossing  one sigma_min for every corrupted image: where the theory's bound for clean + corrupted data
         beats clean only (paper section 4), its bias measured as 2 acc - 1 from the noise classifier's
         balanced accuracy on the images it was trained without (`ambient classifier train --holdout 0.2`),
         for this set's clean and corrupted counts; inf (unused) if it never does.
  crops  sigma_max of ood:* images from crop classifiers (`ambient classifier train --kind crop`)
         and a locality map (`ambient locality`): the largest crop size whose crops still fool
         its classifier (mean P(target) > --threshold 0.25) -> sigma_max = map(C); OOD images get
         sigma_min = inf; clean images 0. Writes OUT and OUT-crops.png.
  quality  sigma_min from per-image quality scores, for data whose corruption is unknown (the paper's
         ImageNet recipe): the best --clean-fraction (0.1) by score are clean; the others get one
         --sigma-min (--rule fraction, the paper's) or a geometric map of their score quantile onto
         --sigma-range LO,HI (--rule quantile: the best of them LO, the worst HI). Scores (higher =
         better) from --scores FILE (CSV id,score[,patch_C...] or JSON Lines) or a built-in --scorer:
         sharpness (variance of the Laplacian), blockiness (JPEG grid), classifier (a noise
         classifier's P(clean) at --sigma). With --crop-map or --locality, each image's best C x C patch
         scores give sigma_max (the crops variant): the largest C where it scores at least the clean
         images' --patch-quantile -> sigma_max = map(C)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``annotate`` and its five actions."""
    parser = subparsers.add_parser("annotate", help="annotate sigma_min / sigma_max per image",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    n = actions.add_parser("noise", help="sigma_min from a noise classifier", description=DESCRIPTION, formatter_class=fmt)
    n.add_argument("--classifier", required=True, help="classifier run folder (uses RUN/model) or model folder")
    n.add_argument("--data", required=True, help="dataset folder")
    n.add_argument("--out", required=True, help="annotation file to write")
    n.add_argument("--method", choices=("fast", "dense"), default="fast")
    n.add_argument("--tau", type=float, default=0.45, help="threshold on smoothed P(clean) (default 0.5 - 0.05)")
    n.add_argument("--threshold-rule", choices=("paper", "relative"), default="paper",
                   help="paper: first crossing of --tau; relative: first crossing of the classifier's own "
                        "high-noise P(clean) minus (0.5 - tau), for a classifier that levels off below tau "
                        "(docs/ANNOTATIONS.md)")
    n.add_argument("--span", type=float, default=32, help="EMA span along the grid, alpha = 2/(span+1) (default 32)")
    n.add_argument("--grid-size", type=int, default=2048, help="sigmas in the log-normal grid (default 2048)")
    n.add_argument("--draws", type=int, default=4, help="noise draws per sigma (default 4)")
    n.add_argument("--p-mean", type=float, default=None, help="grid log-normal mean (default: the classifier's "
                   "training log-normal, -1.2 for classifiers trained with the defaults)")
    n.add_argument("--p-std", type=float, default=None, help="grid log-normal std (default: the classifier's, "
                   "1.2 for the defaults)")
    n.add_argument("--stride", type=int, default=96, help="fast: coarse stride on the grid (default 96)")
    n.add_argument("--window", type=int, default=48, help="fast: points per refinement round (default 48)")
    n.add_argument("--back", type=int, default=32, help="fast: window start before the crossing (default 32)")
    n.add_argument("--margin", type=float, default=0.01,
                   help="fast: also refine where the estimated smoothed curve comes within this of tau "
                        "before the estimated crossing (default 0.01; 0 = only at the crossing)")
    n.add_argument("--max-points", type=int, default=128, help="fast: grid points per image at most (default 128)")
    n.add_argument("--annotate-clean", action="store_true", help="run the classifier on clean images too")
    n.add_argument("--at-floor", choices=("keep", "exclude"), default="keep",
                   help="a corrupted image with P(clean) above tau already at the smallest grid sigma: keep it "
                   "there (the paper's rule: used at every level, as if clean; default) or exclude it "
                   "(sigma_min = inf), as one the classifier failed on")
    n.add_argument("--compare", type=int, default=0, metavar="N", help="also run dense on N images and print agreement")
    n.add_argument("--plot-images", type=int, default=4, metavar="K", help="images in the curve plot (default 4; 0: none)")
    n.add_argument("--chunk", type=int, default=64, help="images per resumable chunk (default 64)")
    n.add_argument("--batch", type=int, default=2048, help="classifier inputs per forward pass (default 2048)")
    n.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    n.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="run the classifier under bf16 autocast where the CPU has native bf16 or on CUDA (default; "
                   "float32 elsewhere): 3.3-3.5x the float32 calls/s on this CPU, and its sigma_min agree with the "
                   "float32 dense reference as well as the float32 search's do (docs/RESULTS.md section 4); "
                   "--no-bf16 for the float32 path that the benchmark cells use")
    n.add_argument("--compile", action="store_true", help="run the classifier through torch.compile (with bf16: "
                   "4.5-5.2x the float32 calls/s here, after a compile of some seconds per batch size)")
    n.add_argument("--device", help="cpu, cuda, ... (default: $AMBIENT_DEVICE, else CUDA if available)")
    n.add_argument("--no-progress", action="store_true")
    n.set_defaults(func=run_noise)

    f = actions.add_parser("fixed", help="one sigma_min for every corrupted image", description=DESCRIPTION, formatter_class=fmt)
    f.add_argument("--data", required=True, help="dataset folder")
    f.add_argument("--sigma-min", type=float, required=True, help="sigma_min of every corrupted or synthetic image")
    f.add_argument("--sigma-max", type=float, default=0.0, help="sigma_max of every ood:* image (default 0)")
    f.add_argument("--out", required=True, help="annotation file to write")
    f.set_defaults(func=run_fixed)

    x = actions.add_parser("crossing", help="one sigma_min from the theory's crossing, measured on held-out images",
                           description=DESCRIPTION, formatter_class=fmt)
    x.add_argument("--classifier", required=True, action="append",
                   help="noise classifier run or model folder trained with --holdout; or repeat it once for every "
                        "fold of a cross-fitting partition (trained with --folds K --fold k), pooled")
    x.add_argument("--data", required=True, help="dataset folder the classifier was trained on")
    x.add_argument("--out", required=True, help="annotation file to write")
    x.add_argument("--draws", type=int, default=16, help="noise draws per image and sigma (default 16)")
    x.add_argument("--kde-bound", choices=("paper", "explicit"), default="paper",
                   help="Theorem 4.1 bound of the comparison (default paper; see `ambient theory --help`)")
    x.add_argument("--confidence", type=float, metavar="Q",
                   help="conservative: replace each class's held-out accuracy by its one-sided Wilson upper bound at "
                        "level Q (e.g. 0.9) for the number of held-out images, which can only raise sigma_min "
                        "(for small clean sets; default: the measured accuracy)")
    x.add_argument("--informative", action="store_true",
                   help="raise a vacuous crossing (the clean-only bound trivial, 1, there) to the smallest sigma where "
                        "the clean-only bound says something (below 1)")
    x.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    x.set_defaults(func=run_crossing)

    c = actions.add_parser("crops", help="sigma_max of OOD images from crop classifiers", description=DESCRIPTION,
                           formatter_class=fmt)
    c.add_argument("--classifiers", required=True, help="comma-separated crop classifier run/model folders")
    c.add_argument("--locality", required=True, help="JSON from `ambient locality` (crop size -> sigma_max)")
    c.add_argument("--data", required=True, help="dataset folder (its ood:* images are annotated)")
    c.add_argument("--out", required=True, help="annotation file to write")
    c.add_argument("--threshold", type=float, default=0.25, help="mean P(target) that counts as fooled (default 0.25)")
    c.add_argument("--sigma", type=float, default=0.05, help="noise level of the crops (default 0.05)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--batch", type=int, default=1024)
    c.add_argument("--device", help="cpu, cuda, ...")
    c.set_defaults(func=run_crops)


    q = actions.add_parser("quality", help="sigma_min (and sigma_max) from per-image quality scores",
                           description=DESCRIPTION, formatter_class=fmt)
    q.add_argument("--data", required=True, help="dataset folder (every image is scored)")
    q.add_argument("--out", required=True, help="annotation file to write")
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--scores", help="score file: CSV (id,score[,patch_C...]) or JSON Lines (.jsonl)")
    source.add_argument("--scorer", choices=("sharpness", "blockiness", "classifier"), help="built-in scorer")
    q.add_argument("--classifier", help="noise classifier run or model folder (--scorer classifier)")
    q.add_argument("--sigma", type=float, default=0.2, help="--scorer classifier: noise level of P(clean) (default 0.2)")
    q.add_argument("--draws", type=int, default=4, help="--scorer classifier: noise draws per image (default 4)")
    q.add_argument("--seed", type=int, default=0, help="--scorer classifier: noise seed (default 0)")
    q.add_argument("--clean-fraction", type=float, default=0.1,
                   help="share of the images, best scores first, treated as clean (default 0.1, the paper's)")
    q.add_argument("--rule", choices=("fraction", "quantile"), default="fraction",
                   help="fraction: one --sigma-min for the rest (the paper's); quantile: --sigma-range by quantile")
    q.add_argument("--sigma-min", type=float, help="--rule fraction: sigma_min of every image that is not clean")
    q.add_argument("--sigma-range", help="--rule quantile: LO,HI (the best non-clean image LO, the worst HI)")
    crops = q.add_mutually_exclusive_group()
    crops.add_argument("--crop-map", help="crops variant: crop size -> sigma_max, e.g. 4:0.1,8:0.175,16:0.2")
    crops.add_argument("--locality", help="crops variant: the crop map from an `ambient locality` JSON")
    q.add_argument("--patch-quantile", type=float, default=0.5,
                   help="crops variant: quantile of the clean images' best-patch scores a patch must reach "
                        "(default 0.5)")
    q.add_argument("--write-scores", help="also write the scores (JSON Lines, the --scores format) to this file")
    q.set_defaults(func=run_quality)


def _write_table(out: str, table: Any) -> None:
    from ambient_omni.data.annotations import write_annotations

    write_annotations(out, table)
    _print_written(out, table)


def _print_written(out: str, table: Any) -> None:
    """``wrote OUT`` and the whole summary of the table, as text (``ambient annotations summary`` adds more)."""
    from ambient_omni.cli.annotations import format_summary
    from ambient_omni.data.annotation_ops import summarize

    print(f"wrote {out}:")
    print(format_summary(summarize(table)))


def run_fixed(args: argparse.Namespace) -> int:
    """The single-annotation baseline."""
    from ambient_omni.data.annotations import AnnotationTable
    from ambient_omni.data.dataset_folder import load_dataset

    data = load_dataset(args.data)
    table = AnnotationTable.fixed(data.ids.numpy(), data.provenance, args.sigma_min, args.sigma_max, data.sha256)
    _write_table(args.out, table)
    return 0


def run_crossing(args: argparse.Namespace) -> int:
    """The crossing rule (:func:`~ambient_omni.annotate.crossing_rule.annotate_crossing`), with its curve."""
    import math

    from ambient_omni.annotate.crossing_rule import annotate_crossing
    from ambient_omni.data.dataset_folder import load_dataset

    require_positive("--draws", args.draws)
    table, rule = annotate_crossing(args.classifier, load_dataset(args.data), args.draws, args.seed, args.kde_bound,
                                    args.confidence, args.informative)
    bound = f" (Wilson upper bounds at {args.confidence:g})" if args.confidence is not None else ""
    pooled = f", {rule.classifiers} cross-fitted classifiers pooled" if rule.classifiers > 1 else ""
    print(f"held-out balanced accuracy{bound} on {rule.held_out[0]} clean and {rule.held_out[1]} corrupted images"
          f"{pooled}: " + ", ".join(f"{a:.3f} at {s:.3g}" for s, a in zip(rule.sigmas, rule.accuracies)))
    verdict = (f"mixed data never has the better bound: the corrupted images are not used (sigma_min = inf)"
               if math.isinf(rule.sigma_min) else f"sigma_min = {rule.sigma_min:.4g} for every corrupted image "
               f"({rule.status}{', vacuous: the clean-only bound is trivial there' if rule.vacuous else ''})")
    if rule.vacuous_sigma is not None:
        verdict += f"; raised from the vacuous crossing at {rule.vacuous_sigma:.4g}"
    print(f"{rule.n_clean} clean, {rule.n_corrupted} corrupted: {verdict}")
    _write_table(args.out, table)
    return 0


def _noise_config(args: argparse.Namespace, method: str) -> Any:
    from ambient_omni.annotate.noise import NoiseAnnotationConfig, training_lognormal

    p_mean, p_std = training_lognormal(args.classifier)
    p_mean = p_mean if args.p_mean is None else args.p_mean
    p_std = p_std if args.p_std is None else args.p_std
    return NoiseAnnotationConfig(method=method, tau=args.tau, threshold_rule=args.threshold_rule,
                                 span=args.span, grid_size=args.grid_size,
                                 draws=args.draws, p_mean=p_mean, p_std=p_std, seed=args.seed,
                                 stride=args.stride, window=args.window, back=args.back,
                                 max_points=args.max_points, margin=args.margin,
                                 annotate_clean=args.annotate_clean, at_floor=args.at_floor)


def run_noise(args: argparse.Namespace) -> int:
    """Annotate this rank's chunks; with several ranks wait for all, then rank 0 merges and plots."""
    from ambient_omni.annotate import noise
    from ambient_omni.data.dataset_folder import load_dataset
    from ambient_omni.training.distributed import init_distributed

    require_positive("--chunk", args.chunk)
    require_positive("--batch", args.batch)
    cfg = _noise_config(args, args.method)
    dist = init_distributed(args.device)
    data = load_dataset(args.data)
    table = noise.annotate_dataset(args.classifier, data, args.out, cfg, chunk=args.chunk, batch_size=args.batch,
                                   device=dist.device, rank=dist.rank, world_size=dist.world_size,
                                   progress=not args.no_progress and dist.is_main, bf16=args.bf16,
                                   compile=args.compile)
    if table is None:
        return 0
    _print_written(args.out, table)
    pictures = noise.write_pictures(args.out, args.classifier, data, table, cfg, args.plot_images, args.batch,
                                    dist.device)
    print("pictures: " + ", ".join(map(str, pictures)))
    if args.compare:
        from ambient_omni.training.checkpoint import load_model, model_folder

        _compare(args, noise.classifier_prob_fn(load_model(model_folder(args.classifier)), dist.device), data, table)
    return 0


def _compare(args: argparse.Namespace, prob: Any, data: Any, table: Any) -> None:
    """Dense on the first ``--compare`` annotated images: agreement and calls per image."""
    import numpy as np

    from ambient_omni.annotate import curves, noise

    cfg = _noise_config(args, "dense")
    ids = noise.targets(data.provenance, cfg.annotate_clean)[: args.compare]
    dense, dense_calls = noise.annotate_images(prob, data.images[ids], ids, cfg, args.batch)
    stats = curves.log_ratio_stats(table.sigma_min[ids], dense)
    calls = np.array([table.extra[i]["classifier_calls"] for i in ids])
    print(f"{args.method} vs dense on {len(ids)} images: median |log ratio| {stats['median_abs_log_ratio']:.4f}, "
          f"95th percentile {stats['p95_abs_log_ratio']:.4f}, max {stats['max_abs_log_ratio']:.4f}; "
          f"classifier calls per image {calls.mean():.0f} (max {calls.max()}) vs {int(dense_calls[0])} "
          f"(ratio 1/{dense_calls[0] / calls.mean():.1f})")


def run_crops(args: argparse.Namespace) -> int:
    """Crop-classifier sigma_max for the ood:* images (:func:`~ambient_omni.annotate.crops.annotate_dataset`)."""
    from ambient_omni.annotate import crops
    from ambient_omni.data.dataset_folder import load_dataset

    classifiers = [path.strip() for path in args.classifiers.split(",")]
    table = crops.annotate_dataset(classifiers, args.locality, load_dataset(args.data), args.out, sigma=args.sigma,
                                   threshold=args.threshold, seed=args.seed, batch_size=args.batch, device=args.device)
    _print_written(args.out, table)
    print(f"picture: {Path(args.out).with_suffix('')}-crops.png")
    return 0


def _crop_map(args: argparse.Namespace) -> dict[int, float] | None:
    """The crops variant's map from --crop-map or --locality, None without either."""
    from ambient_omni.annotate.quality import parse_crop_map

    if args.crop_map:
        return parse_crop_map(args.crop_map)
    if args.locality:
        from ambient_omni.annotate.locality import read_crop_map
        from ambient_omni.files import read_json

        return read_crop_map(read_json(args.locality), args.locality)
    return None


def run_quality(args: argparse.Namespace) -> int:
    """Quality-score annotation (:func:`~ambient_omni.annotate.quality.quality_table`)."""
    from ambient_omni.annotate import quality
    from ambient_omni.cli._options import comma_floats
    from ambient_omni.data.dataset_folder import load_dataset

    if args.rule == "quantile" and args.sigma_range is None:
        raise AmbientError("--rule quantile needs --sigma-range LO,HI")
    if args.rule == "fraction" and args.sigma_min is None:
        raise AmbientError("--rule fraction needs --sigma-min (the paper's latent recipe: 0.2)")
    sigma_range = comma_floats(args.sigma_range, "--sigma-range") if args.sigma_range else None
    if sigma_range is not None and len(sigma_range) != 2:
        raise AmbientError(f"--sigma-range {args.sigma_range!r}: give two numbers, LO,HI")
    crop_map = _crop_map(args)
    data = load_dataset(args.data)
    if args.scores:
        scores = quality.read_scores(args.scores, len(data))
    else:
        require_positive("--draws", args.draws)
        scores = quality.dataset_scores(data, args.scorer, sorted(crop_map) if crop_map else (), args.classifier,
                                        args.sigma, args.draws, args.seed)
    if args.write_scores:
        quality.write_scores(args.write_scores, scores)
        print(f"wrote {args.write_scores}")
    table = quality.quality_table(scores, clean_fraction=args.clean_fraction, rule=args.rule, sigma_min=args.sigma_min,
                                  sigma_range=tuple(sigma_range) if sigma_range else None, crop_map=crop_map,
                                  patch_quantile=args.patch_quantile, provenance=data.provenance,
                                  dataset_sha256=data.sha256)
    _write_table(args.out, table)
    return 0
