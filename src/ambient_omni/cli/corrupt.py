"""``ambient corrupt``: build a mixed-quality dataset folder (a clean fraction + corrupted rest)."""

from __future__ import annotations

import argparse
import shlex

DESCRIPTION = """\
Build a mixed-quality dataset folder: keep a seeded random fraction of the source images
clean and corrupt all the others (the paper's setting: few clean images, many low-quality
ones). Writes images.npy, labels.npy, manifest.jsonl, dataset.json and README.md to --out.
The same options and seed give byte-identical files."""

EPILOG = """\
sources: fashion-mnist[:train|:test], folder:PATH, zip:PATH, array:PATH (.npy/.npz),
  skimage:N:SIZE[:SEED[:CHANNELS]], or an existing folder/.zip/.npy/.npz path;
  suffixes @class=C[,C...] (numbers or names, e.g. @class=Sneaker) and @mode=L|RGB.
corruptions: blur:sigma=S, jpeg:quality=Q, motion:length=L[,angle=A|random],
  noise:std=S[,clip=true], contrast:factor=F[,shift=B]; join several with '+'.

example:
  ambient corrupt --source fashion-mnist:train --corruption blur:sigma=0.6 \\
      --clean-fraction 0.1 --seed 0 --out data/fmnist-blur06"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``corrupt`` subcommand."""
    parser = subparsers.add_parser("corrupt", help="build a clean + corrupted dataset folder",
                                   description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="image source spec (see below); "
                        "'fashion-mnist' means the train split")
    parser.add_argument("--corruption", action="append", help="corruption spec, e.g. blur:sigma=0.6 (not needed "
                        "when every image stays clean); repeat it for mixed corruptions: the corrupted images take "
                        "them in turn")
    count = parser.add_mutually_exclusive_group(required=True)
    count.add_argument("--clean-fraction", type=float, help="fraction of images kept clean, in [0, 1]; "
                       "clean count = floor(fraction * N + 0.5)")
    count.add_argument("--clean-count", type=int, help="exact number of images kept clean")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset, clean choice and "
                        "corruption noise (default 0)")
    parser.add_argument("--n", type=int, help="use a seeded random subset of N source images")
    parser.add_argument("--class", dest="classes", metavar="C", help="keep only these classes "
                        "(same as the @class=C suffix), e.g. 7 or Sneaker or 5,7")
    parser.add_argument("--out", required=True, help="output folder (must be empty or new)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    parser.set_defaults(func=run)


def source_spec(source: str, classes: str | None) -> str:
    """Canonical source spec: ``fashion-mnist`` -> ``fashion-mnist:train``; ``--class`` appended."""
    from ambient_omni.data.readers import canonical_source, split_options
    from ambient_omni.errors import AmbientError

    source = canonical_source(source)
    if classes is not None:
        if "class" in split_options(source)[1]:
            raise AmbientError(f"--class {classes} conflicts with @class in --source {source}")
        source += f"@class={classes}"
    return source


def recorded_command(args: argparse.Namespace, source: str) -> str:
    """The command line that rebuilds this dataset (without --out, so it is location-free)."""
    words = ["ambient", "corrupt", "--source", source]
    for spec in args.corruption or []:
        words += ["--corruption", spec]
    if args.clean_count is not None:
        words += ["--clean-count", str(args.clean_count)]
    else:
        words += ["--clean-fraction", repr(args.clean_fraction)]
    words += ["--seed", str(args.seed)]
    if args.n is not None:
        words += ["--n", str(args.n)]
    return shlex.join(words) + " --out FOLDER"


def run(args: argparse.Namespace) -> int:
    """Read the source, choose the clean images, corrupt the rest and write the folder."""
    from ambient_omni.data.corruptions import parse_corruption
    from ambient_omni.data.dataset_folder import write_dataset
    from ambient_omni.data.mixed import build_mixed
    from ambient_omni.data.readers import read_source

    source = source_spec(args.source, args.classes)
    corruption = [parse_corruption(spec) for spec in args.corruption] if args.corruption else None
    images = read_source(source)
    data = build_mixed(images, corruption, args.clean_fraction, args.seed, source, n=args.n,
                       clean_count=args.clean_count)
    info = write_dataset(args.out, data, command=recorded_command(args, source), overwrite=args.overwrite)
    counts = ", ".join(f"{count} {name}" for name, count in info["counts"].items())
    print(f"wrote {args.out}: {info['n']} images ({counts})")
    return 0
