"""Inception feature speed, NCHW against channels-last (the layout InceptionExtractor uses), on the installed
FID weights, with the largest feature difference between the two layouts:

    AMBIENT_THREADS=1 .venv/bin/python scripts/inception_speed.py --images 32
"""

from __future__ import annotations

import argparse
import time

import torch

from ambient_omni.metrics.inception import InceptionExtractor


def images_per_second(model: torch.nn.Module, batch: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Throughput of one timed pass over ``batch`` (after a 4-image warm-up) and its features."""
    with torch.no_grad():
        model(batch[:4])
        start = time.perf_counter()
        feats = model(batch)
    return batch.shape[0] / (time.perf_counter() - start), feats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = InceptionExtractor(device="cpu").model
    batch = torch.rand(args.images, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1
    nchw, a = images_per_second(model.to(memory_format=torch.contiguous_format), batch)
    last, b = images_per_second(model.to(memory_format=torch.channels_last),
                                batch.contiguous(memory_format=torch.channels_last))
    print(f"{args.threads} thread(s): NCHW {nchw:.1f} img/s, channels-last {last:.1f} img/s "
          f"({last / nchw:.2f}x); max |feature difference| {(a - b).abs().max():.1e}")


if __name__ == "__main__":
    main()
