"""bert_att and hiclre (Li et al. 2022) on small slices of GIDS: cropping, features, shapes, gradients,
the perturbation and memory terms by hand, ablation switches, batch independence, a trainer/API round trip."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hiere.config import load_config
from hiere.data.bags import read_bags
from hiere.data.relations import RelationMap
from hiere.encoders.sentence import crop_words, entity_mean
from hiere.errors import HiereConfigError
from hiere.models import get_model_class
from hiere.models.bag.hiclre import bag_key

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GIDS = DATA / "gids"
SMALL = {"max_length": 32, "heads": 4, "mlp_ratio": 1}


@pytest.fixture(scope="module")
def relations() -> RelationMap:
    return RelationMap.from_rel_info(GIDS / "gids_rel2id.json")


@pytest.fixture(scope="module")
def train_bags(relations):
    """The first GIDS training bags; the two with two sentences come first (bags 0 and 5 of the file)."""
    bags = read_bags(GIDS / "gids_dev.txt", relations, mode="pair_relation", require_labels=True, limit=8)
    multi = [bag for bag in bags if bag.size > 1]
    return multi[:2] + [bag for bag in bags if bag.size == 1][:1]


def build(name: str, bags, relations, seed: int = 0, **options):
    model_class = get_model_class(name)
    keys = {f.name for f in model_class.Config.__dataclass_fields__.values()}
    config = model_class.Config.from_dict({k: v for k, v in {**SMALL, **options}.items() if k in keys})
    torch.manual_seed(seed)
    return model_class(config, model_class.build_resources(config, bags, relations))


def batch_of(model, bags):
    return model.collate([model.featurize(bag) for bag in bags])


# ---------------------------------------------------------------- cropping and features


def test_crop_words_by_hand():
    assert crop_words([1, 1, 1], (0, 1), (2, 3), 5) == [(0, 3)]  # fits: everything
    # region [2, 5) has 3 subwords; widened alternately left, right, left within 6
    assert crop_words([1, 1, 1, 1, 1, 1, 1, 1], (2, 3), (4, 5), 6) == [(0, 6)]
    # region too long: one window of budget // 2 around each entity
    assert crop_words([1] * 10, (1, 2), (7, 8), 4) == [(0, 2), (6, 8)]
    # a word of 3 subwords does not fit the remaining budget
    assert crop_words([3, 1, 1, 1, 3], (1, 2), (3, 4), 4) == [(1, 4)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 4), min_size=2, max_size=40),
    st.data(),
    st.integers(8, 40),
)
def test_crop_words_keeps_entities_within_budget(counts, data, budget):
    n = len(counts)
    head_start = data.draw(st.integers(0, n - 1))
    tail_start = data.draw(st.integers(0, n - 1))
    head = (head_start, head_start + 1)
    tail = (tail_start, tail_start + 1)
    ranges = crop_words(counts, head, tail, budget)
    kept = [w for start, end in ranges for w in range(start, end)]
    assert kept == sorted(set(kept))  # ordered, no duplicates
    assert head_start in kept and tail_start in kept
    assert sum(counts[w] for w in kept) <= max(budget, sum(counts[w] for w in {head_start, tail_start}))


def test_featurize_spans_cover_the_entities(relations):
    """Long GIDS sentences are cropped to max_length and the entity spans decode to the entity words."""
    bags = read_bags(GIDS / "gids_dev.txt", relations, require_labels=True, limit=6)
    model = build("bert_att", bags, relations, max_length=32)
    tokenizer = model.encoder.tokenizer
    for bag in bags:
        for sentence, features in zip(bag.sentences, model.featurize(bag)["sentences"], strict=True):
            ids = features["input_ids"]
            assert len(ids) <= 32 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
            for span, (start, end) in ((features["head"], sentence.head), (features["tail"], sentence.tail)):
                decoded = tokenizer.decode(ids[span[0] : span[1]]).replace(" ", "")
                words = "".join(sentence.tokens[start:end]).lower()
                assert decoded == words.replace("##", "") or words.startswith(decoded)
    assert max(len(s.tokens) for b in bags for s in b.sentences) > 32  # cropping was exercised


def test_entity_mean_by_hand():
    hidden = torch.arange(12, dtype=torch.float).view(1, 4, 3)  # rows [0,1,2], [3,4,5], [6,7,8], [9,10,11]
    assert entity_mean(hidden, torch.tensor([[1, 3]])).tolist() == [[4.5, 5.5, 6.5]]


# ---------------------------------------------------------------- bert_att


def test_bert_att_shapes_gradients_and_explanations(train_bags, relations):
    model = build("bert_att", train_bags, relations)
    batch = batch_of(model, train_bags)
    n_sent = sum(bag.size for bag in train_bags)
    assert batch["input_ids"].shape[0] == n_sent and batch["head_span"].shape == (n_sent, 2)
    model.train()
    output = model(batch)
    output["loss"].backward()
    assert output["scores"].shape == (3, len(relations))
    assert model.encoder.transformer.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert model.relation_queries.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        output = model(batch)
        alone = model(batch_of(model, train_bags[1:2]))["scores"]
    assert torch.allclose(alone[0], output["scores"][1], atol=1e-5)  # a bag's score does not depend on its batch
    weights = output["explanations"][0]["by_relation"][relations.relations[1]]["attention"]["weights"]
    assert len(weights[0]) == train_bags[0].size and math.isclose(sum(weights[0]), 1.0, abs_tol=1e-4)


# ---------------------------------------------------------------- hiclre


def test_hiclre_loss_is_eq17_and_reaches_every_part(train_bags, relations):
    model = build("hiclre", train_bags, relations)
    model.train()
    model.on_epoch_start(1)
    output = model(batch_of(model, train_bags))
    lambdas = model.config.lambdas
    terms = output["loss_terms"]
    expected = (
        lambdas[0] * terms["entity_info_nce"]
        + lambdas[1] * terms["sentence_info_nce"]
        + lambdas[2] * terms["bag_info_nce"]
        + lambdas[3] * terms["task"]
    )
    assert torch.isclose(output["loss"].detach(), expected, atol=1e-5)
    output["loss"].backward()
    for module in (model.entity_level, model.sentence_level, model.bag_level):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    assert model.encoder.transformer.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert model.perturbation_seconds > 0  # the eq. 12 pass ran


def test_hiclre_ablation_switches_remove_components(train_bags, relations):
    full = build("hiclre", train_bags, relations)
    plain = build("hiclre", train_bags, relations, recontextualization=False)
    assert not hasattr(plain, "bag_level")
    assert sum(p.numel() for p in plain.parameters()) < sum(p.numel() for p in full.parameters())

    no_cl = build("hiclre", train_bags, relations, contrastive=False)
    no_cl.train()
    output = no_cl(batch_of(no_cl, train_bags))
    assert torch.equal(output["loss"].detach(), output["loss_terms"]["task"])
    assert list(output["loss_terms"]) == ["task"]
    assert not any(name.startswith("memory_") for name, _ in no_cl.named_buffers())

    no_gradient = build(
        "hiclre",
        train_bags,
        relations,
        entity_gradient=False,
        sentence_gradient=False,
        bag_gradient=False,
        bag_memory=False,
    )
    no_gradient.train()
    no_gradient(batch_of(no_gradient, train_bags))
    assert no_gradient.perturbation_seconds == 0.0  # no extra backward
    assert {n for n, _ in no_gradient.named_buffers() if n.startswith("memory_")} == {
        "memory_entity",
        "memory_entity_epoch",
        "memory_sentence",
        "memory_sentence_epoch",
    }


def test_memory_is_bounded_and_inertia_weight_is_eq14(train_bags, relations):
    model = build("hiclre", train_bags, relations, total_epochs=4)
    n_sentences = sum(bag.size for bag in train_bags)
    assert model.memory_sentence.shape == (n_sentences, model.hidden_size)
    assert model.memory_bag.shape == (len(train_bags), model.hidden_size)
    batch = batch_of(model, train_bags)
    assert batch["sentence_slot"].tolist() == list(range(n_sentences))
    assert batch["bag_slot"].tolist() == [0, 1, 2]

    model.on_epoch_start(1)
    first = torch.randn(2, model.hidden_size)
    slots = torch.tensor([1, -1])  # the second row has no slot (not a training bag)
    assert model.inertia_weight("bag", first, slots).abs().sum() == 0  # nothing stored before epoch 1
    assert torch.equal(model.memory_bag[1], first[0]) and model.memory_bag_epoch.tolist() == [0, 1, 0]

    model.on_epoch_start(2)
    second = torch.randn(2, model.hidden_size)
    weight = model.inertia_weight("bag", second, slots)
    expected = (4 - 2) / 4 * torch.nn.functional.cosine_similarity(second[0], first[0], dim=0)
    assert torch.allclose(weight[0, 0], expected, atol=1e-6) and weight[1, 0] == 0

    model.on_epoch_start(4)  # stored at epoch 2, not u - 1 = 3: no memory term
    assert model.inertia_weight("bag", second, slots)[0, 0] == 0


def test_inertia_weight_takes_T_from_the_trainer_unless_total_epochs_is_set(train_bags, relations):
    unset = build("hiclre", train_bags, relations)
    assert unset.config.total_epochs is None
    unset.on_epoch_start(1, 6)  # the trainer passes trainer.epochs
    assert unset.total_epochs == 6
    fixed = build("hiclre", train_bags, relations, total_epochs=4)
    fixed.on_epoch_start(1, 6)
    assert fixed.total_epochs == 4
    slots = torch.tensor([0])
    first, second = torch.randn(1, unset.hidden_size), torch.randn(1, unset.hidden_size)
    unset.inertia_weight("bag", first, slots)
    unset.on_epoch_start(2, 6)
    expected = (6 - 2) / 6 * torch.nn.functional.cosine_similarity(second[0], first[0], dim=0)
    assert torch.allclose(unset.inertia_weight("bag", second, slots)[0, 0], expected, atol=1e-6)


def test_dev_bags_have_no_memory_slot(train_bags, relations):
    model = build("hiclre", train_bags, relations)
    dev = read_bags(GIDS / "gids_dev.txt", relations, require_labels=True, offset=866, limit=2)
    batch = batch_of(model, dev)
    assert (batch["bag_slot"] == -1).all() and (batch["sentence_slot"] == -1).all()


def test_large_training_bags_are_sampled_with_their_memory_slots(relations):
    """max_bag_sentences: a training bag above the cap is read through a seeded random subset whose
    sentences keep their own memory slots; evaluation reads every sentence."""
    bags = read_bags(GIDS / "gids_dev.txt", relations, mode="pair_relation", require_labels=True, limit=40)
    big = max(bags, key=lambda bag: bag.size)
    assert big.size >= 3
    model = build("hiclre", bags, relations, max_bag_sentences=2)
    first_slot = model.resources.extra["memory_slots"][bag_key(big)][1]
    feature = model.featurize(big)
    model.train()
    torch.manual_seed(3)
    batch = model.collate([feature])
    slots = batch["sentence_slot"].tolist()
    assert batch["input_ids"].shape[0] == 2 and len(slots) == 2 and slots == sorted(set(slots))
    assert all(first_slot <= slot < first_slot + big.size for slot in slots)
    kept = [slot - first_slot for slot in slots]
    expected = [model.relations[big.sentences[i].relation] for i in kept]
    assert batch["sentence_labels"].tolist() == expected
    torch.manual_seed(3)
    assert model.collate([feature])["sentence_slot"].tolist() == slots  # seeded
    model.eval()
    assert model.collate([feature])["input_ids"].shape[0] == big.size  # inference: all sentences
    assert len(feature["sentences"]) == big.size  # the stored feature is not changed
    with pytest.raises(HiereConfigError, match="max_bag_sentences"):
        build("bert_att", bags, relations, max_bag_sentences=-1)


def test_inference_in_relation_chunks_matches_one_pass(train_bags, relations, monkeypatch):
    """Inference recontextualizes the relations' readings in chunks (bounded memory): same scores and
    explanations as one pass over all relations."""
    import hiere.models.bag.hiclre as hiclre_module

    model = build("hiclre", train_bags, relations).eval()
    batch = batch_of(model, train_bags)
    with torch.no_grad():
        monkeypatch.setattr(hiclre_module, "RELATION_CHUNK", 2)
        chunked = model(batch)
        monkeypatch.setattr(hiclre_module, "RELATION_CHUNK", len(relations))
        whole = model(batch)
    assert len(relations) > 2
    assert torch.allclose(chunked["scores"], whole["scores"], atol=1e-6)

    def weights(explanations):
        return torch.tensor(
            [
                w
                for bag in explanations
                for relation in bag["by_relation"].values()
                for level in relation["attention"]["weights"]
                for w in level
            ]
        )

    assert len(weights(chunked["explanations"])) == len(weights(whole["explanations"])) > 0
    assert torch.allclose(weights(chunked["explanations"]), weights(whole["explanations"]), atol=2e-6)


def test_perturbation_follows_the_task_gradient(train_bags, relations):
    """Eq. 13 alone (no memory): the bag pseudo-positive is h_B_att + ε g/‖g‖, g = ∂L_task/∂h_B_att."""
    model = build(
        "hiclre",
        train_bags,
        relations,
        entity_memory=False,
        sentence_memory=False,
        bag_memory=False,
        dropout=0.0,
    )
    model.train()
    batch = batch_of(model, train_bags)
    captured = {}

    def capture(anchor, positive, temperature):
        captured.setdefault("pairs", []).append((anchor.detach(), positive.detach()))
        return anchor.sum() * 0

    import hiere.models.bag.hiclre as hiclre_module

    original = hiclre_module.info_nce
    hiclre_module.info_nce = capture
    try:
        model(batch)
    finally:
        hiclre_module.info_nce = original
    bag_anchor, bag_positive = captured["pairs"][2]
    difference = bag_positive - bag_anchor  # (n_bags, d)
    assert torch.allclose(difference.norm(dim=-1), torch.full((3,), model.config.epsilon), atol=1e-4)
    # the direction raises the task loss: a small step along it increases L_task
    anchor = bag_anchor.clone().requires_grad_(True)
    logits = model.classifier(anchor)
    from hiere.models.bag.common import training_groups

    _, labels, _ = training_groups(batch, "relation")
    loss = torch.nn.functional.cross_entropy(logits, labels)
    (gradient,) = torch.autograd.grad(loss, anchor)
    cosine = torch.nn.functional.cosine_similarity(gradient, difference, dim=-1)
    assert torch.allclose(cosine, torch.ones(3), atol=1e-4)


def test_scores_do_not_depend_on_the_other_bags(train_bags, relations):
    model = build("hiclre", train_bags, relations)
    model.eval()
    with torch.no_grad():
        together = model(batch_of(model, train_bags))
        alone = model(batch_of(model, train_bags[:1]))
    assert torch.allclose(together["scores"][:1], alone["scores"], atol=1e-5)
    levels = together["explanations"][0]["by_relation"][relations.relations[2]]["attention"]
    assert levels["levels"] == ["sentence_attention", "bag_cross_level_attention"]
    assert all(math.isclose(sum(level), 1.0, abs_tol=1e-4) for level in levels["weights"])


def test_same_seed_same_loss(train_bags, relations):
    losses = []
    for _ in range(2):
        model = build("hiclre", train_bags, relations, seed=3)
        model.train()
        torch.manual_seed(5)
        losses.append(float(model(batch_of(model, train_bags))["loss"].detach()))
    assert losses[0] == losses[1]


def test_config_errors(train_bags, relations):
    with pytest.raises(HiereConfigError, match="lambdas"):
        build("hiclre", train_bags, relations, lambdas=[0.5, 0.5])
    with pytest.raises(HiereConfigError, match="heads"):
        build("hiclre", train_bags, relations, heads=5)
    with pytest.raises(HiereConfigError, match="training_bags"):
        build("bert_att", train_bags, relations, training_bags="sentence")


def test_trainer_round_trip(tmp_path, monkeypatch):
    """Two training steps through the trainer, then hiere.load: same scores and explanations per relation."""
    from hiere.api import load
    from hiere.training.trainer import train

    monkeypatch.chdir(REPO)
    config = load_config(
        REPO / "configs" / "hiclre_gids.yaml",
        [
            "model.max_length=32",
            "model.mlp_ratio=1",
            "trainer.epochs=1",
            "trainer.max_steps=2",
            "trainer.batch_size=2",
            "data.train_slice=[0,4]",
            "data.dev_slice=[866,868]",
            "data.test_slice=[974,976]",
            "trainer.progress=false",
            "trainer.num_threads=1",
            "trainer.length_buckets=2",
        ],
    )
    out = train(config, tmp_path / "model")
    terms = json.loads((out / "history.json").read_text())[0]["loss_terms"]
    assert set(terms) == {"task", "entity_info_nce", "sentence_info_nce", "bag_info_nce"}
    assert all(value > 0 for value in terms.values())
    predictor = load(out, device="cpu")
    assert predictor.model.name == "hiclre" and (out / "encoder").exists()
    bags = read_bags(GIDS / "gids_dev.txt", predictor.relations, require_labels=True, offset=974, limit=2)
    records = predictor.predict(bags)
    assert len(records) == 2 * (len(predictor.relations) - 1)
    assert records[0]["attention"]["levels"] == ["sentence_attention", "bag_cross_level_attention"]
    again = load(out, device="cpu").predict(bags)
    assert [r["score"] for r in records] == [r["score"] for r in again]
    assert (out / "test_metrics.json").exists()


# ---------------------------------------------------------------- recipe: paper | released


def test_recipe_sets_loss_weights_and_temperature(train_bags, relations):
    paper = build("hiclre", train_bags, relations)
    released = build("hiclre", train_bags, relations, recipe="released")
    assert (paper.config.lambdas, paper.config.temperature) == ([0.4, 0.4, 0.1, 0.1], 0.05)
    assert released.config.lambdas == pytest.approx([0.025, 0.025, 0.4, 0.4]) and released.config.temperature == 0.75
    own = build("hiclre", train_bags, relations, recipe="released", temperature=0.1)  # explicit values win
    assert own.config.temperature == 0.1 and own.config.lambdas == pytest.approx([0.025, 0.025, 0.4, 0.4])
    with pytest.raises(HiereConfigError, match="model.recipe must be one of"):
        build("hiclre", train_bags, relations, recipe="code")


def test_released_recontextualization_has_no_parameters_and_runs_in_training_only(train_bags, relations):
    released = build("hiclre", train_bags, relations, recipe="released", seed=2)
    plain = build("hiclre", train_bags, relations, recontextualization=False, seed=2)
    assert not hasattr(released, "bag_level")
    assert sum(p.numel() for p in released.parameters()) == sum(p.numel() for p in plain.parameters())
    batch = batch_of(released, train_bags)
    released.eval(), plain.eval()
    with torch.no_grad():  # same weights, inference without the recontextualization: identical scores
        torch.testing.assert_close(released(batch)["scores"], plain(batch)["scores"])
    released.train(), plain.train()
    torch.manual_seed(0)
    output = released(batch)
    torch.manual_seed(0)
    assert not torch.allclose(output["loss_terms"]["task"], plain(batch)["loss_terms"]["task"])  # training differs
    terms, lambdas = output["loss_terms"], released.config.lambdas
    expected = sum(w * terms[k] for w, k in zip(lambdas, ("entity_info_nce", "sentence_info_nce", "bag_info_nce",
                                                            "task"), strict=True))
    assert torch.isclose(output["loss"].detach(), expected, atol=1e-5)
    output["loss"].backward()
    assert released.encoder.transformer.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_released_recontextualization_by_hand(train_bags, relations):
    """One group of two sentences: b⁺, h_S⁺, h_E⁺ and the bag (Σ b⁺ + Σ α⁺ h_S⁺) / 2 computed directly."""
    model = build("hiclre", train_bags, relations, recipe="released")
    torch.manual_seed(1)
    d = model.hidden_size
    h_E, h_S = torch.randn(3, d) * 0.1, torch.randn(3, d) * 0.1
    membership = torch.tensor([[True, True, False]])
    alpha = torch.tensor([[0.3, 0.7, 0.0]])
    labels = torch.tensor([2])
    E_plus, S_plus, h_B = model.released_recontextualize(h_E, h_S, alpha, membership, labels)
    E, S = h_E[:2], h_S[:2]
    b = alpha[0, :2, None] * S

    def attend(q, k, v):
        return torch.softmax(q @ k.T, dim=-1) @ v

    b_plus, s_plus, e_plus = b + attend(S, E, b), S + attend(b, E, S), E + attend(b, S, E)
    torch.testing.assert_close(S_plus[0, :2], s_plus)
    torch.testing.assert_close(E_plus[0, :2], e_plus)
    query = model.relation_queries[2].detach()
    alpha_plus = torch.softmax(s_plus @ query, dim=0)
    torch.testing.assert_close(h_B[0].detach(), ((b_plus.sum(0) + alpha_plus @ s_plus) / 2).detach())


def test_pack_groups_by_hand():
    from hiere.models.bag.hiclre import pack_groups

    membership = torch.tensor([[False, True, False, True, True], [True, False, False, False, False]])
    index, member = pack_groups(membership)
    assert index[0].tolist() == [1, 3, 4] and index[1, 0].item() == 0
    assert member.tolist() == [[True, True, True], [True, False, False]]
    assert not membership[1, index[1, 1:]].any()  # the padding points at other groups' sentences


@pytest.mark.parametrize("recipe", ["paper", "released"])
def test_groups_packed_to_their_own_sentences_match_the_masked_batch(train_bags, relations, recipe):
    """Training recontextualizes each group over its own sentences, (G, m, d); the same levels as attending
    over all n_sent of the batch with the other groups masked out (the form inference uses)."""
    from hiere.models.bag.hiclre import pack_groups

    model = build("hiclre", train_bags, relations, recipe=recipe, seed=4)
    torch.manual_seed(5)
    d, heads = model.hidden_size, model.config.heads
    membership = torch.tensor([[True, False, True, False, False, True],
                               [False, True, False, False, False, False],
                               [False, False, False, True, True, False]])
    h_E, h_S = torch.randn(6, d), torch.randn(6, d)
    alpha = torch.softmax(torch.randn(3, 6).masked_fill(~membership, float("-inf")), dim=-1)
    labels = torch.tensor([1, 2, 0])
    h_B = torch.einsum("gn,nd->gd", alpha, h_S)
    index, member = pack_groups(membership)
    E, S, shares = h_E[index], h_S[index], alpha.gather(1, index) * member
    group, position = member.nonzero(as_tuple=True)
    rows = membership.nonzero(as_tuple=True)
    if recipe == "released":
        dense = model.released_recontextualize(h_E, h_S, alpha, membership, labels)
        packed = model.released_recontextualize(E, S, shares, member, labels)
    else:
        def blocked(mask):
            allowed = (mask.unsqueeze(2) & mask.unsqueeze(1)) | torch.eye(mask.shape[1], dtype=torch.bool)
            return (~allowed).repeat_interleave(heads, dim=0)

        dense = model.recontextualize(h_E, h_S, h_B.unsqueeze(1), alpha, blocked(membership),
                                      membership.unsqueeze(1).float())[:3]
        packed = model.recontextualize(E, S, h_B.unsqueeze(1), shares, blocked(member), member.unsqueeze(1).float())[:3]
    for level in (0, 1):  # entity and sentence levels, row by row
        torch.testing.assert_close(packed[level][group, position], dense[level][rows])
    torch.testing.assert_close(packed[2], dense[2])  # bag level


def test_gradient_normalisation_per_row_or_per_batch():
    from hiere.models.bag.hiclre import normalise_gradient

    g = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    torch.testing.assert_close(normalise_gradient(g, "paper"), torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    torch.testing.assert_close(normalise_gradient(g, "released"), g / math.sqrt(26.0))


# ---------------------------------------------------------------- bert_att: OpenNRE's readings as switches


def test_entity_start_pooling_marks_and_reads_the_start_markers(train_bags, relations):
    """pooling: entity_start (OpenNRE's BERTEntityEncoder): [unused0] head [unused1], [unused2] tail [unused3];
    the sentence vector is W_E [h_<unused0> ‖ h_<unused2>] of size 2d."""
    model = build("bert_att", train_bags, relations, pooling="entity_start", attention_query="classifier")
    tokenizer = model.encoder.tokenizer
    head_start, head_end, tail_start, tail_end = tokenizer.convert_tokens_to_ids(
        ["[unused0]", "[unused1]", "[unused2]", "[unused3]"])
    for bag in train_bags:
        for sentence, features in zip(bag.sentences, model.featurize(bag)["sentences"], strict=True):
            ids = features["input_ids"]
            assert len(ids) <= 32 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
            assert [ids.count(m) for m in (head_start, head_end, tail_start, tail_end)] == [1, 1, 1, 1]
            assert ids[features["head"][0]] == head_start and ids[features["tail"][0]] == tail_start
            inside = tokenizer.decode(ids[ids.index(head_start) + 1 : ids.index(head_end)]).replace(" ", "")
            assert inside and inside in "".join(sentence.tokens[sentence.head[0] : sentence.head[1]]).lower()
    assert model.sentence_size == 2 * model.hidden_size and not hasattr(model, "relation_queries")
    batch = batch_of(model, train_bags)
    model.train()
    output = model(batch)
    output["loss"].backward()
    assert model.encoder.W_E.weight.grad.abs().sum() > 0 and model.query_diagonal.grad.abs().sum() > 0
    model.eval()  # no dropout: two encoder passes agree
    h_e1, h_e2, _ = model.encode(batch)
    hidden, _ = model.encoder(batch["input_ids"], batch["attention_mask"])
    rows = torch.arange(hidden.shape[0])
    torch.testing.assert_close(h_e1, hidden.float()[rows, batch["head_span"][:, 0]])  # the start marker's state
    torch.testing.assert_close(model.queries(), model.classifier.weight * model.query_diagonal)


def test_fixed_bag_sampling_reads_every_training_bag_at_the_same_size(relations):
    bags = read_bags(GIDS / "gids_dev.txt", relations, mode="pair_relation", require_labels=True, limit=40)
    sizes = sorted({bag.size for bag in bags})
    assert sizes[0] == 1 and sizes[-1] >= 3
    chosen = [min(bags, key=lambda b: b.size), max(bags, key=lambda b: b.size)]
    for sampling, expected in (("fixed", [2, 2]), ("cap", [1, 2])):
        model = build("bert_att", bags, relations, max_bag_sentences=2, bag_sampling=sampling)
        model.train()
        batch = model.collate([model.featurize(bag) for bag in chosen])
        assert torch.bincount(batch["sentence_bag"]).tolist() == expected
        model.eval()
        assert torch.bincount(model.collate([model.featurize(b) for b in chosen])["sentence_bag"]).tolist() == [
            chosen[0].size, chosen[1].size]  # inference reads every sentence
    with pytest.raises(HiereConfigError, match="model.bag_sampling must be one of"):
        build("bert_att", bags, relations, bag_sampling="random")
    with pytest.raises(HiereConfigError, match="model.pooling must be paper for hiclre"):
        build("hiclre", bags, relations, pooling="entity_start")


def test_weights_saved_under_the_earlier_names_still_load(train_bags, relations):
    model = build("bert_att", train_bags, relations)
    state = model.state_dict()
    old = {name.replace("encoder.W_S.", "W_S.").replace("encoder.b_S", "b_S"): value for name, value in state.items()}
    assert "W_S.weight" in old and "b_S" in old
    fresh = build("bert_att", train_bags, relations, seed=1)
    fresh.load_state_dict(type(fresh).upgrade_state_dict(old))
    assert torch.equal(fresh.encoder.W_S.weight, model.encoder.W_S.weight)


def test_inference_reads_large_batches_in_chunks_with_the_same_scores(train_bags, relations, monkeypatch):
    import hiere.encoders.sentence as sentence

    model = build("bert_att", train_bags, relations, max_length=24)
    model.eval()
    batch = batch_of(model, train_bags)
    with torch.no_grad():
        whole = model(batch)["scores"]
        monkeypatch.setattr(sentence, "INFERENCE_CHUNK", 2)  # 5 sentences -> chunks of 2, 2, 1
        chunked = model(batch)["scores"]
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-4)


def test_training_reads_sentences_in_length_groups_with_the_same_states_and_gradients(train_bags, relations,
                                                                                       monkeypatch):
    """With gradients the sentences go through the encoder sorted by length, TRAINING_GROUP at a time, each
    group cut to its longest: the same states and parameter gradients as one padded call (dropout off)."""
    import hiere.encoders.sentence as sentence

    model = build("bert_att", train_bags, relations, max_length=160)
    model.eval()  # no dropout: the two readings must agree
    batch = batch_of(model, train_bags)
    lengths = batch["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) > 1  # sentences of several lengths

    def states_and_gradients():
        model.zero_grad()
        states = model.encoder.sentence_states(batch)
        sum(level.square().sum() for level in states).backward()
        return states, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    whole_states, whole_grads = states_and_gradients()
    monkeypatch.setattr(sentence, "TRAINING_GROUP", 2)  # groups of 2 sentences by length
    calls = []
    original = type(model.encoder)._states
    monkeypatch.setattr(type(model.encoder), "_states",
                        lambda self, ids, *rest: calls.append(ids.shape) or original(self, ids, *rest))
    grouped_states, grouped_grads = states_and_gradients()
    n = len(lengths)
    assert [shape[0] for shape in calls] == [min(2, n - start) for start in range(0, n, 2)]
    widths = sorted(lengths.tolist())
    assert [shape[1] for shape in calls] == [widths[min(start + 1, n - 1)] for start in range(0, n, 2)]
    assert calls[0][1] < lengths.max()  # the short sentences' group is cut short
    for a, b in zip(grouped_states, whole_states, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert grouped_grads.keys() == whole_grads.keys()
    for name, grad in whole_grads.items():
        torch.testing.assert_close(grouped_grads[name], grad, atol=1e-4, rtol=1e-3, msg=name)


def test_training_groups_past_the_subword_budget_are_recomputed_in_backward_with_the_same_gradients(
        train_bags, relations, monkeypatch):
    """Once a step's groups hold model.kept_subwords subwords, the later groups are checkpointed: their forward
    runs again in backward, with the dropout masks of the first run, so states and gradients do not change."""
    import hiere.encoders.sentence as sentence

    model = build("bert_att", train_bags, relations, max_length=160)
    model.train()  # dropout on: the recomputation must replay the same masks
    batch = batch_of(model, train_bags)
    n = batch["input_ids"].shape[0]
    monkeypatch.setattr(sentence, "TRAINING_GROUP", 2)
    checkpointed, states_calls = [], []
    real_checkpoint, real_states = sentence.checkpoint, type(model.encoder)._states
    monkeypatch.setattr(sentence, "checkpoint", lambda fn, *a, **k: checkpointed.append(a[0].shape) or
                        real_checkpoint(fn, *a, **k))
    monkeypatch.setattr(type(model.encoder), "_states",
                        lambda self, ids, *rest: states_calls.append(ids.shape) or real_states(self, ids, *rest))

    def run(budget: int):
        model.encoder.kept_subwords = budget
        checkpointed.clear()
        states_calls.clear()
        torch.manual_seed(0)
        model.zero_grad()
        states = model.encoder.sentence_states(batch)
        sum(level.square().sum() for level in states).backward()
        return states, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    groups = (n + 1) // 2
    assert model.encoder.kept_subwords == sentence.KEPT_SUBWORDS == model.config.kept_subwords  # the default
    kept_states, kept_grads = run(0)  # 0: keep every activation
    assert checkpointed == [] and len(states_calls) == groups
    first_group = states_calls[0][0] * states_calls[0][1]  # subwords of the shortest group
    for budget, recomputed in ((first_group, groups - 1), (1, groups)):
        states, grads = run(budget)
        assert len(checkpointed) == recomputed
        assert len(states_calls) == groups + recomputed  # each checkpointed group read again in backward
        for a, b in zip(states, kept_states, strict=True):
            assert torch.equal(a, b)
        assert grads.keys() == kept_grads.keys()
        for name, grad in kept_grads.items():
            torch.testing.assert_close(grads[name], grad, atol=1e-6, rtol=1e-5, msg=name)
    checkpointed.clear()
    with torch.no_grad():  # no gradient: nothing to keep, nothing checkpointed
        assert model.encoder.sentence_states(batch)[0].shape[0] == n
    assert checkpointed == []


def test_inference_sampling_reads_opennre_bag_size_deterministically(relations):
    bags = read_bags(GIDS / "gids_dev.txt", relations, mode="pair", limit=40)
    chosen = [min(bags, key=lambda b: b.size), max(bags, key=lambda b: b.size)]
    assert chosen[0].size == 1 and chosen[1].size >= 3
    model = build("bert_att", bags, relations, max_bag_sentences=2, inference_sampling=True)
    model.eval()
    batch = batch_of(model, chosen)
    assert torch.bincount(batch["sentence_bag"]).tolist() == [2, 2]  # every bag read as exactly 2 sentences
    assert batch["sentence_origin"][0] == [0, 0] and batch["original_sizes"] == [1, chosen[1].size]
    assert batch_of(model, chosen)["sentence_origin"] == batch["sentence_origin"]  # seeded: same draw each time
    assert batch_of(model, chosen[1:])["sentence_origin"] == batch["sentence_origin"][1:]  # whatever the batch
    with torch.no_grad():
        output = model(batch)
        alone = model(batch_of(model, chosen[1:]))
    torch.testing.assert_close(alone["scores"][0], output["scores"][1], atol=1e-5, rtol=1e-4)
    for row, bag in enumerate(chosen):  # explanations still name the whole bag's sentences
        weights = output["explanations"][row]["by_relation"][relations.relations[1]]["attention"]["weights"][0]
        assert len(weights) == bag.size and math.isclose(sum(weights), 1.0, abs_tol=1e-4)
        assert sum(w > 0 for w in weights) <= 2
    with pytest.raises(HiereConfigError, match="inference_sampling=true needs model.max_bag_sentences >= 1"):
        build("bert_att", bags, relations, max_bag_sentences=0, inference_sampling=True)


def test_sentence_encoder_runs_fused_attention_with_the_eager_states(train_bags, relations, monkeypatch):
    from hiere.encoders.sentence import TransformerSentenceEncoder

    model = build("bert_att", train_bags, relations, max_length=24)
    assert model.encoder.transformer.config._attn_implementation == "hiere_sdpa"
    monkeypatch.setattr(TransformerSentenceEncoder, "attention_implementation", "eager")
    eager = build("bert_att", train_bags, relations, max_length=24)
    eager.load_state_dict(model.state_dict())
    assert eager.encoder.transformer.config._attn_implementation == "eager"
    model.eval(), eager.eval()
    batch = batch_of(model, train_bags)
    with torch.no_grad():  # sdpa
        torch.testing.assert_close(model(batch)["scores"], eager(batch)["scores"], atol=1e-5, rtol=1e-4)
    model.train(), eager.train()
    for module in [*model.modules(), *eager.modules()]:  # training without dropout: hiere's unfused attention
        if hasattr(module, "p"):
            module.p = 0.0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(model(batch)["scores"].float(), eager(batch)["scores"].float(), atol=0.02, rtol=0.02)
