"""Time the fast annotation search on blurred Fashion-MNIST test images with the float32 classifier path of
whichever ``ambient_omni`` is importable, so two code versions can be compared on one machine (the package's
own ``ambient benchmark-annotate`` needs this session's code):

    .venv/bin/python scripts/annotation_timing.py --classifier RUN/model               # this checkout
    PYTHONPATH=/path/to/old/checkout/src .venv/bin/python scripts/annotation_timing.py --classifier RUN/model

Prints calls/s, images/s and the mean classifier calls per image (<= 512: 256 points x 2 draws).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", required=True, help="noise classifier model or run folder")
    parser.add_argument("--images", type=int, default=64, help="blurred test images to annotate (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import ambient_omni
    from ambient_omni.annotate.noise import NoiseAnnotationConfig, annotate_images, classifier_prob_fn
    from ambient_omni.data.corruptions import parse_corruption
    from ambient_omni.data.readers import read_fashion_mnist
    from ambient_omni.training.checkpoint import load_model, model_folder

    clean = read_fashion_mnist("test").images[: args.images]
    images = parse_corruption("blur:sigma=1.0")(clean, torch.arange(len(clean)), 0)
    cfg = NoiseAnnotationConfig(max_points=256, draws=2)
    prob = classifier_prob_fn(load_model(model_folder(args.classifier)), torch.device("cpu"))
    annotate_images(prob, images[:2], np.arange(2), cfg, batch_size=2048)  # warm-up
    start = time.perf_counter()
    _, calls = annotate_images(prob, images, np.arange(len(images)), cfg, batch_size=2048)
    seconds = time.perf_counter() - start
    print(f"{ambient_omni.__file__}: {calls.sum() / seconds:.0f} calls/s, {len(images) / seconds:.2f} images/s, "
          f"mean calls/image {calls.mean():.0f}")


if __name__ == "__main__":
    main()
