"""Where one training step's oneDNN time goes, from ``ONEDNN_VERBOSE=1`` output on stdin: the milliseconds of
every executed primitive after the ``=== one step`` marker, summed by kind (forward convolution, backward-data,
backward-weights, reorder, matmul) and the largest items by shape.

    ONEDNN_VERBOSE=1 .venv/bin/python scripts/bare_step_speed.py --one-step | .venv/bin/python scripts/onednn_time.py
"""

from __future__ import annotations

import collections
import sys

MARKER = "=== one step"


def summarise(lines: list[str], top: int = 15) -> list[str]:
    """Report lines: the total, the sum per kind, then the ``top`` largest (kind, shape) items with their counts."""
    after = lines[next(i for i, line in enumerate(lines) if line.startswith(MARKER)) + 1:]
    by_item: collections.Counter[tuple[str, str]] = collections.Counter()
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in after:
        fields = line.strip().split(",")
        if len(fields) < 8 or fields[0] != "onednn_verbose" or fields[3] != "exec":
            continue
        kind = fields[5] if fields[5] != "convolution" else f"convolution {fields[7]}"
        key = (kind, fields[-2])
        by_item[key] += float(fields[-1])
        counts[key] += 1
    by_kind: collections.Counter[str] = collections.Counter()
    for (kind, _), ms in by_item.items():
        by_kind[kind] += ms
    total = sum(by_kind.values())
    out = [f"oneDNN time in the step: {total:.1f} ms"]
    out += [f"  {kind:32s} {ms:7.1f} ms ({ms / total:.0%})" for kind, ms in by_kind.most_common()]
    out.append(f"largest {top} items:")
    out += [f"  {ms:7.2f} ms x{counts[key]:<3d} {key[0]:32s} {key[1]}" for key, ms in by_item.most_common(top)]
    return out


if __name__ == "__main__":
    print("\n".join(summarise(sys.stdin.read().splitlines())))
