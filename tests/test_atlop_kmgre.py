"""ATLOP and KMGRE on two real Re-DocRED documents (MiniLM, max_length 96): shapes, gradients, the
EM pieces of KMGRE, its ablation switches and explanations."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest
import torch

from hiere.data.docred import read_docred
from hiere.data.relations import RelationMap
from hiere.models import get_model_class
from hiere.models.base import Resources
from hiere.models.doc.kmgre import KMGRE, segment_mean

os.environ["HF_HUB_OFFLINE"] = "1"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "redocred"


@pytest.fixture(scope="module")
def relations() -> RelationMap:
    return RelationMap.from_rel_info(DATA / "rel_info.json")


@pytest.fixture(scope="module")
def documents(relations):
    docs = read_docred(DATA / "dev_revised.json", relations.relations, limit=2)
    for doc in docs:  # keep the tests small: the first 8 entities of each document
        doc.entities = doc.entities[:8]
        doc.facts = [f for f in doc.facts if f.h < 8 and f.t < 8]
    return docs


def build(name: str, relations: RelationMap, **options):
    torch.manual_seed(0)
    model_class = get_model_class(name)
    model = model_class(model_class.Config.from_dict({"max_length": 96, **options}), Resources(relations))
    model.init_pretrained()
    return model


def batch_of(model, documents):
    return model.collate([model.featurize(doc) for doc in documents])


@pytest.fixture(scope="module")
def atlop(relations):
    return build("atlop", relations, emb_size=128, block_size=64)


@pytest.fixture(scope="module")
def kmgre(relations):
    return build("kmgre", relations)


def test_atlop_shapes_labels_and_gradients(atlop, documents, relations) -> None:
    batch = batch_of(atlop, documents)
    n_pairs = sum(len(doc.entities) * (len(doc.entities) - 1) for doc in documents)
    assert len(batch["pairs"]) == n_pairs and batch["labels"].shape == (n_pairs, len(relations))
    assert batch["input_ids"].shape[1] > 96  # the second document needs windows
    labels = batch["labels"]
    assert torch.equal(labels[:, 0], (labels[:, 1:].sum(dim=1) == 0).float())
    row = batch["pairs"].index((0, documents[0].facts[0].h, documents[0].facts[0].t))
    assert labels[row, relations[documents[0].facts[0].r]] == 1
    atlop.train()
    atlop.zero_grad()
    output = atlop(batch)
    assert output["scores"].shape == (n_pairs, len(relations))
    output["loss"].backward()
    for name in (
        "encoder.transformer.embeddings.word_embeddings.weight",
        "bilinear.weight",
        "head_extractor.weight",
    ):
        assert atlop.get_parameter(name).grad.abs().sum() > 0, name


def test_atlop_top_k_limits_relations_per_pair(atlop, documents) -> None:
    batch = batch_of(atlop, documents)
    atlop.eval()
    with torch.no_grad():
        atlop.bilinear.bias[1:5] += 50.0  # four relations far above the threshold class for every pair
        try:
            atlop.config.top_k = 2
            limited = atlop(batch)["scores"]
            atlop.config.top_k = None
            unlimited = atlop(batch)["scores"]
        finally:
            atlop.bilinear.bias[1:5] -= 50.0
            atlop.config.top_k = 4
    assert ((limited[:, 1:] >= 0).sum(dim=1) <= 2).all()
    assert ((unlimited[:, 1:] >= 0).sum(dim=1) >= 4).all()


def test_same_seed_same_loss(relations, documents) -> None:
    losses = []
    for _ in range(2):
        model = build("atlop", relations, emb_size=128, block_size=64).train()
        torch.manual_seed(1)  # dropout
        losses.append(model(batch_of(model, documents))["loss"].item())
    assert losses[0] == losses[1]


def test_kmgre_mention_pairs_cover_every_entity_pair_and_the_cap_keeps_close_ones(
    relations, documents
) -> None:
    model = build("kmgre", relations, max_mention_pairs=2)
    batch = batch_of(model, documents)
    rows = batch["mention_pair_row"]
    counts = torch.bincount(rows, minlength=len(batch["pairs"]))
    assert (counts >= 1).all() and (counts <= 2).all()
    sents = batch["mention_sent"]
    for row, (b, h, t) in enumerate(batch["pairs"]):
        kept = [
            tuple(p) for p, r in zip(batch["mention_pairs"].tolist(), rows.tolist(), strict=True) if r == row
        ]
        entity_h, entity_t = documents[b].entities[h], documents[b].entities[t]
        distances = sorted(abs(a.sent_id - c.sent_id) for a in entity_h for c in entity_t)
        assert sorted(abs(sents[i] - sents[j]) for i, j in kept) == distances[: len(kept)]


def test_e_step_pseudo_labels_by_hand() -> None:
    # one entity pair with three mention pairs, relations (NA, r1, r2); gold: r2 only
    logits = torch.logit(torch.tensor([[0.5, 0.9, 0.1], [0.5, 0.1, 0.6], [0.5, 0.8, 0.2]]))
    labels = torch.tensor([[0.0, 0.0, 1.0]])
    rows = torch.zeros(3, dtype=torch.long)
    # mean p(r2) = 0.3 -> pairs with p(r2) >= 0.3: only the second one (r1 is not gold, ignored)
    assert KMGRE.pseudo_labels(logits, labels, rows, 1).tolist() == [0.0, 1.0, 0.0]
    no_relation = torch.tensor([[1.0, 0.0, 0.0]])
    assert KMGRE.pseudo_labels(logits, no_relation, rows, 1).tolist() == [0.0, 0.0, 0.0]
    assert segment_mean(torch.tensor([1.0, 2.0, 6.0]), torch.tensor([0, 0, 1]), 2).tolist() == [1.5, 6.0]


def test_kmgre_fusion_weights_follow_phase_and_switches(relations, documents, kmgre) -> None:
    batch = batch_of(kmgre, documents)
    kmgre.train()
    kmgre.on_epoch_start(1)  # warm-up: every mention pair counts equally
    output = kmgre(batch)
    assert output["loss"].requires_grad
    pair_logits = torch.randn(len(batch["mention_pair_row"]), len(relations))
    key_logits = torch.randn(len(batch["mention_pair_row"]))
    rows, n_rows = batch["mention_pair_row"], len(batch["pairs"])
    counts = torch.bincount(rows, minlength=n_rows).float()
    warm = kmgre.fusion_weights(pair_logits, key_logits, rows, n_rows)
    assert torch.allclose(warm, 1 / counts[rows])
    kmgre.on_epoch_start(kmgre.config.warmup_epochs + 1)  # EM: only key pairs (p_ω >= the pair's mean)
    key = kmgre.fusion_weights(pair_logits, key_logits, rows, n_rows)
    p_key = torch.sigmoid(key_logits)
    pair_mean = {row: p_key[rows == row].mean() for row in rows.tolist()}  # by hand, not with segment_mean
    is_key = torch.tensor([bool(p_key[i] >= pair_mean[row]) for i, row in enumerate(rows.tolist())])
    assert torch.equal(key > 0, is_key) and (key < 1 / counts[rows] - 1e-6).any()
    assert torch.allclose(torch.zeros(n_rows).index_add(0, rows, key), torch.ones(n_rows))
    mean_model = build("kmgre", relations, fusion="mean").train()
    mean_model.on_epoch_start(5)
    assert torch.allclose(mean_model.fusion_weights(pair_logits, key_logits, rows, n_rows), 1 / counts[rows])
    soft_model = build("kmgre", relations, em=False).train()
    soft = soft_model.fusion_weights(pair_logits, key_logits, rows, n_rows)
    assert torch.allclose(soft, p_key / torch.zeros(n_rows).index_add(0, rows, p_key)[rows])


def test_e_step_reaches_only_the_key_instance_classifier(relations, documents) -> None:
    """With EM, the focal loss changes ω's gradients but not θ's (stop-gradient between the modules)."""
    gradients = []
    for weight in (1.0, 0.0):
        model = build("kmgre", relations, key_loss_weight=weight).train()
        model.on_epoch_start(model.config.warmup_epochs + 1)
        torch.manual_seed(1)
        output = model(batch_of(model, documents))
        terms = output["loss_terms"]
        assert torch.isclose(output["loss"].detach(), terms["adaptive_threshold"] + weight * terms["key_focal"])
        output["loss"].backward()
        embeddings = model.encoder.transformer.embeddings.word_embeddings.weight
        gradients.append(
            (model.relation_classifier.weight.grad, embeddings.grad, model.key_classifier.weight.grad)
        )
    for with_focal, without_focal in zip(gradients[0][:2], gradients[1][:2], strict=True):
        # equal up to float32 summation order (MKL may reduce in a different order between two runs)
        scale = float(without_focal.abs().max())
        assert torch.allclose(with_focal, without_focal, rtol=1e-4, atol=1e-5 * scale)
    assert gradients[0][2].abs().sum() > 0
    assert gradients[1][2].abs().sum() == 0


def test_ablation_switches_remove_their_parts(relations, documents) -> None:
    no_classifier = build("kmgre", relations, key_instance_classifier=False)
    assert not hasattr(no_classifier, "key_classifier") and not hasattr(no_classifier, "key_projection")
    no_em = build("kmgre", relations, em=False).train()
    no_em(batch_of(no_em, documents))["loss"].backward()  # ω learns from the adaptive-threshold loss alone
    assert no_em.key_classifier.weight.grad.abs().sum() > 0
    assert not no_em.warming_up
    bilinear = build("kmgre", relations, extractor="bilinear")
    assert bilinear.relation_classifier.in_features == bilinear.config.emb_size * bilinear.config.block_size
    with pytest.raises(ValueError, match="fusion"):
        build("kmgre", relations, fusion="max")


@pytest.mark.parametrize("options", [{}, {"key_instance_classifier": False}])
def test_explanations_list_key_mention_pairs(relations, documents, options) -> None:
    model = build("kmgre", relations, **options).eval()
    batch = batch_of(model, documents)
    with torch.no_grad():
        model.relation_classifier.bias[1] += 100.0  # every entity pair predicts relation 1
        output = model(batch)
    explanations = output["explanations"]
    assert len(explanations) == len(batch["pairs"]) and all(explanations)
    strength = "p_key" if not options else "p_relation"
    for (b, h, t), explanation in zip(batch["pairs"], explanations, strict=True):
        pairs = explanation["key_mention_pairs"]
        assert 1 <= len(pairs) <= model.config.explain_pairs
        for pair in pairs:
            assert pair["h_sent"] == documents[b].entities[h][pair["h_mention"]].sent_id
            assert pair["t_sent"] == documents[b].entities[t][pair["t_mention"]].sent_id
            assert 0.0 <= pair[strength] <= 1.0
        assert [p[strength] for p in pairs] == sorted((p[strength] for p in pairs), reverse=True)


def test_atlop_sentence_scores_are_the_localized_attention_per_sentence(atlop, documents) -> None:
    from hiere.models.doc.transformer_doc import _context_weights, mean_entities

    atlop.eval()
    features = [atlop.featurize(doc) for doc in documents]
    batch = atlop.collate(features)
    with torch.no_grad():
        output = atlop(batch)
        _, _, mention_attention = atlop.encode_mentions(batch)
        entity_attention = mean_entities(mention_attention, batch["entity_mentions"])
    explanations = output["explanations"]
    assert len(explanations) == len(batch["pairs"])
    for row in (0, len(explanations) - 1):
        b = batch["pairs"][row][0]
        scores = explanations[row]["sentence_scores"]
        assert len(scores) == len(documents[b].sents)
        head, tail = batch["pair_head"][row : row + 1], batch["pair_tail"][row : row + 1]
        weights = _context_weights(entity_attention, head, tail)[0]
        token_sents = torch.tensor(features[b]["token_sents"])
        for sent_id, score in enumerate(scores):
            mass = weights[: len(token_sents)][token_sents == sent_id].sum().item()
            assert score == pytest.approx(mass, abs=1e-5)
        assert sum(scores) <= 1.0 + 1e-4  # [CLS] / [SEP] / padding hold the rest of eq. 7's mass


def test_atlop_prediction_in_pair_chunks_equals_one_pass(atlop, documents, monkeypatch) -> None:
    from hiere.evidence import SentenceScoreRows
    from hiere.models.doc import transformer_doc

    atlop.eval()
    batch = batch_of(atlop, documents)
    with torch.no_grad():
        whole = atlop(batch)
        monkeypatch.setattr(transformer_doc, "PREDICT_PAIR_CHUNK", 9)  # 112 pairs: 13 chunks, the last of 4
        chunked = atlop(batch)
    assert len(batch["pairs"]) % 9 and len(batch["pairs"]) > 9
    assert torch.allclose(whole["scores"], chunked["scores"], atol=1e-5)
    assert isinstance(chunked["explanations"], SentenceScoreRows)  # lazy: a dict per row only when read
    rows = range(len(batch["pairs"]))
    assert [chunked["explanations"][row] for row in rows] == [whole["explanations"][row] for row in rows]


def test_prediction_batches_close_at_the_token_budget() -> None:
    from hiere.training.inference import batches

    sizes = [100, 300, 2600, 50, 4000, 120]
    assert list(batches([0, 1, 2, 3, 4, 5], 8)) == [[0, 1, 2, 3, 4, 5]]  # no budget: batch_size alone
    assert list(batches([0, 1, 2, 3, 4, 5], 2)) == [[0, 1], [2, 3], [4, 5]]
    # at most 3,000 subwords a batch; one document above the budget is read alone
    assert list(batches([0, 1, 2, 3, 4, 5], 8, sizes, 3000)) == [[0, 1, 2], [3], [4], [5]]
    assert list(batches([3, 0, 5, 1], 3, sizes, 3000)) == [[3, 0, 5], [1]]  # batch_size still closes a batch
    assert list(batches([], 8, sizes, 3000)) == []


def test_atlop_prediction_under_a_token_budget_gives_the_same_records(atlop, documents, monkeypatch) -> None:
    """``predict_batch_tokens`` splits a prediction batch of long documents; each document's scores stay."""
    from hiere.training.inference import feature_size, run_model

    features = [atlop.featurize(doc) for doc in documents]
    assert atlop.predict_batch_tokens == 4096  # the shipped bound: these two documents are one batch
    rows, whole, _ = run_model(atlop, features, None, 8, torch.device("cpu"))
    calls = []
    forward = type(atlop).forward
    monkeypatch.setattr(type(atlop), "forward", lambda self, batch: calls.append(len(batch["doc_n_sents"]))
                        or forward(self, batch))
    monkeypatch.setattr(atlop, "predict_batch_tokens", max(feature_size(f) for f in features))
    split_rows, split, _ = run_model(atlop, features, None, 8, torch.device("cpu"))
    assert calls == [1, 1]  # one document a batch under the smaller budget
    assert split_rows == rows
    torch.testing.assert_close(split, whole, atol=1e-5, rtol=1e-4)


def test_kmgre_row_chunks_keep_rows_whole_within_the_bound() -> None:
    from hiere.models.doc.kmgre import RowChunk, row_chunks

    counts = [3, 12, 0, 4, 5, 2]  # mention pairs per row; row 1 alone exceeds the bound
    pair_row = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    assert row_chunks(pair_row, len(counts), 10) == [
        RowChunk(0, 1, 0, 3), RowChunk(1, 2, 3, 15), RowChunk(2, 5, 15, 24), RowChunk(5, 6, 24, 26)]
    assert row_chunks(pair_row, len(counts), 100) == [RowChunk(0, 6, 0, 26)]
    assert row_chunks(pair_row[:0], 0, 10) == [RowChunk(0, 0, 0, 0)]


@pytest.mark.parametrize("options", [{}, {"extractor": "bilinear"}])
def test_kmgre_prediction_in_row_chunks_equals_one_pass(relations, documents, options, monkeypatch) -> None:
    from hiere.models.doc import kmgre as kmgre_module

    model = build("kmgre", relations, **options).eval()
    batch = batch_of(model, documents)
    counts = torch.bincount(batch["mention_pair_row"])
    assert counts.max() > 5 and len(batch["mention_pair_row"]) > 5 * 10  # rows above the bound, many chunks
    with torch.no_grad():
        margin = (-model(batch)["scores"][:, 0]).sort().values  # each row's best relation above TH
        middle = len(margin) // 2
        model.relation_classifier.bias[0] += (margin[middle - 1] + margin[middle]) / 2  # about half predicted
        monkeypatch.setattr(kmgre_module, "PREDICT_MENTION_PAIR_CHUNK", 10**9)
        whole = model(batch)
        monkeypatch.setattr(kmgre_module, "PREDICT_MENTION_PAIR_CHUNK", 5)  # rows of 6 mention pairs: alone
        chunked = model(batch)
    assert len(kmgre_module.row_chunks(batch["mention_pair_row"], len(batch["pairs"]), 5)) > 10
    assert torch.allclose(whole["scores"], chunked["scores"], atol=1e-5)
    assert chunked["explanations"] == whole["explanations"]
    assert len(whole["explanations"]) == len(batch["pairs"])
    assert None in whole["explanations"] and any(whole["explanations"])  # predicted and unpredicted rows


def test_kmgre_training_ignores_the_prediction_chunk_bound(relations, documents, monkeypatch) -> None:
    from hiere.models.doc import kmgre as kmgre_module

    model = build("kmgre", relations, evidence_loss_weight=0.1).train()
    model.on_epoch_start(model.config.warmup_epochs + 1)
    batch = batch_of(model, documents)
    outputs = []
    for bound in (10**9, 5):
        monkeypatch.setattr(kmgre_module, "PREDICT_MENTION_PAIR_CHUNK", bound)
        torch.manual_seed(1)  # dropout
        outputs.append(model(batch))
    assert torch.equal(outputs[0]["scores"], outputs[1]["scores"])
    assert torch.equal(outputs[0]["loss"], outputs[1]["loss"])
    assert outputs[0]["loss_terms"].keys() == {"adaptive_threshold", "key_focal", "evidence"}


def test_mean_entities_in_chunks_without_gradients_is_the_same_mean() -> None:
    from hiere.models.doc.transformer_doc import mean_entities

    torch.manual_seed(0)
    values = torch.rand(30, 4, 50)  # (mentions, heads, seq)
    entity_mentions = torch.tensor([[0, 1, 2], [3, -1, -1], [4, 5, -1]] * 9 + [[29, 28, 27]])
    whole = mean_entities(values, entity_mentions)  # gradients enabled: one gather
    with torch.no_grad():
        chunked = mean_entities(values, entity_mentions, chunk=4)
    assert torch.equal(whole, chunked)
    assert torch.allclose(whole[1], values[3]) and torch.allclose(whole[0], values[:3].mean(dim=0))


def test_kmgre_sentence_scores_come_from_key_pairs(relations, documents) -> None:
    model = build("kmgre", relations).eval()
    batch = batch_of(model, documents)
    with torch.no_grad():
        model.relation_classifier.bias[1] += 100.0  # every entity pair predicts relation 1
        output = model(batch)
    for (b, _, _), explanation in zip(batch["pairs"], output["explanations"], strict=True):
        scores = explanation["sentence_scores"]
        assert len(scores) == len(documents[b].sents)
        key_sents = {p["h_sent"] for p in explanation["key_mention_pairs"]}
        key_sents |= {p["t_sent"] for p in explanation["key_mention_pairs"]}
        assert key_sents <= {s for s, score in enumerate(scores) if score > 0}
        best = max(explanation["key_mention_pairs"], key=lambda p: p["p_key"])
        assert max(scores) == pytest.approx(best["p_key"], abs=1e-4)


def test_evidence_kl_loss_by_hand() -> None:
    from hiere.losses import evidence_kl_loss

    mass = torch.tensor([[0.1, 0.3, 0.1], [0.5, 0.2, 0.3]])  # row 0 sums to 0.5: normalised to [.2, .6, .2]
    evidence = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])  # row 1 has no evidence: left out
    expected = 0.5 * math.log(0.5 / 0.6) + 0.5 * math.log(0.5 / 0.2)
    assert evidence_kl_loss(mass, evidence).item() == pytest.approx(expected, rel=1e-5)
    assert evidence_kl_loss(mass, torch.zeros_like(mass)).item() == 0.0


def test_evidence_loss_switch_adds_exactly_its_term_and_reaches_the_encoder(relations, documents) -> None:
    plain = build("atlop", relations, emb_size=128, block_size=64).train()
    guided = build("atlop", relations, emb_size=128, block_size=64, evidence_loss_weight=0.1).train()
    batch = batch_of(plain, documents)
    assert batch["evidence"].shape[0] == len(batch["pairs"]) and batch["evidence"].sum() > 0
    torch.manual_seed(1)
    plain_out = plain(batch)
    torch.manual_seed(1)
    guided_out = guided(batch)
    assert "loss_terms" not in plain_out  # switch off: no evidence term at all
    terms = guided_out["loss_terms"]
    assert terms["evidence"] > 0
    expected = plain_out["loss"].item() + 0.1 * terms["evidence"].item()
    assert guided_out["loss"].item() == pytest.approx(expected, rel=1e-5)
    # the evidence term alone: gradient reaches the encoder's attention, not the classifier
    guided.zero_grad()
    _, _, mention_attention = guided.encode_mentions(batch)
    from hiere.models.doc.transformer_doc import mean_entities

    entity_attention = mean_entities(mention_attention, batch["entity_mentions"])
    guided.evidence_loss(batch, entity_attention, batch["pair_head"], batch["pair_tail"], batch["pair_doc"]).backward()
    query = [p for name, p in guided.encoder.named_parameters() if "query" in name and p.grad is not None]
    assert query and any(p.grad.abs().sum() > 0 for p in query)
    assert guided.bilinear.weight.grad is None


def test_kmgre_evidence_loss_on_fused_mention_pairs(relations, documents) -> None:
    model = build("kmgre", relations, evidence_loss_weight=0.1).train()
    output = model(batch_of(model, documents))
    evidence = output["loss_terms"]["evidence"]
    assert torch.isfinite(evidence) and evidence > 0
    output["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


@pytest.mark.parametrize(("name", "values", "message"), [
    ("atlop", {"emb_size": 100, "block_size": 64}, "model.emb_size=100: must be a multiple of model.block_size=64"),
    ("kmgre", {"fusion": "max"}, "model.fusion='max': must be one of key, mean"),
    ("kmgre", {"extractor": "mlp"}, "model.extractor='mlp': must be one of linear, bilinear"),
    ("kmgre", {"extractor": "bilinear", "emb_size": 100}, "model.emb_size=100: must be a multiple"),
])
def test_bad_head_settings_are_one_config_error_at_load(name, values, message):
    from hiere.errors import HiereConfigError
    from hiere.models import get_model_class

    with pytest.raises(HiereConfigError, match=re.escape(message)):
        get_model_class(name).Config.from_dict(values)


def test_kmgre_linear_extractor_ignores_the_bilinear_block_sizes():
    from hiere.models import get_model_class

    assert get_model_class("kmgre").Config.from_dict({"extractor": "linear", "emb_size": 100}).emb_size == 100


def test_mention_encoder_reads_each_mention_at_its_start_marker(atlop, kmgre, documents) -> None:
    from hiere.encoders.mentions import MarkedMentions, MentionEncoder

    assert isinstance(atlop.encoder, MentionEncoder) and isinstance(kmgre.encoder, MarkedMentions)
    document = documents[0]
    features = atlop.encoder.featurize_mentions(document)
    marker = atlop.encoder.marker_ids[0]
    positions = [p for entity in features["mention_positions"] for p in entity]
    assert len(positions) == sum(len(entity) for entity in document.entities)
    assert all(features["input_ids"][p] == marker for p in positions)  # the start marker of each mention
    assert [s for entity in features["mention_sents"] for s in entity] == [
        m.sent_id for entity in document.entities for m in entity]
    assert {features["token_sents"][p + 1] for p in positions} <= set(range(len(document.sents)))
    batch = atlop.encoder.collate_mentions([features, atlop.encoder.featurize_mentions(documents[1])])
    assert batch["entity_offsets"] == [0, len(document.entities)]
    with torch.no_grad():
        hidden, states, attention = atlop.encoder.encode_mentions(batch)
    n_mentions = batch["mention_doc"].shape[0]
    assert states.shape == (n_mentions, hidden.shape[-1]) and attention.shape[0] == n_mentions
    torch.testing.assert_close(states, hidden[batch["mention_doc"], batch["mention_position"]])


def test_kmgre_bilinear_training_in_classify_chunks_gives_the_loss_and_gradients_of_one_call(
    relations, documents, monkeypatch
) -> None:
    from hiere.models.doc import kmgre as kmgre_module

    model = build("kmgre", relations, extractor="bilinear").train()
    model.on_epoch_start(model.config.warmup_epochs + 1)
    batch = batch_of(model, documents)
    assert len(batch["mention_pairs"]) > 3 * 4  # several chunks of 4
    results = []
    for chunk in (10**9, 4):
        monkeypatch.setattr(kmgre_module, "CLASSIFY_CHUNK", chunk)
        torch.manual_seed(1)  # dropout
        model.zero_grad()
        output = model(batch)
        output["loss"].backward()
        results.append((output["scores"].detach(), output["loss"].detach(),
                        model.relation_classifier.weight.grad.clone(), model.head_extractor.weight.grad.clone()))
    for whole, chunked in zip(*results, strict=True):
        torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["atlop", "kmgre"])
def test_evidence_loss_trains_under_bf16_autocast(name, relations, documents) -> None:
    model = build(name, relations, evidence_loss_weight=0.1).train()
    if name == "kmgre":
        model.on_epoch_start(model.config.warmup_epochs + 1)  # EM: fused by the key pairs
    batch = batch_of(model, documents)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(batch)
    output["loss"].backward()
    evidence = output["loss_terms"]["evidence"]
    assert evidence.dtype == torch.float32 and torch.isfinite(evidence) and evidence > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_classify_in_chunks_gives_the_logits_and_gradients_of_one_call() -> None:
    from hiere.models.doc.transformer_doc import classify_in_chunks, grouped_bilinear

    torch.manual_seed(0)
    linear = torch.nn.Linear(8 * 4, 5)  # emb_size 8, block 4 -> (n, 32) -> 5 relations

    def classify(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return linear(grouped_bilinear(first, second, 4))

    first, second = torch.randn(11, 8, requires_grad=True), torch.randn(11, 8, requires_grad=True)
    whole = classify(first, second)
    grads = torch.autograd.grad(whole.square().sum(), [first, second, linear.weight])
    chunked = classify_in_chunks(classify, first, second, chunk=3)  # chunks of 3, 3, 3, 2 pairs
    assert chunked.shape == (11, 5) and torch.allclose(chunked, whole, atol=1e-6)
    for a, b in zip(torch.autograd.grad(chunked.square().sum(), [first, second, linear.weight]), grads, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(classify_in_chunks(classify, first, second, chunk=4), whole, atol=1e-6)
    assert classify_in_chunks(classify, first[:0], second[:0]).shape == (0, 5)
