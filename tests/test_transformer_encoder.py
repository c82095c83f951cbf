"""Transformer encoder on real Re-DocRED documents with MiniLM: alignment, markers, windows, assets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hiere.data.docred import read_docred
from hiere.encoders.transformer import TransformerEncoder, word_features
from hiere.errors import HiereInputError

os.environ["HF_HUB_OFFLINE"] = "1"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "redocred"


@pytest.fixture(scope="module")
def documents():
    return read_docred(DATA / "dev_revised.json", limit=2)


@pytest.fixture(scope="module")
def encoder() -> TransformerEncoder:
    torch.manual_seed(0)
    return TransformerEncoder("default", max_length=96, window_overlap=24, pretrained=True).eval()


def test_word_alignment_and_markers(encoder: TransformerEncoder, documents) -> None:
    doc = documents[0]
    spans = [doc.mention_span(m) for entity in doc.entities for m in entity]
    tokenized = encoder.tokenize(doc.tokens, spans)
    ids = tokenized.input_ids
    assert ids[0] == encoder.cls_id and ids[-1] == encoder.sep_id
    assert len(tokenized.word_spans) == len(doc.tokens)
    for word, (start, end) in zip(doc.tokens, tokenized.word_spans, strict=True):
        expected = encoder.tokenizer(word, add_special_tokens=False)["input_ids"] or [encoder.unk_id]
        assert ids[start:end] == expected
    marker = encoder.marker_ids[0]
    for (start, end), position in zip(spans, tokenized.marker_positions, strict=True):
        assert ids[position] == marker  # start marker right before the mention's first subword
        assert position + 1 == tokenized.word_spans[start][0]
        assert ids[tokenized.word_spans[end - 1][1]] == marker  # end marker right after its last subword
    n_boundaries = len({s for s, _ in spans}) + len({e for _, e in spans})
    n_subwords = sum(end - start for start, end in tokenized.word_spans)
    assert len(ids) == n_subwords + n_boundaries + 2


def test_long_document_is_encoded_in_windows_without_truncation(encoder, documents) -> None:
    doc = documents[1]
    tokenized = encoder.tokenize(doc.tokens)
    length = len(tokenized.input_ids)
    assert length > encoder.max_length
    windows = encoder.windows(length)
    assert len(windows) > 1
    covered = set()
    for (start, size), following in zip(windows, windows[1:] + [None], strict=True):
        assert size == encoder.max_length - 2
        covered.update(range(start, start + size))
        if following is not None:
            assert start + size - following[0] >= encoder.window_overlap  # consecutive windows overlap
    assert covered == set(range(length - 2))  # every content token is in some window
    input_ids, attention_mask = encoder.collate([tokenized.input_ids])
    with torch.no_grad():
        hidden, attention = encoder(input_ids, attention_mask)
    assert hidden.shape == (1, length, encoder.hidden_size)
    assert attention.shape == (1, encoder.num_heads, length, length)
    assert hidden.abs().sum(dim=-1).gt(0).all()  # no position left empty
    assert torch.allclose(attention.sum(dim=-1), torch.ones(1, encoder.num_heads, length), atol=1e-4)


def test_windowed_batch_equals_single_pass_where_windows_are_not_needed(encoder, documents) -> None:
    short_words = documents[0].tokens[:30]
    long_words = documents[1].tokens
    with torch.no_grad():
        alone = encoder.encode_documents([short_words])
        mixed = encoder.encode_documents([short_words, long_words])
    n = alone.hidden.shape[1]
    assert mixed.hidden.shape[1] > encoder.max_length  # the batch took the window path
    assert torch.allclose(mixed.hidden[0, :n], alone.hidden[0], atol=1e-5)
    assert torch.allclose(mixed.attention[0, :, :n, :n], alone.attention[0], atol=1e-5)
    assert mixed.hidden[0, n:].abs().max() == 0  # padding stays zero


def test_a_sequence_of_exactly_max_length_is_one_window(encoder: TransformerEncoder) -> None:
    assert encoder.windows(encoder.max_length) == [(0, encoder.max_length - 2)]
    assert len(encoder.windows(encoder.max_length + 1)) == 2


def test_gradients_flow_through_windows(documents) -> None:
    torch.manual_seed(0)
    encoder = TransformerEncoder("default", max_length=64, pretrained=False)
    batch = encoder.encode_documents([documents[0].tokens[:150]])
    assert batch.hidden.shape[1] > 64
    (batch.hidden.sum() + batch.attention[..., 0].sum()).backward()
    embeddings = encoder.transformer.embeddings.word_embeddings.weight
    assert embeddings.grad is not None and embeddings.grad.abs().sum() > 0


def test_word_features_average_subwords(encoder: TransformerEncoder, documents) -> None:
    words = documents[0].tokens[:12]
    with torch.no_grad():
        batch = encoder.encode_documents([words])
    features = word_features(batch.hidden, [batch.tokenized[0].word_spans])
    assert features.shape == (1, len(words), encoder.hidden_size)
    for word, (start, end) in enumerate(batch.tokenized[0].word_spans):
        assert torch.allclose(features[0, word], batch.hidden[0, start:end].mean(dim=0), atol=1e-6)
    assert any(end - start > 1 for start, end in batch.tokenized[0].word_spans)  # a real multi-subword word


def test_saved_assets_rebuild_the_same_encoder(encoder, documents, tmp_path: Path) -> None:
    encoder.save_assets(tmp_path)
    assert (tmp_path / "encoder" / "config.json").exists()
    rebuilt = TransformerEncoder("/does/not/matter", model_dir=tmp_path, max_length=96, window_overlap=24)
    rebuilt.load_state_dict(encoder.state_dict())
    rebuilt.eval()
    words = documents[0].tokens[:40]
    assert rebuilt.tokenize(words, [(0, 2)]) == encoder.tokenize(words, [(0, 2)])
    with torch.no_grad():
        rebuilt_hidden = rebuilt.encode_documents([words]).hidden
        assert torch.allclose(rebuilt_hidden, encoder.encode_documents([words]).hidden)


def test_bad_source_is_a_clear_input_error(tmp_path: Path) -> None:
    with pytest.raises(HiereInputError, match="not a local Hugging Face model folder"):
        TransformerEncoder(tmp_path / "missing")
    with pytest.raises(HiereInputError, match="no encoder folder"):
        TransformerEncoder("default", model_dir=tmp_path)


def test_only_the_last_layers_attention_is_computed_and_kept(encoder, documents) -> None:
    input_ids, attention_mask = encoder.collate([encoder.tokenize(documents[0].tokens[:40]).input_ids])
    with torch.no_grad():
        _, attention = encoder(input_ids, attention_mask)
        every_layer = encoder.transformer(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
    assert encoder._last_attention_module() is not None  # read off a hook, not by asking for every layer's
    assert torch.equal(attention, every_layer.attentions[-1])


@pytest.mark.parametrize("grad", [False, True], ids=["grouped windows, no gradient", "one call, gradient"])
def test_attention_rows_of_long_documents_equal_the_rows_of_the_whole_maps(documents, grad) -> None:
    torch.manual_seed(0)
    encoder = TransformerEncoder("default", max_length=48, window_overlap=12, pretrained=True).eval()
    texts = [documents[1].tokens, documents[0].tokens[:120]]  # 20+ windows together: several groups of 8
    input_ids, attention_mask = encoder.collate([encoder.tokenize(words).input_ids for words in texts])
    lengths = attention_mask.sum(dim=1)
    row_batch = torch.tensor([0, 0, 1, 0, 1, 1])
    row_position = torch.tensor([0, int(lengths[0]) - 1, 5, 200, 60, int(lengths[1]) - 1])
    with torch.set_grad_enabled(grad):
        whole_hidden, whole = encoder(input_ids, attention_mask)
        hidden, rows = encoder(input_ids, attention_mask, attention_rows=(row_batch, row_position))
    assert rows.shape == (6, encoder.num_heads, input_ids.shape[1])
    expected = whole[row_batch, :, row_position]
    if grad:  # the same windows in one call: the same sums in the same order
        assert torch.equal(rows, expected) and torch.equal(hidden, whole_hidden)
        rows[:, :, 3].sum().backward()
        assert encoder.transformer.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    else:  # windows 8 at a time: the same up to the matmuls' blocking
        assert torch.allclose(rows, expected, atol=1e-5) and torch.allclose(hidden, whole_hidden, atol=1e-5)
    assert torch.allclose(rows.sum(dim=-1), torch.ones(6, encoder.num_heads), atol=1e-4)


def test_hidden_states_alone_skip_the_attention_merge(encoder, documents) -> None:
    input_ids, attention_mask = encoder.collate([encoder.tokenize(documents[1].tokens).input_ids])
    with torch.no_grad():
        hidden, attention = encoder(input_ids, attention_mask, attentions=False)
        whole_hidden, _ = encoder(input_ids, attention_mask)
    assert attention is None and torch.allclose(hidden, whole_hidden, atol=1e-5)


# ---------------------------------------------------------------- dropout and attention


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_inverted_dropout_drops_p_keeps_the_rest_scaled_and_masks_the_gradient(dtype) -> None:
    from hiere.encoders.transformer import inverted_dropout

    x = torch.full((400, 1000), 2.0, dtype=dtype, requires_grad=True)
    torch.manual_seed(3)
    y = inverted_dropout(x, 0.1)
    assert y.dtype == dtype and y.shape == x.shape
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.003  # 400,000 draws: 3 standard deviations are 0.0014
    scale = 32768 / (32768 - round(0.1 * 32768))  # p = 3,277 / 32,768
    kept = y[y != 0].float()
    assert torch.allclose(kept, torch.full_like(kept, 2.0 * scale), rtol=4e-3)
    y.sum().backward()
    assert torch.equal(x.grad != 0, y != 0)  # the same mask, forward and backward
    assert torch.allclose(x.grad[x.grad != 0].float(), torch.full_like(kept, scale), rtol=4e-3)
    torch.manual_seed(3)
    assert torch.equal(inverted_dropout(x.detach(), 0.1), y.detach())  # seeded: reproducible
    assert inverted_dropout(x, 0.1, training=False) is x and inverted_dropout(x, 0.0) is x
    assert torch.count_nonzero(inverted_dropout(x, 1.0)) == 0


def test_inverted_dropout_decisions_are_independent_across_the_64_bit_draws() -> None:
    from hiere.encoders.transformer import inverted_dropout

    torch.manual_seed(0)
    y = inverted_dropout(torch.ones(200_000, 4), 0.5)  # each row is one 64-bit draw's four decisions
    rates = (y == 0).float().mean(dim=0)
    assert torch.allclose(rates, torch.full((4,), 0.5), atol=0.006)  # each of the draw's four 16-bit lanes
    both = ((y[:, 0] == 0) & (y[:, 3] == 0)).float().mean()
    assert abs(both.item() - 0.25) < 0.006


def test_hiere_attention_is_eager_arithmetic_and_the_model_has_no_torch_dropout(encoder, documents) -> None:
    from hiere.encoders.transformer import Dropout

    class Eager(TransformerEncoder):
        attention_implementation = "eager"

    eager = Eager("default", max_length=96, window_overlap=24, pretrained=True).eval()
    assert encoder.transformer.config._attn_implementation == "hiere"
    assert not any(type(module) is torch.nn.Dropout for module in encoder.transformer.modules())
    assert any(isinstance(module, Dropout) for module in encoder.transformer.modules())
    doc = documents[0]
    texts = [encoder.tokenize(doc.tokens[:60]).input_ids, encoder.tokenize(doc.tokens[:20]).input_ids]
    ids, mask = encoder.collate(texts)
    with torch.no_grad():
        hidden, attention = encoder(ids, mask)
        eager_hidden, eager_attention = eager(ids, mask)
    assert torch.allclose(hidden, eager_hidden, atol=1e-5)
    assert torch.allclose(attention, eager_attention, atol=1e-6)  # padding keys get no attention in both
    assert attention[1, :, :, int(mask[1].sum()):].abs().max() == 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low_hidden, low_attention = encoder(ids, mask)
    assert low_attention.dtype == torch.float32  # the heads read float32 maps
    assert torch.allclose(low_attention, eager_attention, atol=0.03)
    assert torch.allclose(low_hidden.float(), eager_hidden, atol=0.15)
