"""``ambient combine``: concatenate clean, synthetic, out-of-distribution and existing dataset parts."""

from __future__ import annotations

import argparse
import re
import shlex

DESCRIPTION = """\
Build one dataset folder from several parts, in the order given. Each --part is
KIND:SOURCE[@model=NAME][@count=K|@fraction=F], where KIND is
  clean      images from SOURCE, provenance "clean"
  synthetic  a generator's images, provenance "synthetic:NAME" from @model=NAME (required);
             low-quality data like corrupted images (high noise only; `ambient annotate
             fixed` gives them --sigma-min). SOURCE is the folder `ambient sample --out`
             wrote or its samples.npz (class labels kept), or any image source
  ood        images from SOURCE, provenance "ood:SOURCE" (out-of-distribution data,
             used at low noise only)
  dataset    an existing dataset folder (from ambient corrupt/combine); its images keep
             their own provenance
@count / @fraction keep a seeded random subset of that part. SOURCE is any source spec
of `ambient corrupt` (with @class=... and @mode=... suffixes, written before @model,
@count and @fraction). All parts need one image shape. The same parts and seed give
byte-identical files."""

EPILOG = """\
example (the out-of-distribution setting: few Sneakers + every Sandal):
  ambient combine --part clean:fashion-mnist:train@class=Sneaker@count=100 \\
      --part ood:fashion-mnist:train@class=Sandal --seed 0 --out data/sneaker-sandal

example (100 clean images + 2,000 samples of a trained model as synthetic data):
  ambient sample --model runs/clean --seeds 0-1999 --out runs/clean/samples/synthetic
  ambient combine --part clean:fashion-mnist:train@count=100 \\
      --part synthetic:runs/clean/samples/synthetic@model=clean-fmnist --out data/synthetic

example (add 500 grayscale photo crops to a corrupted dataset):
  ambient combine --part dataset:data/fmnist-blur06 --part ood:skimage:500:28:0:1 \\
      --out data/fmnist-blur06-photos"""

_PART = re.compile(r"^(clean|synthetic|ood|dataset):(.+)$")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``combine`` subcommand."""
    parser = subparsers.add_parser("combine", help="concatenate clean / synthetic / OOD / dataset parts",
                                   description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", action="append", required=True, metavar="KIND:SOURCE[@model=NAME][@count=K]",
                        help="one part (repeat the option for several)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset draws (default 0)")
    parser.add_argument("--out", required=True, help="output folder (must be empty or new)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    parser.set_defaults(func=run)


def parse_part(text: str):  # -> ambient_omni.data.mixed.Part
    """``KIND:SOURCE[@model=NAME][@count=K|@fraction=F]`` -> a :class:`~ambient_omni.data.mixed.Part`."""
    from ambient_omni.data.dataset_folder import load_dataset
    from ambient_omni.data.mixed import Part
    from ambient_omni.data.readers import canonical_source, read_source, split_options
    from ambient_omni.data.synthetic import read_synthetic, synthetic_provenance
    from ambient_omni.errors import AmbientError

    match = _PART.match(text.strip())
    if match is None:
        raise AmbientError(f"--part {text!r}: expected KIND:SOURCE with KIND clean, synthetic, ood or dataset")
    kind, rest = match.groups()
    source, options = split_options(rest, ("count", "fraction", "model"))
    model = options.pop("model", None)
    if (kind == "synthetic") != (model is not None):
        raise AmbientError(f"--part {text!r}: " + ("a synthetic part needs @model=NAME (its provenance is "
                                                   "synthetic:NAME)" if model is None else
                                                   "@model applies to synthetic parts only"))
    if len(options) > 1:
        raise AmbientError(f"--part {text!r}: give @count or @fraction, not both")
    try:
        count = int(options["count"]) if "count" in options else None
        fraction = float(options["fraction"]) if "fraction" in options else None
    except ValueError:
        raise AmbientError(f"--part {text!r}: @count needs an integer, @fraction a number") from None
    if kind == "dataset":
        return Part(load_dataset(source).to_mixed(), count=count, fraction=fraction, source=source)
    if model is not None:  # a synthetic part
        provenance = synthetic_provenance(model)  # checks the name before reading any file
        return Part(read_synthetic(source), provenance, source.strip(), count, fraction)
    source = canonical_source(source)
    provenance = "clean" if kind == "clean" else f"ood:{source}"
    return Part(read_source(source), provenance, source, count, fraction)


def run(args: argparse.Namespace) -> int:
    """Read every part, combine them and write the folder."""
    from ambient_omni.data.dataset_folder import write_dataset
    from ambient_omni.data.mixed import combine_datasets

    parts = [parse_part(text) for text in args.part]
    data = combine_datasets(parts, args.seed)
    command = shlex.join(["ambient", "combine", *(w for p in args.part for w in ("--part", p)),
                          "--seed", str(args.seed)]) + " --out FOLDER"
    info = write_dataset(args.out, data, command=command, overwrite=args.overwrite)
    counts = ", ".join(f"{count} {name}" for name, count in info["counts"].items())
    print(f"wrote {args.out}: {info['n']} images ({counts})")
    return 0
