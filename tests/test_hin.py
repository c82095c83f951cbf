"""HIN on three real Re-DocRED documents (hidden 16): shapes, gradients, the batched sentence-level
inference against eq. 10 written out, the equal-length BiLSTM against per-row runs, the Table 2 ablation
switches, evidence explanations, the transformer input (frozen, windows, fine-tuned) and a train/load round trip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hiere.data.docred import read_docred
from hiere.data.relations import RelationMap
from hiere.encoders.lstm import BiLSTM
from hiere.errors import HiereConfigError
from hiere.models import get_model_class
from hiere.models.doc.hin import HIN, HINConfig, equal_length_bilstm, sentence_layout

os.environ["HF_HUB_OFFLINE"] = "1"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "redocred"
SMALL = {"hidden": 16, "subspace_dim": 8}


@pytest.fixture(scope="module")
def relations() -> RelationMap:
    return RelationMap.from_rel_info(DATA / "rel_info.json")


@pytest.fixture(scope="module")
def documents(relations):
    docs = read_docred(DATA / "dev_revised.json", relations.relations, limit=3)
    for doc in docs:  # keep the tests small: the first 8 entities of each document
        doc.entities = doc.entities[:8]
        doc.facts = [f for f in doc.facts if f.h < 8 and f.t < 8]
    return docs


def build(relations, documents, seed: int = 0, **options) -> HIN:
    config = HINConfig.from_dict({**SMALL, **options})
    resources = HIN.build_resources(config, documents, relations)
    torch.manual_seed(seed)
    return HIN(config, resources)


def batch_of(model: HIN, documents) -> dict:
    return model.collate([model.featurize(doc) for doc in documents])


@pytest.fixture(scope="module")
def model(relations, documents) -> HIN:
    return build(relations, documents)


def test_registry_and_bad_config(relations, documents) -> None:
    assert get_model_class("hin") is HIN
    with pytest.raises(HiereConfigError, match="glove or transformer"):
        build(relations, documents, words="elmo")
    with pytest.raises(HiereConfigError, match="unknown model keys"):
        HINConfig.from_dict({"subspaces": 3})


def test_shapes_loss_and_gradients(model, documents, relations) -> None:
    batch = batch_of(model, documents)
    n_pairs = sum(len(d.entities) * (len(d.entities) - 1) for d in documents)
    assert len(batch["pairs"]) == n_pairs and batch["labels"].shape == (n_pairs, len(relations))
    assert batch["doc_n_sents"].tolist() == [len(d.sents) for d in documents]
    fact = documents[1].facts[0]
    assert batch["labels"][batch["pairs"].index((1, fact.h, fact.t)), relations[fact.r]] == 1
    model.train()
    model.zero_grad()
    output = model(batch)
    assert output["scores"].shape == (n_pairs, len(relations)) and "explanations" not in output
    assert 0.5 < float(output["loss"].detach()) < 1.0  # BCE of near-0.5 sigmoids at initialisation
    output["loss"].backward()
    for name in (
        "BiLSTM_E.forward_lstm.weight_ih_l0",
        "entity_inference.project_in.1.weight",
        "entity_inference.bilinears.0.weight",
        "entity_inference.G_e.0.weight",
        "BiLSTM_S.backward_lstm.weight_hh_l0",
        "word_attention.context.weight",
        "G_s.0.weight",
        "BiLSTM_D.forward_lstm.weight_ih_l0",
        "sentence_attention.projection.weight",
        "W_r.weight",
    ):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    assert model.encoder.embedding.weight.grad is None  # GloVe stays fixed


def test_sentence_layout_cuts_each_sentence(documents) -> None:
    spans = [[(0, 3), (3, 5)], [(0, 4)]]
    layout = sentence_layout(spans, seq_len=6)
    assert layout["sent_token_index"].tolist() == [[0, 1, 2, 0], [3, 4, 0, 0], [6, 7, 8, 9]]
    assert layout["sent_lengths"].tolist() == [3, 2, 4]
    assert layout["doc_sent_offset"].tolist() == [0, 2] and layout["doc_n_sents"].tolist() == [2, 1]


def test_batched_sentence_inference_is_eq_10(model) -> None:
    torch.manual_seed(1)
    d = model.G_s[0].in_features // 4
    sentences, entity = torch.randn(5, d), torch.randn(3, d)
    rows, row_sent = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 2, 2, 3, 4])
    fast = model.sentence_inference(sentences, entity, rows, row_sent)
    s, i = sentences[row_sent], entity[rows]
    written_out = model.G_s(torch.cat([s, i, s - i, s * i], dim=-1))  # G_s([S_j; I_e; S_j - I_e; S_j ∘ I_e])
    torch.testing.assert_close(fast, written_out, rtol=1e-5, atol=1e-6)


def test_equal_length_bilstm_matches_each_row_alone() -> None:
    torch.manual_seed(2)
    bilstm = BiLSTM(6, 4)
    inputs, lengths = torch.randn(4, 5, 6), torch.tensor([3, 5, 3, 1])
    output = equal_length_bilstm(bilstm, inputs, lengths)
    for row, length in enumerate(lengths.tolist()):
        alone = bilstm(inputs[row : row + 1, :length], lengths[row : row + 1])
        torch.testing.assert_close(output[row, :length], alone[0])
        assert output[row, length:].abs().sum() == 0
    torch.testing.assert_close(output, bilstm(inputs, lengths))  # same as the packed BiLSTM


def test_same_seed_same_scores(relations, documents) -> None:
    first, second = build(relations, documents, seed=3), build(relations, documents, seed=3)
    first.eval(), second.eval()
    with torch.no_grad():
        assert torch.equal(first(batch_of(first, documents))["scores"], second(batch_of(second, documents))["scores"])


def test_entity_inference_per_entity_equals_per_pair(model, documents) -> None:
    """Eq. 3 projected once per entity and gathered per pair gives the per-pair computation's I_e."""
    model.eval()
    batch = batch_of(model, documents)
    with torch.no_grad():
        states = equal_length_bilstm(model.BiLSTM_E, model.word_vectors(batch), batch["lengths"])
        entities = torch.bmm(batch["entity_map"], states)
        n = entities.shape[1]
        per_pair = model.entity_inference(entities[batch["pair_doc"], batch["pair_h"]],
                                          entities[batch["pair_doc"], batch["pair_t"]],
                                          batch["distance_ht"], batch["distance_th"])
        table = entities.reshape(-1, entities.shape[-1])
        per_entity = model.entity_inference(table, table, batch["distance_ht"], batch["distance_th"],
                                            batch["pair_doc"] * n + batch["pair_h"],
                                            batch["pair_doc"] * n + batch["pair_t"])
    assert per_pair.shape == per_entity.shape == (len(batch["pairs"]), entities.shape[-1])
    assert torch.allclose(per_pair, per_entity, atol=1e-6)


def test_explanations_are_the_sentence_attention(model, documents) -> None:
    model.eval()
    batch = batch_of(model, documents)
    with torch.no_grad():
        output = model(batch)
        inputs = model.word_vectors(batch)
        states = equal_length_bilstm(model.BiLSTM_E, inputs, batch["lengths"])
        entities = torch.bmm(batch["entity_map"], states)
        entity = model.entity_inference(
            entities[batch["pair_doc"], batch["pair_h"]],
            entities[batch["pair_doc"], batch["pair_t"]],
            batch["distance_ht"],
            batch["distance_th"],
        )
        _, weights, mask = model.document_inference(inputs, entity, batch)
    explanations = output["explanations"]
    assert len(explanations) == len(batch["pairs"])
    assert torch.allclose(weights.sum(dim=1), torch.ones(len(weights)))  # eq. 13 over the document's sentences
    for row in (0, len(explanations) - 1):
        n_sents = len(documents[batch["pairs"][row][0]].sents)
        assert mask[row].sum() == n_sents
        expected = [round(v, 6) for v in weights[row, :n_sents].tolist()]
        assert explanations[row]["sentence_scores"] == expected


def parameter_names(model: HIN) -> set[str]:
    return {name for name, _ in model.named_parameters()}


def test_ablation_switches_remove_their_component(model, relations, documents) -> None:
    full = parameter_names(model)
    d, k, distance = 32, 8, 20
    assert (
        model.entity_inference.G_e[0].in_features == 2 * (k + k + 2 * k) + distance
    )  # bilinear, translation, E_a, E_b

    no_translation = build(relations, documents, use_translation=False)
    assert no_translation.entity_inference.G_e[0].in_features == 2 * (k + 2 * k) + distance
    assert len(no_translation.entity_inference.inference_vectors(torch.zeros(2, d), torch.zeros(2, d))) == 2 * 3

    no_bilinear = build(relations, documents, use_bilinear=False)
    assert not any("bilinears" in name for name in parameter_names(no_bilinear))
    assert no_bilinear.entity_inference.G_e[0].in_features == 2 * (k + 2 * k) + distance

    no_multispace = build(relations, documents, multispace=False, bilinear_dim=8)
    names = parameter_names(no_multispace)
    assert not any("project_" in name for name in names) and "entity_inference.bilinears.1.weight" not in names
    assert no_multispace.entity_inference.num_subspaces == 1
    head, tail = torch.randn(2, d), torch.randn(2, d)
    pieces = no_multispace.entity_inference.inference_vectors(head, tail)
    assert torch.equal(pieces[1], tail - head) and torch.equal(pieces[2], head)  # E^1 = E, no projection

    no_sentence = build(relations, documents, sentence_inference=False)
    assert not any(name.startswith("G_s") for name in parameter_names(no_sentence))
    assert {"BiLSTM_D.forward_lstm.weight_ih_l0", "sentence_attention.context.weight"} <= parameter_names(no_sentence)
    no_sentence.eval()
    batch = batch_of(no_sentence, documents)
    with torch.no_grad():
        inputs = no_sentence.word_vectors(batch)
        entity = torch.randn(len(batch["pairs"]), d)
        document, weights, _ = no_sentence.document_inference(inputs, entity, batch)
    first_doc = batch["pair_doc"] == 0  # I_d no longer depends on the pair: one vector per document
    assert torch.allclose(document[first_doc], document[first_doc][:1].expand(int(first_doc.sum()), -1))

    no_hierarchy = build(relations, documents, hierarchical_aggregation=False)
    names = parameter_names(no_hierarchy)
    assert "document_lstm.forward_lstm.weight_ih_l0" in names and "document_lstm.forward_lstm.weight_ih_l0" not in full
    assert not any(
        n.split(".")[0] in {"BiLSTM_S", "BiLSTM_D", "G_s", "word_attention", "sentence_attention"} for n in names
    )
    no_hierarchy.eval()
    with torch.no_grad():
        output = no_hierarchy(batch_of(no_hierarchy, documents))
    assert "explanations" not in output and output["scores"].shape[0] == len(batch["pairs"])

    everything = build(
        relations,
        documents,
        use_translation=False,
        use_bilinear=False,
        multispace=False,
        sentence_inference=False,
        hierarchical_aggregation=False,
    )
    assert everything.entity_inference.G_e[0].in_features == 2 * d + distance  # [E_a; E_b; M(d_ba) - M(d_ab)]
    assert sum(p.numel() for p in everything.parameters()) < sum(p.numel() for p in model.parameters())


def test_too_many_entities_is_a_clear_error(relations, documents) -> None:
    small = build(relations, documents, max_entities=4)
    with pytest.raises(ValueError, match="max_entities=4"):
        small.featurize(documents[0])


def test_transformer_words_frozen_with_windows(relations, documents) -> None:
    model = build(relations, documents, words="transformer", max_length=64, window_overlap=16)
    model.init_pretrained()
    feature = model.featurize(documents[1])
    assert len(feature["input_ids"]) > 64  # longer than one window: encoded in overlapping windows
    assert feature["word_features"].shape == (len(documents[1].tokens), model.encoder.hidden_size)  # every word
    assert not any(p.requires_grad for p in model.encoder.transformer.parameters())
    model.train()
    output = model(model.collate([model.featurize(doc) for doc in documents[:2]]))
    output["loss"].backward()
    assert model.encoder.word_projection.weight.shape == (100, model.encoder.hidden_size)
    assert model.encoder.word_projection.weight.grad.abs().sum() > 0


def test_transformer_words_fine_tuned(relations, documents) -> None:
    model = build(relations, documents[:1], words="transformer", fine_tune=True, max_length=64, window_overlap=16)
    model.init_pretrained()
    batch = batch_of(model, documents[:1])
    assert "word_features" not in batch and batch["input_ids"].shape[1] > 64
    model.train()
    model(batch)["loss"].backward()
    grad = model.get_parameter("encoder.transformer.embeddings.word_embeddings.weight").grad
    assert grad is not None and grad.abs().sum() > 0


def test_train_save_load_predict_with_evidence(tmp_path) -> None:
    from hiere import load
    from hiere.config import resolve
    from hiere.training.trainer import train

    config = resolve(
        {
            "model": {"name": "hin", **SMALL},
            "data": {
                "train": str(DATA / "dev_revised.json"),
                "train_slice": [0, 2],
                "dev": str(DATA / "dev_revised.json"),
                "dev_slice": [450, 452],
                "relations": str(DATA / "rel_info.json"),
            },
            "trainer": {"epochs": 1, "max_steps": 1, "batch_size": 2, "progress": False, "device": "cpu"},
        }
    )
    model_dir = train(config, tmp_path / "hin")
    predictor = load(model_dir)
    documents = predictor.read(DATA / "dev_revised.json")[450:451]
    predictor.threshold = 0.0  # every (pair, relation) -> every record carries its evidence
    records = predictor.predict(documents)
    n_entities = len(documents[0].entities)
    assert len(records) == n_entities * (n_entities - 1) * (len(predictor.relations) - 1)
    assert all(0 <= s < len(documents[0].sents) for s in records[0]["evidence"])
    assert len(records[0]["evidence"]) == 3 and "sentence_scores" not in records[0]
    one = predictor.predict(documents, evidence_top_k=1)
    assert all(len(r["evidence"]) == 1 and r["evidence"][0] in e["evidence"] for r, e in zip(one, records, strict=True))
    assert all(r["evidence"] == [] for r in predictor.predict(documents, evidence_min_score=1.01))
    assert predictor.predict(documents, explain=False)[0].keys() == {"title", "h_idx", "t_idx", "r", "score"}


def test_hin_weights_saved_under_the_earlier_names_still_load(relations, documents) -> None:
    model = build(relations, documents)
    old = {name.replace("encoder.", "word_embedding.", 1) if name.startswith("encoder.") else name: value
           for name, value in model.state_dict().items()}
    assert "word_embedding.embedding.weight" in old
    fresh = build(relations, documents)
    fresh.load_state_dict(type(fresh).upgrade_state_dict(old))
    assert torch.equal(fresh.encoder.embedding.weight, model.encoder.embedding.weight)


def test_bilstm_re_reads_words_through_either_word_encoder(relations, documents, tmp_path) -> None:
    """BiLSTM-RE takes the same word encoders as HIN: GloVe (the baseline) or transformer features."""
    from hiere.encoders.words import GloVeWords, TransformerWords
    from hiere.models.doc.bilstm import BiLSTMConfig, BiLSTMRE

    for words, encoder_class in (("glove", GloVeWords), ("transformer", TransformerWords)):
        config = BiLSTMConfig.from_dict({"hidden": 16, "words": words, "max_length": 64, "window_overlap": 16})
        torch.manual_seed(0)
        model = BiLSTMRE(config, BiLSTMRE.build_resources(config, documents, relations))
        model.init_pretrained()
        assert isinstance(model.encoder, encoder_class)
        model.train()
        output = model(model.collate([model.featurize(doc) for doc in documents[:2]]))
        output["loss"].backward()
        assert model.lstm.forward_lstm.weight_ih_l0.grad.abs().sum() > 0
        if words == "transformer":
            assert model.encoder.word_projection.weight.grad.abs().sum() > 0
            assert not any(p.requires_grad for p in model.encoder.transformer.parameters())  # fixed features
    with pytest.raises(HiereConfigError, match="model.words must be glove or transformer"):
        BiLSTMConfig.from_dict({"words": "elmo"})
