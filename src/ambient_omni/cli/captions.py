"""``ambient captions make``: template captions for a dataset folder's images (text-conditional training)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Write a caption file (JSON Lines: {"id": image id, "text": caption}, one line per image) for a dataset folder
from its class names and a few fixed templates ("a photo of a sneaker", "a black and white photo of a dress",
...), the template of each image chosen by a hash of (--seed, image id). Such captions say no more than the
class label: they exercise text conditioning on data that has no captions of its own. A caption file of your
own works the same: `ambient train --captions FILE` checks that it covers every image exactly once."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``captions`` with its ``make`` action."""
    parser = subparsers.add_parser("captions", help="caption files for text-conditional training",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    m = actions.add_parser("make", help="template captions from the class names", description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("--data", required=True, help="dataset folder (needs class names and labels)")
    m.add_argument("--out", required=True, help="caption file to write")
    m.add_argument("--seed", type=int, default=0, help="template choice seed (default 0)")
    m.set_defaults(func=run_make)


def run_make(args: argparse.Namespace) -> int:
    """Write the template captions."""
    from ambient_omni.data.captions import template_captions, write_captions
    from ambient_omni.data.dataset_folder import load_dataset
    from ambient_omni.errors import AmbientError

    data = load_dataset(args.data)
    names = list(data.info.get("class_names", []))
    if not names:
        raise AmbientError(f"{args.data}: the dataset has no class names to build captions from; write a caption "
                           'file yourself ({"id": ..., "text": ...} per line)')
    texts = template_captions(data.labels.numpy(), names, args.seed)
    write_captions(args.out, texts)
    print(f"wrote {args.out}: {len(texts)} captions, e.g. " + "; ".join(repr(t) for t in texts[:3]))
    return 0
