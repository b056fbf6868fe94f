"""What a cell's model is asked for when sampled (ambient_omni.experiments.evaluation_stage)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from ambient_omni.data.captions import caption_embeddings
from ambient_omni.experiments.evaluation_stage import DEFAULT_EVAL, _conditioning


def test_conditioning_by_kind_of_model() -> None:
    data = SimpleNamespace(info={"class_names": ["T-shirt/top", "Sneaker"]})
    assert _conditioning({"network": {}}, data, [0, 1, 2]) == (None, None)
    labels, wanted = _conditioning({"network": {"label_dim": 2}, "num_classes": 2}, data, [0, 1, 2])
    assert labels.tolist() == [0, 1, 0] and wanted.tolist() == [0, 1, 0]
    text, wanted = _conditioning({"network": {"text_dim": 384}}, data, [3, 4])
    assert wanted.tolist() == [1, 0]
    expected = caption_embeddings(["a photo of a sneaker", "a photo of a t-shirt or top"])
    assert torch.equal(text, expected)
    assert DEFAULT_EVAL["n_samples"] == 2000 and "guidance" not in DEFAULT_EVAL  # older cells' keys stay as they were
    assert isinstance(wanted, np.ndarray)
