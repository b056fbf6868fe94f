"""sigma_min annotation with a noise-conditional classifier (PAPER 2.3): dense reference and fast search,
batched across images, resumable, shardable across ranks.

Noise (common random numbers): the ``D`` draws at grid point ``j`` of image ``id`` are
``eps = randn(D, C, H, W)`` from ``torch.Generator(hash(seed, "annotate-noise", id, j))``, so an
image's curve does not depend on the batch, the rank, the chunking or the method: the fast search
evaluates exactly the values the dense procedure would at the points it visits.

Resume/sharding: :func:`run_chunks` annotates the images in fixed chunks, each written as a part file
(:mod:`ambient_omni.annotate.parts`), so a restart repeats no work, and :func:`merge_parts` gives the
same table for any number of ranks.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ambient_omni.annotate import curves, parts
from ambient_omni.data.annotations import AnnotationTable
from ambient_omni.device import uses_bf16
from ambient_omni.errors import AmbientError
from ambient_omni.seeding import torch_seeds

ProbFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``prob(x (B,C,H,W), sigma (B,)) -> P(clean | x) (B,)``."""


AT_FLOOR = ("keep", "exclude")
"""What becomes of a corrupted image whose smoothed P(clean) is above tau already at the grid's smallest
sigma. ``keep`` (the paper's first-crossing rule): sigma_min = that sigma, i.e. the image trains every
level as if clean. ``exclude``: sigma_min = inf (not used): the image is known to be corrupted, so a
classifier that cannot tell it from clean images at ANY noise level has failed on it. On 30 clean +
9,970 JPEG-10 images 5% of the images were such failures, 19 times as many as the clean images
(docs/RESULTS.md section 6)."""


RULES = ("paper", "relative")
"""How the threshold is set (``NoiseAnnotationConfig.threshold_rule``). ``paper``: sigma_min = the first grid sigma where the smoothed P(clean) exceeds
``tau`` (0.45 = 0.5 - 0.05: a balanced classifier's P(clean) tends to 0.5 where noise hides the corruption).
``relative``: the same first crossing of ``tau_eff = plateau - (0.5 - tau)``, where ``plateau`` is the
classifier's own high-noise level, the median over (up to 256 of) the annotated images of their
draw-averaged P(clean) at the grid's largest ``PLATEAU_POINTS`` sigmas (:func:`classifier_plateau`). A
classifier whose P(clean) levels off below tau (e.g. 0.39, seen for blur 1.2 with 42 clean images) leaves
most images never crossing under the paper's rule, so unusable at every level; the relative rule keeps the
paper's 0.05 margin below wherever the classifier actually levels off, and equals the paper's rule when the
plateau is 0.5."""
PLATEAU_POINTS = 16
PLATEAU_IMAGES = 256


@dataclass(frozen=True)
class NoiseAnnotationConfig:
    """Settings of one annotation run (all of them change the result; stored with the parts).
    ``at_floor``: see :data:`AT_FLOOR`."""

    method: str = "fast"
    tau: float = curves.TAU
    span: float = curves.SPAN
    grid_size: int = curves.GRID_SIZE
    draws: int = curves.DRAWS
    p_mean: float = curves.P_MEAN
    p_std: float = curves.P_STD
    grid_seed: int = 0
    seed: int = 0
    stride: int = curves.FastPlan.stride
    window: int = curves.FastPlan.window
    back: int = curves.FastPlan.back
    max_points: int = curves.FastPlan.max_points
    margin: float = curves.FastPlan.margin
    annotate_clean: bool = False
    at_floor: str = "keep"
    threshold_rule: str = "paper"

    def __post_init__(self) -> None:
        if self.method not in ("dense", "fast"):
            raise AmbientError(f"--method must be dense or fast, got {self.method!r}")
        if self.threshold_rule not in RULES:
            raise AmbientError(f"--threshold-rule must be one of {', '.join(RULES)}, got {self.threshold_rule!r}")
        if self.at_floor not in AT_FLOOR:
            raise AmbientError(f"--at-floor must be one of {', '.join(AT_FLOOR)}, got {self.at_floor!r}")
        if not 0.0 < self.tau < 1.0 or self.draws < 1 or not self.span >= 1:  # NaN fails >=
            raise AmbientError(f"need 0 < --tau < 1, --draws >= 1, --span >= 1 (got {self.tau}, {self.draws}, {self.span})")
        if self.method == "fast":
            self.plan()

    def plan(self) -> curves.FastPlan:
        """The fast search geometry (validated)."""
        try:
            return curves.FastPlan(self.grid_size, self.stride, self.window, self.back, self.max_points,
                                   self.margin)
        except ValueError as err:
            raise AmbientError(f"fast search settings: {err}") from None

    def grid(self) -> np.ndarray:
        """The sorted log-normal sigma grid shared by both methods."""
        return curves.lognormal_grid(self.grid_size, self.p_mean, self.p_std, self.grid_seed)


def classifier_prob_fn(model: torch.nn.Module, device: torch.device, bf16: bool = False, compile: bool = False,
                       batch: int = 2048) -> ProbFn:
    """``sigmoid(model(x, sigma))`` on ``device`` without gradients, returned on the CPU; ``bf16`` / ``compile``
    run it through :class:`~ambient_omni.device.InferenceForward` (``batch`` rows per network call)."""
    from ambient_omni.device import InferenceForward

    forward = InferenceForward(model, device, bf16=bf16, compile=compile, batch=batch)

    def prob(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(forward(x, sigma)).cpu()

    prob.warm_up = forward.warm_up  # type: ignore[attr-defined]
    return prob


def classifier_plateau(prob: ProbFn, images: torch.Tensor, ids: np.ndarray, cfg: NoiseAnnotationConfig,
                       batch_size: int = 2048) -> float:
    """The classifier's high-noise level (:data:`RULES`): median over up to ``PLATEAU_IMAGES`` of the images
    (an evenly spaced subset, in id order) of the draw-averaged P(clean) over the grid's largest
    ``PLATEAU_POINTS`` sigmas, with the annotation's own noise draws."""
    if len(ids) == 0:
        raise AmbientError("relative rule: there are no images to annotate, so no high-noise level to measure")
    pick = np.unique(np.linspace(0, len(ids) - 1, min(len(ids), PLATEAU_IMAGES)).round().astype(np.int64))
    top = np.arange(cfg.grid_size - min(PLATEAU_POINTS, cfg.grid_size), cfg.grid_size)
    values = measure(prob, images[torch.as_tensor(pick)], ids[pick], [top] * len(pick), cfg.grid(), cfg, batch_size)
    return float(np.median([v.mean() for v in values]))


def relative_config(cfg: NoiseAnnotationConfig, plateau: float) -> NoiseAnnotationConfig:
    """``cfg`` with ``tau`` replaced by ``plateau - (0.5 - tau)`` (the relative rule; :data:`RULES`)."""
    tau = plateau - (0.5 - cfg.tau)
    if not 0.0 < tau < 1.0:
        raise AmbientError(f"relative rule: the classifier's high-noise P(clean) is {plateau:.3f}, so the threshold "
                           f"{plateau:.3f} - {0.5 - cfg.tau:.3f} = {tau:.3f} is outside (0, 1): the classifier is "
                           "not usable for annotation")
    return replace(cfg, tau=float(tau))


def point_noise(seed: int, image_id: int, points: np.ndarray, draws: int, shape: Sequence[int]) -> torch.Tensor:
    """Noise ``(len(points), draws, *shape)`` of one image at grid ``points`` (see module doc)."""
    seeds = torch_seeds(seed, "annotate-noise", int(image_id), np.asarray(points, dtype=np.int64))
    gen = torch.Generator()
    return torch.stack([torch.randn((draws, *shape), generator=gen.manual_seed(s)) for s in seeds])


def measure(
    prob: ProbFn,
    images: torch.Tensor,
    ids: np.ndarray,
    points: Sequence[np.ndarray],
    sigmas: np.ndarray,
    cfg: NoiseAnnotationConfig,
    batch_size: int,
) -> list[np.ndarray]:
    """Draw-averaged ``p`` of image ``k`` at grid indices ``points[k]``: ``mean_d prob(y_k + sigma_j eps_jd)``."""
    rows = [(k, pos, int(j)) for k, pts in enumerate(points) for pos, j in enumerate(pts)]
    out = [np.empty(len(pts)) for pts in points]
    per_batch = max(1, batch_size // cfg.draws)
    shape = tuple(images.shape[1:])
    for start in range(0, len(rows), per_batch):
        chunk = rows[start : start + per_batch]
        s = torch.tensor([sigmas[j] for _, _, j in chunk], dtype=torch.float32)
        eps = torch.cat([point_noise(cfg.seed, int(ids[k]), np.array([j for _, _, j in group]), cfg.draws, shape)
                         for k, group in itertools.groupby(chunk, key=lambda r: r[0])])
        x = images[[k for k, _, _ in chunk]][:, None] + s[:, None, None, None, None] * eps
        p = prob(x.flatten(0, 1), s.repeat_interleave(cfg.draws)).double().reshape(-1, cfg.draws).mean(1).numpy()
        for (k, pos, _), v in zip(chunk, p):
            out[k][pos] = v
    return out


def _fast_chunk(prob: ProbFn, images: torch.Tensor, ids: np.ndarray, sigmas: np.ndarray,
                cfg: NoiseAnnotationConfig, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    plan = cfg.plan()
    n = len(ids)
    known = np.tile(plan.initial_mask(), (n, 1))
    values = np.zeros(known.shape)
    todo = [np.flatnonzero(known[k]) for k in range(n)]
    while any(t.size for t in todo):
        for k, v in enumerate(measure(prob, images, ids, todo, sigmas, cfg, batch_size)):
            values[k, todo[k]] = v
            known[k, todo[k]] = True
        todo = [curves.next_window(plan, known[k], values[k], cfg.tau, cfg.span) for k in range(n)]
    idx = [curves.estimate_crossing(known[k], values[k], cfg.tau, cfg.span) for k in range(n)]
    return sigmas[idx], known.sum(1) * cfg.draws


def annotate_images(prob: ProbFn, images: torch.Tensor, ids: np.ndarray, cfg: NoiseAnnotationConfig,
                    batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """sigma_min and classifier calls per image for a chunk of (non-clean) images."""
    sigmas = cfg.grid()
    if cfg.method == "dense":
        every = np.arange(cfg.grid_size)
        p = np.stack(measure(prob, images, ids, [every] * len(ids), sigmas, cfg, batch_size))
        return curves.dense_sigma_min(p, sigmas, cfg.tau, cfg.span), np.full(len(ids), cfg.grid_size * cfg.draws)
    return _fast_chunk(prob, images, ids, sigmas, cfg, batch_size)


def dense_curves(prob: ProbFn, images: torch.Tensor, ids: np.ndarray, cfg: NoiseAnnotationConfig,
                 batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The full raw curves ``(n, G)`` (draws averaged) and the grid; for plots and the agreement study."""
    sigmas = cfg.grid()
    every = np.arange(cfg.grid_size)
    return np.stack(measure(prob, images, ids, [every] * len(ids), sigmas, cfg, batch_size)), sigmas


# ----------------------------------------------------------------------------- resumable driver

FLOOR_WARNING_SHARE = 0.1
"""``annotate_dataset`` (with ``at_floor = "keep"``) warns when more than this share of the annotated images,
or more images than there are clean ones, sit at the grid's smallest sigma."""


def edge_shares(sigma_min: np.ndarray, grid: np.ndarray) -> dict[str, float]:
    """Shares of annotations at the ends of ``grid``: ``at_grid_min`` (P(clean) above tau already at the
    smallest sigma: the image is used at every level, as if clean) and ``never_crossed`` (never above tau:
    the largest sigma, used almost never). Both ends are where a classifier extrapolates beyond most of
    its training sigmas; a large ``at_grid_min`` share is the unsafe one. ``inf`` (left out, e.g. by
    ``--at-floor exclude``) counts as neither."""
    values = np.asarray(sigma_min, dtype=float)
    if values.size == 0:
        return {"at_grid_min": 0.0, "never_crossed": 0.0}
    return {"at_grid_min": float(np.mean(_at_grid_min(values, grid))),
            "never_crossed": float(np.mean(np.isfinite(values) & (values >= grid.max() * (1 - 1e-9))))}


def _at_grid_min(sigma_min: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``sigma_min`` equal to the grid's smallest sigma (up to float rounding)."""
    return np.asarray(sigma_min) <= grid.min() * (1 + 1e-9)


def at_floor_mask(sigma_min: np.ndarray, provenance: Sequence[str], annotated: np.ndarray,
                  grid: np.ndarray) -> np.ndarray:
    """Annotated non-clean images whose sigma_min is the grid's smallest sigma (P(clean) above tau from the
    start: see :data:`AT_FLOOR`)."""
    corrupted = np.array([p != "clean" for p in provenance], dtype=bool)
    return annotated & corrupted & _at_grid_min(sigma_min, grid)


def targets(provenance: Sequence[str], annotate_clean: bool) -> np.ndarray:
    """Ids to annotate with the classifier: every non-clean image (and clean ones if asked)."""
    return np.array([i for i, p in enumerate(provenance) if annotate_clean or p != "clean"], dtype=np.int64)


def run_chunks(prob: ProbFn, images: torch.Tensor, provenance: Sequence[str], cfg: NoiseAnnotationConfig,
               out: str | os.PathLike, settings: dict[str, Any], chunk: int = 64, rank: int = 0,
               world_size: int = 1, batch_size: int = 1024, progress: bool = True) -> int:
    """Annotate this rank's unfinished chunks (:func:`~ambient_omni.annotate.parts.run_parts`; the parts'
    settings are ``settings``, ``cfg``, ``chunk`` and the image count); returns how many chunks it computed now."""
    recorded = {k: v for k, v in asdict(cfg).items() if not (k == "threshold_rule" and v == "paper")}  # as before the rules

    def annotate(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return annotate_images(prob, images[torch.as_tensor(ids)], ids, cfg, batch_size)

    return parts.run_parts(annotate, targets(provenance, cfg.annotate_clean), out,
                           {**settings, **recorded, "chunk": chunk, "n": len(provenance)}, chunk, rank, world_size,
                           progress, desc=f"annotate {cfg.method}")


def merge_parts(out: str | os.PathLike, provenance: Sequence[str], cfg: NoiseAnnotationConfig,
                classifier: str, dataset_sha256: str | None, chunk: int = 64) -> AnnotationTable:
    """Assemble the annotation table from the chunk files (an error if any chunk is missing)."""
    todo_ids = targets(provenance, cfg.annotate_clean)
    n = len(provenance)
    sigma_min, calls = parts.read_parts(out, todo_ids, n, chunk)
    annotated = np.zeros(n, dtype=bool)
    annotated[todo_ids] = True
    floor = at_floor_mask(sigma_min, provenance, annotated, cfg.grid())
    if cfg.at_floor == "exclude":
        sigma_min[floor] = np.inf
    method = [f"classifier-{cfg.method}" if a else "clean" for a in annotated]
    extra = [{"provenance": str(p), "classifier_calls": int(c), **({"at_floor": True} if f else {})}
             for p, c, f in zip(provenance, calls, floor)]
    return AnnotationTable(
        np.arange(n), sigma_min, np.zeros(n), method,
        [classifier if a else None for a in annotated], [cfg.tau if a else None for a in annotated], extra,
        dataset_n=n, dataset_sha256=dataset_sha256,
        created_by={"rule": f"classifier-{cfg.method}", "classifier": classifier, **asdict(cfg)},
    )


def _warn_never_crossed(out: str | os.PathLike, table: AnnotationTable, provenance: Sequence[str],
                        cfg: NoiseAnnotationConfig) -> None:
    """Warn when many annotated images never crossed the threshold (sigma_min = the grid's top: used only
    above it, i.e. almost never), naming the relative rule when the paper's rule was used."""
    annotated = targets(provenance, cfg.annotate_clean)
    if not len(annotated):
        return
    top = cfg.grid().max()
    share = edge_shares(table.sigma_min[annotated], cfg.grid())["never_crossed"]
    if share > FLOOR_WARNING_SHARE:
        hint = (" If the classifier's P(clean) levels off below tau at high noise, --threshold-rule relative "
                "sets the threshold from its own high-noise level." if cfg.threshold_rule == "paper" else "")
        warnings.warn(f"{out}: {share:.0%} of the annotated images never had their smoothed P(clean) cross "
                      f"tau = {cfg.tau:.3g} on the grid (sigma_min = its largest sigma, {top:.3g}), "
                      f"so they train almost no noise level.{hint}", stacklevel=3)


def training_lognormal(classifier: str | os.PathLike) -> tuple[float, float]:
    """``(p_mean, p_std)`` of the log-normal the classifier at ``classifier`` (run or model folder) was
    trained on; the annotation grid should be drawn from it (the classifier's P(clean) outside its training
    sigmas is an extrapolation: a noise-0.05 classifier trained at ln sigma ~ N(-3.5, 1) kept P(clean) below
    tau up to sigma 12.6 for a quarter of its images). Classifiers without the record: the defaults.
    A crop classifier is an error (it does not estimate sigma_min); a noise classifier trained with a
    ``sigma_cap`` gets a warning, as the grid's upper tail lies above everything it saw."""
    from ambient_omni.annotate.classifier_task import require_noise_classifier
    from ambient_omni.training.checkpoint import model_folder, read_model_config

    folder = model_folder(classifier)
    settings = require_noise_classifier(read_model_config(folder), str(folder))
    if settings.get("sigma_cap") is not None:
        warnings.warn(f"{folder}: trained only at sigma <= {settings['sigma_cap']:g}; the annotation grid goes "
                      "beyond it, where its P(clean) is an extrapolation", stacklevel=2)
    return float(settings.get("p_mean", curves.P_MEAN)), float(settings.get("p_std", curves.P_STD))


def annotate_dataset(classifier: str | os.PathLike, data: Any, out: str | os.PathLike, cfg: NoiseAnnotationConfig,
                     *, chunk: int = 64, batch_size: int = 2048, device: torch.device | None = None, rank: int = 0,
                     world_size: int = 1, progress: bool = True, bf16: bool = False,
                     compile: bool = False) -> AnnotationTable | None:
    """Annotate ``data`` (a :class:`~ambient_omni.data.dataset_folder.MixedDataset`) with the classifier at
    ``classifier`` (run or model folder) and write the annotation file ``out``. ``bf16`` / ``compile``: the
    classifier's inference path (:func:`classifier_prob_fn`); it is part of the resumable parts' settings,
    so parts made by another path are never mixed in, and the file's ``created_by["inference"]`` records it.

    Every rank computes its chunks (:func:`run_chunks`); with ``world_size > 1`` the caller must have
    initialized the process group (ranks meet at a barrier). Rank 0 merges the chunks, writes ``out``
    and returns the table; other ranks return ``None``.
    """
    from ambient_omni.annotate.classifier_task import require_noise_classifier
    from ambient_omni.data.annotations import write_annotations
    from ambient_omni.training.checkpoint import load_model, model_folder, read_model_config
    from ambient_omni.training.distributed import barrier

    folder = model_folder(classifier)
    model_config = read_model_config(folder)
    require_noise_classifier(model_config, str(folder))
    device = device or torch.device("cpu")
    prob = classifier_prob_fn(load_model(folder), device, bf16=bf16, compile=compile)
    settings = {"classifier": str(folder), "dataset_sha256": data.sha256}
    if model_config.get("sha256"):  # parts are keyed on the weights, not only the folder's name
        settings["classifier_sha256"] = model_config["sha256"]
    inference = {"bf16": uses_bf16(device, bf16), "compile": compile}
    if any(inference.values()):  # the float32 eager path keeps the settings earlier parts were written with
        settings["inference"] = inference
    plateau = None
    if cfg.threshold_rule == "relative":  # every rank measures the same plateau (same images, same draws)
        ids = targets(data.provenance, cfg.annotate_clean)
        plateau = classifier_plateau(prob, data.images[torch.as_tensor(ids)], ids, cfg, batch_size)
        cfg = relative_config(cfg, plateau)
        settings["plateau"] = plateau
    run_chunks(prob, data.images, data.provenance, cfg, out, settings, chunk, rank, world_size, batch_size, progress)
    if world_size > 1:
        barrier()
    if rank != 0:
        return None
    table = merge_parts(out, data.provenance, cfg, str(folder), data.sha256, chunk)
    table.created_by["inference"] = inference
    if plateau is not None:
        table.created_by["plateau"] = plateau
    write_annotations(out, table)
    _warn_never_crossed(out, table, data.provenance, cfg)
    floor = sum(bool(e.get("at_floor")) for e in table.extra)
    clean = sum(p == "clean" for p in data.provenance)
    annotated = len(targets(data.provenance, cfg.annotate_clean))
    if cfg.at_floor == "keep" and floor and (floor > FLOOR_WARNING_SHARE * annotated or floor > clean):
        warnings.warn(
            f"{out}: {floor} corrupted images ({floor / max(annotated, 1):.0%} of the annotated, against {clean} "
            f"clean images) have P(clean) above tau already at the smallest grid sigma ({cfg.grid().min():.3g}), "
            "so they will train every noise level as if clean. The classifier failed on them (it may also "
            "extrapolate wrongly far below its training sigmas, docs/RESULTS.md sections 3 and 6): check its "
            "P(clean) curves (OUT-curves.png), or leave them out with --at-floor exclude.", stacklevel=2)
    return table


def write_pictures(out: str | os.PathLike, classifier: str | os.PathLike, data: Any, table: AnnotationTable,
                   cfg: NoiseAnnotationConfig, plot_images: int = 4, batch_size: int = 2048,
                   device: torch.device | None = None) -> list[Path]:
    """``OUT-hist.png`` (sigma_min histogram) and ``OUT-curves.png`` (dense P(clean) curves of the first
    ``plot_images`` annotated images with the threshold and their sigma_min: the paper's Figure 2)."""
    from ambient_omni.annotate import plots
    from ambient_omni.training.checkpoint import load_model, model_folder

    stem = str(Path(out).with_suffix(""))
    if cfg.threshold_rule == "relative" and "plateau" in table.created_by:  # draw the threshold that was used
        cfg = relative_config(cfg, float(table.created_by["plateau"]))
    done = targets(data.provenance, cfg.annotate_clean)
    written = [Path(f"{stem}-hist.png")]
    plots.plot_histogram(written[0], table.sigma_min[done])
    if plot_images and len(done):
        prob = classifier_prob_fn(load_model(model_folder(classifier)), device or torch.device("cpu"))
        ids = done[:plot_images]
        raw, sigmas = dense_curves(prob, data.images[ids], ids, cfg, batch_size)
        written.append(Path(f"{stem}-curves.png"))
        plots.plot_curves(written[1], sigmas, raw, table.sigma_min[ids],
                          [f"id {i} ({data.provenance[i]})" for i in ids], cfg.tau, cfg.span)
    return written
