"""The CNN/PCNN convolution + (piecewise) max pooling, chunked (hiere.encoders.cnn.conv_max_pool), against the
plain autograd reading of HNRE eqs. 2-3 (conv1d, then a masked max per piece), on real NYT10 sentences."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from hiere.data.bags import read_bags
from hiere.data.relations import RelationMap
from hiere.data.vocab import Vocab
from hiere.encoders.cnn import CNNEncoder, collate_sentences, conv_max_pool, sentence_features

os.environ.setdefault("HF_HUB_OFFLINE", "1")
NYT10 = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyt10"


@pytest.fixture(scope="module")
def batch():
    """40 sentences of the NYT10 test file (short and long ones, padded to the longest), as the encoder sees them."""
    relations = RelationMap.from_rel_info(NYT10 / "nyt10_rel2id.json")
    bags = read_bags(NYT10 / "nyt10sub_test.txt", relations, require_labels=True, limit=40)
    sentences = [s for bag in bags for s in bag.sentences][:40]
    words = Vocab.build([t for s in sentences for t in s.tokens])
    features = [sentence_features(s, words, max_length=64) for s in sentences]
    return len(words), collate_sentences(features)


def plain(conv: nn.Conv1d, inputs: torch.Tensor, pieces: torch.Tensor) -> torch.Tensor:
    """conv1d, then for each piece the max over its positions (empty piece: -1e4), concatenated."""
    out = conv(inputs)
    return torch.cat([out.masked_fill(~pieces[:, p].unsqueeze(1), -1e4).max(-1).values
                      for p in range(pieces.shape[1])], dim=-1)


def pieces_of(segments: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "pcnn":
        return torch.stack([segments == p for p in (1, 2, 3)], dim=1)
    return (segments > 0).unsqueeze(1)


def run(function, seed: int = 0):
    """Output and gradients (input, weight, bias) of ``function(conv, inputs)`` for a fixed random upstream."""
    torch.manual_seed(seed)
    conv = nn.Conv1d(60, 23, 3, padding=1)
    inputs = torch.randn(40, 60, 50, requires_grad=True)
    out = function(conv, inputs)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    return out.detach(), inputs.grad, conv.weight.grad, conv.bias.grad


@pytest.mark.parametrize("kind", ["pcnn", "cnn"])
def test_one_chunk_is_bitwise_the_plain_pooling(batch, kind):
    _, tensors = batch
    segments = tensors["segments"][:, :50]
    segments = torch.nn.functional.pad(segments, (0, 50 - segments.shape[1]))
    pieces = pieces_of(segments, kind)
    assert (~pieces.any(-1)).any() or kind == "cnn"  # some sentence has an empty piece (entity at the start)
    expected = run(lambda conv, x: plain(conv, x, pieces))
    got = run(lambda conv, x: conv_max_pool(x, conv.weight, conv.bias, pieces))
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("chunk_sentences", [1, 7, 39])
def test_chunks_give_the_same_values_and_gradients(batch, chunk_sentences):
    _, tensors = batch
    segments = torch.nn.functional.pad(tensors["segments"][:, :50], (0, max(0, 50 - tensors["segments"].shape[1])))
    pieces = pieces_of(segments, "pcnn")
    expected = run(lambda conv, x: plain(conv, x, pieces))
    elements = chunk_sentences * 23 * 50  # the convolution output of that many sentences
    got = run(lambda conv, x: conv_max_pool(x, conv.weight, conv.bias, pieces, chunk_elements=elements))
    # the convolution library may pick another algorithm for another batch size, and the weight and bias
    # gradients are sums over chunks in another order: equal up to float rounding
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_empty_piece_passes_no_gradient():
    conv = nn.Conv1d(4, 3, 3, padding=1)
    inputs = torch.randn(2, 4, 5, requires_grad=True)
    pieces = torch.zeros(2, 3, 5, dtype=torch.bool)
    pieces[:, 0, :2] = True
    pieces[:, 2, 2:] = True  # piece 2 is empty in both sentences
    out = conv_max_pool(inputs, conv.weight, conv.bias, pieces).view(2, 3, 3)
    assert torch.all(out[:, 1] == -1e4)
    out[:, 1].sum().backward()
    assert torch.count_nonzero(inputs.grad) == 0 and torch.count_nonzero(conv.weight.grad) == 0


def test_encoder_under_bf16_autocast_matches_the_plain_pooling(batch):
    vocab_size, tensors = batch
    torch.manual_seed(0)
    encoder = CNNEncoder(vocab_size, word_dim=50, pooling="pcnn", max_length=64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = encoder(tensors)
        embedded = torch.cat([encoder.word_embedding(tensors["word_ids"]), encoder.pos_head_embedding(
            tensors["pos_head"]), encoder.pos_tail_embedding(tensors["pos_tail"])], dim=-1)
        expected = torch.relu(plain(encoder.conv, embedded.transpose(1, 2), pieces_of(tensors["segments"], "pcnn")))
    assert got.dtype == expected.dtype == torch.bfloat16
    assert torch.equal(got, expected)
    got.float().sum().backward()
    assert encoder.conv.weight.grad.dtype == torch.float32 and torch.isfinite(encoder.conv.weight.grad).all()


def test_no_sentences_and_inference_mode(batch):
    conv = nn.Conv1d(6, 4, 3, padding=1)
    pieces = torch.zeros(0, 3, 9, dtype=torch.bool)
    assert conv_max_pool(torch.zeros(0, 6, 9), conv.weight, conv.bias, pieces).shape == (0, 12)
    vocab_size, tensors = batch
    encoder = CNNEncoder(vocab_size, word_dim=50, pooling="pcnn", max_length=64).eval()
    with torch.inference_mode():
        assert encoder(tensors).shape == (40, 3 * 230)
