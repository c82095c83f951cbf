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
from hiere.encoders.cnn import (
    CONV_CHUNK_ELEMENTS,
    CNNEncoder,
    collate_sentences,
    conv_groups,
    conv_max_pool,
    sentence_features,
)

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
def test_grouped_by_width_gives_the_plain_values_and_gradients(batch, kind):
    _, tensors = batch
    segments = tensors["segments"][:, :50]
    segments = torch.nn.functional.pad(segments, (0, 50 - segments.shape[1]))
    pieces = pieces_of(segments, kind)
    assert (~pieces.any(-1)).any() or kind == "cnn"  # some sentence has an empty piece (entity at the start)
    assert len(conv_groups(pieces, 23, 1, CONV_CHUNK_ELEMENTS)) > 1  # sentences of several widths
    expected = run(lambda conv, x: plain(conv, x, pieces))
    got = run(lambda conv, x: conv_max_pool(x, conv.weight, conv.bias, pieces))
    # each sentence's outputs and input gradients are computed by the same operations over fewer positions
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    # the weight and bias gradients sum over the width groups in another order: equal up to float rounding
    for a, b in zip(got[2:], expected[2:], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_full_width_in_one_chunk_is_bitwise_the_plain_pooling(batch):
    """Pieces over every position (OpenNRE's CNN pooling over its padding): one group, the plain operations."""
    pieces = torch.ones(40, 1, 50, dtype=torch.bool)
    assert [width for _, width in conv_groups(pieces, 23, 1, CONV_CHUNK_ELEMENTS)] == [50]
    expected = run(lambda conv, x: plain(conv, x, pieces))
    got = run(lambda conv, x: conv_max_pool(x, conv.weight, conv.bias, pieces))
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)


def test_groups_cover_each_sentence_once_and_skip_the_padding(batch):
    _, tensors = batch
    segments = tensors["segments"]
    pieces = pieces_of(segments, "pcnn")
    lengths = (segments > 0).sum(1)
    groups = conv_groups(pieces, 230, 1, CONV_CHUNK_ELEMENTS)
    rows = torch.cat([r for r, _ in groups])
    assert sorted(rows.tolist()) == list(range(40))
    for group_rows, width in groups:
        need = lengths[group_rows] + 1  # the last word's window reads one position past it
        assert width % 8 == 0 or width == segments.shape[1]
        assert torch.all((need <= width) | (width == segments.shape[1]))
        assert width - 8 < need.max()  # no more than one rounding step of padding
    work = sum(len(r) * width for r, width in groups)
    assert work < 0.8 * 40 * segments.shape[1]


def test_opennre_padding_reads_the_trained_pad_word_as_the_plain_pooling(batch):
    """PCNN with ``padding: opennre``: sentences padded to max_length with a trained (here non-zero) [PAD] word;
    the last word's window still reads it when the sentence is convolved over its own width."""
    vocab_size, tensors = batch
    torch.manual_seed(0)
    encoder = CNNEncoder(vocab_size, word_dim=50, pooling="pcnn", max_length=64, padding="opennre")
    with torch.no_grad():
        encoder.word_embedding.embedding.weight[0].normal_()
    got = encoder(tensors)
    padded = {k: torch.nn.functional.pad(v, (0, 64 - v.shape[1])) for k, v in tensors.items()}
    embedded = torch.cat([encoder.word_embedding(padded["word_ids"]), encoder.pos_head_embedding(
        padded["pos_head"]), encoder.pos_tail_embedding(padded["pos_tail"])], dim=-1)
    expected = torch.relu(plain(encoder.conv, embedded.transpose(1, 2), pieces_of(padded["segments"], "pcnn")))
    assert torch.equal(got, expected)


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
