"""One ``ambient benchmark-net`` run with denormal floats flushed to zero or kept (``torch.set_flush_denormal``),
for docs/RESULTS.md section 4's "Flushing denormals": run pairs back to back in both orders and compare.

    .venv/bin/python scripts/denormals_run.py flush|keep --preset fmnist-small --images 4096 [--json FILE]
"""

from __future__ import annotations

import sys

import torch

from ambient_omni.cli.main import main

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("flush", "keep"):
        sys.exit(__doc__)
    if sys.argv[1] == "flush" and not torch.set_flush_denormal(True):
        sys.exit("this CPU cannot flush denormals (torch.set_flush_denormal returned False)")
    sys.exit(main(["benchmark-net", *sys.argv[2:]]))
