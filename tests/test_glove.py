"""GloVe vectors: the packaged 6B 50d, any GloVe text file of any dimension, lower-casing, OOV, freezing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hiere.data.vocab import Vocab
from hiere.encoders.glove import WordEmbedding, glove_matrix, read_glove
from hiere.errors import HiereInputError


def test_packaged_glove_has_the_published_vector_for_the():
    words, vectors = read_glove("default", ["the", "Paris"])
    assert sorted(words) == ["paris", "the"]
    the = vectors[words.index("the")]
    assert the.shape == (50,)
    np.testing.assert_allclose(the[:3], [0.418, 0.24968, -0.41242], atol=1e-5)


def test_matrix_lowercases_and_gives_oov_words_random_vectors(redocred_docs):
    vocab = Vocab.build([redocred_docs[0].tokens])
    matrix, coverage = glove_matrix(vocab, "default")
    assert matrix.shape == (len(vocab), 50)
    assert torch.all(matrix[0] == 0)  # padding
    assert 0.5 < coverage <= 1.0
    words, vectors = read_glove("default", ["schneider"])
    np.testing.assert_allclose(matrix[vocab["Schneider"]].numpy(), vectors[0], atol=1e-6)
    unknown = vocab.stoi.setdefault("zzqxqz-not-a-word", len(vocab.itos))
    vocab.itos.append("zzqxqz-not-a-word")
    matrix, _ = glove_matrix(vocab, "default")
    assert matrix[unknown].abs().sum() > 0  # OOV: small random vector, not zeros


def test_any_glove_text_file_of_any_dimension(tmp_path, redocred_docs):
    words, vectors = read_glove("default", ["the", "race", "skeleton"])
    path = tmp_path / "glove.3d.txt"
    lines = [f"{w} {' '.join(f'{v:.5f}' for v in vec[:3])}\n" for w, vec in zip(words, vectors, strict=True)]
    path.write_text("".join(lines))
    vocab = Vocab.build([["The", "skeleton", "race", "Schneider"]])
    embedding = WordEmbedding(len(vocab), 3, freeze=True)
    coverage = embedding.load_pretrained(vocab, str(path))
    assert coverage == pytest.approx(3 / 4)
    np.testing.assert_allclose(embedding(torch.tensor([vocab["the"]]))[0].numpy(),
                               vectors[words.index("the")][:3], atol=1e-5)
    assert not embedding.embedding.weight.requires_grad
    assert WordEmbedding(len(vocab), 3, freeze=False).embedding.weight.requires_grad


def test_bad_glove_files(tmp_path):
    with pytest.raises(HiereInputError, match="does not exist"):
        read_glove(str(tmp_path / "missing.txt"))
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("the 0.1 0.2 0.3\nof 0.1 0.2\n")
    with pytest.raises(HiereInputError, match="line 2.*has 2 values, expected 3"):
        read_glove(str(ragged))
