"""In-domain features: a small CNN trained once on the clean Fashion-MNIST train split.

Architecture (``fmnist-cnn-v1``)::

    x (1x28x28, [-1,1]) -> conv3x3(32) -> BN -> ReLU -> maxpool2
                        -> conv3x3(64) -> BN -> ReLU -> maxpool2
                        -> flatten(64*7*7) -> linear(128) -> ReLU  = phi(x)  (128-d features)
                        -> linear(10)                              = class logits

Training: Adam, cosine learning-rate decay, cross-entropy, random horizontal flips, every
random draw from ``torch.Generator``s seeded by ``seed``. The trained weights are stored in a
cache folder ``$AMBIENT_CACHE`` (default ``~/.cache/ambient_omni``) under
``fmnist-classifier/<key>/`` as ``model.safetensors`` + ``config.json``, where ``key`` is the
sha256 of (sha256 of the training images and labels, architecture, hyper-parameters). A
different training set or hyper-parameter gives a different key and is trained anew.
Images of another size are resized bilinearly to 28x28; RGB images are averaged to gray.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ambient_omni.data.imageset import to_uint8
from ambient_omni.errors import AmbientError
from ambient_omni.files import cache_root
from ambient_omni.metrics.features import FeatureExtractor, register_extractor, resize

ARCHITECTURE = "fmnist-cnn-v1"
FEATURE_DIM = 128


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of the classifier training (all part of the cache key)."""

    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


class FashionCNN(nn.Module):
    """The ``fmnist-cnn-v1`` classifier; ``features(x)`` is the 128-d penultimate layer."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, FEATURE_DIM), nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate (post-ReLU) 128-d features of ``(B, 1, 28, 28)`` images in [-1, 1]."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.head(self.features(x))


def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """Kaiming-uniform weights and zero biases for conv/linear layers, drawn from ``generator``."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def data_sha256(images: torch.Tensor, labels: torch.Tensor) -> str:
    """sha256 over the shapes and bytes of the images quantised to uint8 (``round((x+1)*127.5)``)
    and the int64 labels; quantising makes the key immune to float round-off between readers."""
    quantised = to_uint8(images)
    digest = hashlib.sha256()
    for tensor in (quantised.contiguous(), labels.to(torch.int64).contiguous()):
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def model_key(data_hash: str, settings: TrainSettings) -> str:
    """Cache key: sha256 of (training data hash, architecture, hyper-parameters)."""
    blob = json.dumps({"data": data_hash, "architecture": ARCHITECTURE, "train": asdict(settings)},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def train_classifier(images: torch.Tensor, labels: torch.Tensor, settings: TrainSettings,
                     progress: bool = True) -> FashionCNN:
    """Train :class:`FashionCNN` by minimising cross-entropy; deterministic given ``settings.seed``."""
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(settings.seed)
    model = FashionCNN(int(labels.max()) + 1 if labels.numel() else 10)
    init_weights(model, gen)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(images.shape[0] / settings.batch_size)
    total = settings.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    model.train()
    bar = tqdm(total=total, desc="training the evaluation CNN (fmnist-classifier features; once, then cached)",
               unit="step", disable=not progress)
    for _ in range(settings.epochs):
        order = torch.randperm(images.shape[0], generator=gen)
        for start in range(0, images.shape[0], settings.batch_size):
            idx = order[start:start + settings.batch_size]
            x = images[idx]
            flip = torch.rand(x.shape[0], generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = nn.functional.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


@torch.no_grad()
def accuracy(model: FashionCNN, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` on ``(images, labels)``."""
    model.eval()
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        pred = model(images[start:start + batch_size]).argmax(1)
        correct += int((pred == labels[start:start + batch_size]).sum())
    return correct / images.shape[0]


def load_or_train(images: torch.Tensor, labels: torch.Tensor, settings: TrainSettings = TrainSettings(),
                  cache_dir: str | os.PathLike | None = None, progress: bool = True) -> tuple[FashionCNN, str]:
    """Return ``(model, key)``: the cached classifier for this data + settings, training it if absent."""
    from safetensors.torch import load_file, save

    from ambient_omni.files import atomic_write_bytes, write_json

    key = model_key(data_sha256(images, labels), settings)
    folder = cache_root(cache_dir) / "fmnist-classifier" / key[:32]
    weights = folder / "model.safetensors"
    num_classes = int(labels.max()) + 1
    if weights.exists():
        config = json.loads((folder / "config.json").read_text())
        if config.get("key") != key:
            raise AmbientError(f"{folder}: cached classifier has key {config.get('key')}, expected {key}")
        model = FashionCNN(config["num_classes"])
        model.load_state_dict(load_file(str(weights)))
        return model.eval(), key
    model = train_classifier(images, labels, settings, progress=progress)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(weights, save(state))
    write_json(folder / "config.json", {"key": key, "architecture": ARCHITECTURE, "num_classes": num_classes,
                                        "train": asdict(settings), "n_train": int(images.shape[0])})
    return model, key


def fashion_mnist_train() -> tuple[torch.Tensor, torch.Tensor]:
    """The clean Fashion-MNIST train split as ``(images (N,1,28,28) in [-1,1], labels)``."""
    from ambient_omni.data.readers import read_fashion_mnist

    data = read_fashion_mnist("train")
    return torch.as_tensor(data.images, dtype=torch.float32), torch.as_tensor(data.labels, dtype=torch.int64)


class FashionClassifierExtractor(FeatureExtractor):
    """``phi(x)`` = 128-d penultimate features of the cached Fashion-MNIST CNN."""

    name = "fmnist-classifier"
    dim = FEATURE_DIM

    def __init__(self, model: FashionCNN, key: str, device: torch.device | None = None) -> None:
        super().__init__(device)
        self.model = model.eval().to(self.device)
        self.key = key

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "architecture": ARCHITECTURE, "model_key": self.key,
                "resolution": 28, "layer": "penultimate-relu"}

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.shape[1] == 3:
            batch = batch.mean(dim=1, keepdim=True)
        elif batch.shape[1] != 1:
            raise AmbientError(f"fmnist-classifier: images must have 1 or 3 channels, got {batch.shape[1]}")
        return self.model.features(resize(batch, (28, 28)))


@register_extractor("fmnist-classifier")
def _factory(cache_dir: str | os.PathLike | None = None, device: torch.device | None = None,
             progress: bool = True, train_data: tuple[torch.Tensor, torch.Tensor] | None = None,
             train_settings: TrainSettings = TrainSettings(), **_: Any) -> FeatureExtractor:
    images, labels = train_data if train_data is not None else fashion_mnist_train()
    model, key = load_or_train(images, labels, train_settings, cache_dir=cache_dir, progress=progress)
    return FashionClassifierExtractor(model, key, device=device)
