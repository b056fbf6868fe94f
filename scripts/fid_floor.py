"""Real-image sample sets at the protocol's size, to read benchmark FIDs against: 2,000 Fashion-MNIST train
images (``fixed_subset(60000, 2000, seed 0)``) as they are and blurred with sigma_B = 1.0, written as
``OUT/train2000/samples.npz`` and ``OUT/train2000-blur1.0/samples.npz``; with ``--autoencoder RUN`` also the same
images through the autoencoder, ``decode(encode(x))`` (``OUT/train2000-ae/samples.npz``: the floor of a latent
model decoded by it). Evaluate them like model samples:

    .venv/bin/python scripts/fid_floor.py --out runs/fid [--autoencoder runs/unknown/autoencoders/RUN]
    .venv/bin/ambient eval --samples runs/fid/train2000 --features inception,fmnist-classifier
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ambient_omni.data.corruptions import parse_corruption
from ambient_omni.data.readers import read_fashion_mnist
from ambient_omni.metrics.evaluate import fixed_subset


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``round((x + 1) * 127.5)`` as uint8, the samples.npz convention."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--blur", type=float, default=1.0)
    parser.add_argument("--autoencoder", help="an `ambient autoencoder train` run: also write its reconstructions")
    args = parser.parse_args()
    train = read_fashion_mnist("train")
    index = fixed_subset(train.images.shape[0], args.n, seed=0)
    images = torch.as_tensor(train.images[index]).float()
    blurred = parse_corruption(f"blur:sigma={args.blur}")(images, torch.as_tensor(index), 0)
    sets = [(f"train{args.n}", images), (f"train{args.n}-blur{args.blur}", torch.as_tensor(blurred))]
    if args.autoencoder:
        from ambient_omni.latents.codec import AutoencoderCodec

        codec = AutoencoderCodec(args.autoencoder)
        sets.append((f"train{args.n}-ae", torch.cat([codec.decode(codec.encode(b)) for b in images.split(256)])))
    for name, batch in sets:
        folder = Path(args.out) / name
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "samples.npz", images=to_uint8(batch))
        print(folder / "samples.npz")


if __name__ == "__main__":
    main()
