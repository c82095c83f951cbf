"""CNN/PCNN encoders, cnn_att / pcnn_att (ATT, AVE, ONE) and HNRE on small slices of NYT10 and GIDS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hiere.data.bags import read_bags
from hiere.data.relations import RelationMap
from hiere.encoders.cnn import CNNEncoder, collate_sentences, sentence_features
from hiere.models import get_model_class
from hiere.models.bag.common import training_groups
from hiere.models.base import Resources

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NYT10 = DATA / "nyt10"
SMALL = {"glove_vocab": 0, "train_words": True, "hidden": 8}  # tiny layers, training words only: fast tests


@pytest.fixture(scope="module")
def relations() -> RelationMap:
    return RelationMap.from_rel_info(NYT10 / "nyt10_rel2id.json")


@pytest.fixture(scope="module")
def train_bags(relations):
    return read_bags(
        NYT10 / "nyt10sub_train90.txt", relations, mode="pair_relation", require_labels=True, limit=30
    )


@pytest.fixture(scope="module")
def pair_bags(relations):
    """Evaluation bags (whole entity pairs) from the test file, the first 120."""
    return read_bags(NYT10 / "nyt10sub_test.txt", relations, require_labels=True, limit=120)


def build(name: str, train_bags, relations, seed: int = 0, pretrained: bool = False, **options):
    """A small model; word vectors stay random unless ``pretrained`` (GloVe loading is tested once)."""
    model_class = get_model_class(name)
    config = model_class.Config.from_dict({**SMALL, **options})
    resources = model_class.build_resources(config, train_bags, relations)
    torch.manual_seed(seed)
    model = model_class(config, resources)
    if pretrained:
        model.init_pretrained()
    return model


def batch_of(model, bags):
    return model.collate([model.featurize(bag) for bag in bags])


def multi_sentence(bags, n: int = 4):
    chosen = [bag for bag in bags if bag.size > 1][:n]
    assert len(chosen) == n
    return chosen


# ---------------------------------------------------------------- encoder


def test_glove_vectors_and_vocabulary(train_bags, relations):
    from hiere.encoders.glove import read_glove

    model = build("pcnn_att", train_bags, relations, pretrained=True, glove_vocab=50)
    words = model.resources.vocabs["words"]
    assert "paris" in words.stoi and "the" in words.stoi
    assert len(words) > 50  # training words plus the 50 most frequent GloVe words
    _, vectors = read_glove(words=["paris"])
    embedding = model.encoder.word_embedding.embedding.weight
    torch.testing.assert_close(embedding[words["paris"]], torch.from_numpy(vectors[0]))
    assert embedding[0].abs().sum() == 0  # padding


def test_sentence_features_positions_and_pcnn_segments(train_bags, relations):
    model = build("pcnn_att", train_bags, relations)
    sentence = train_bags[0].sentences[0]  # "... known as karl_lagerfeld ... in paris , his home ..."
    features = sentence_features(sentence, model.resources.vocabs["words"], max_length=120)
    head, tail = sentence.head[0], sentence.tail[0]
    assert sentence.tokens[head] == "karl_lagerfeld" and sentence.tokens[tail] == "paris"
    assert features["pos_head"][head] == 120 and features["pos_tail"][tail] == 120
    assert features["pos_head"][0] == 120 - head
    assert features["segments"][: head + 1] == [1] * (head + 1)
    assert features["segments"][head + 1 : tail + 1] == [2] * (tail - head)
    assert features["segments"][tail + 1 :] == [3] * (len(sentence.tokens) - tail - 1)


def test_long_sentences_are_cut_and_positions_clipped(train_bags, relations):
    model = build("pcnn_att", train_bags, relations)
    sentence = train_bags[0].sentences[0]
    features = sentence_features(sentence, model.resources.vocabs["words"], max_length=8)
    assert len(features["word_ids"]) == 8
    assert all(1 <= p <= 15 for p in features["pos_head"] + features["pos_tail"])  # 1 .. 2 * 8 - 1
    assert features["pos_tail"][-1] == 8  # the tail (beyond the cut) sits on the last kept token


@pytest.mark.parametrize("pooling, size", [("cnn", 230), ("pcnn", 690)])
def test_encoder_default_sizes_and_padding_invariance(train_bags, relations, pooling, size):
    model = build("pcnn_att", train_bags, relations)
    words = model.resources.vocabs["words"]
    torch.manual_seed(0)
    encoder = CNNEncoder(len(words), word_dim=50, pooling=pooling).eval()
    assert encoder.output_size == size
    sentences = [s for bag in train_bags for s in bag.sentences][:5]
    features = [sentence_features(s, words, 120) for s in sentences]
    together = encoder(collate_sentences(features))  # padded to the longest sentence
    alone = torch.cat([encoder(collate_sentences([f])) for f in features])
    assert together.shape == (5, size)
    torch.testing.assert_close(together, alone)  # padding never wins a max


# ---------------------------------------------------------------- cnn_att / pcnn_att


@pytest.mark.parametrize("name", ["cnn_att", "pcnn_att"])
@pytest.mark.parametrize("aggregation", ["att", "ave", "one"])
def test_shapes_and_gradients(train_bags, relations, name, aggregation):
    model = build(name, train_bags, relations, aggregation=aggregation)
    batch = batch_of(model, train_bags[:8])
    model.train()
    output = model(batch)
    assert output["loss"].dim() == 0 and output["scores"].shape == (8, len(relations))
    output["loss"].backward()
    assert model.encoder.conv.weight.grad.abs().sum() > 0
    assert model.encoder.word_embedding.embedding.weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad.abs().sum() > 0
    if aggregation == "att":
        assert model.query_diagonal.grad.abs().sum() > 0
    else:
        assert model.relation_queries is None  # AVE / ONE have no queries
    model.eval()
    with torch.no_grad():
        scores = model(batch)["scores"]
        alone = model(batch_of(model, train_bags[3:4]))["scores"]
    assert scores.shape == (8, len(relations))
    assert torch.allclose(alone[0], scores[3], atol=1e-6)  # a bag's score does not depend on its batch


def test_cnn_att_uses_plain_max_pooling(train_bags, relations):
    assert build("cnn_att", train_bags, relations).encoder.output_size == 8
    assert build("pcnn_att", train_bags, relations).encoder.output_size == 24
    assert build("cnn_att", train_bags, relations, encoder="pcnn").encoder.output_size == 24


def test_att_ave_one_give_different_scores(train_bags, pair_bags, relations):
    bags = multi_sentence(pair_bags)
    att = build("pcnn_att", train_bags, relations, aggregation="att")
    scores = {}
    for aggregation in ("att", "ave", "one"):
        model = build("pcnn_att", train_bags, relations, aggregation=aggregation)
        model.load_state_dict(att.state_dict(), strict=False)  # same encoder and classifier
        model.eval()
        with torch.no_grad():
            scores[aggregation] = model(batch_of(model, bags))["scores"]
    assert not torch.allclose(scores["att"], scores["ave"])
    assert not torch.allclose(scores["ave"], scores["one"])
    assert not torch.allclose(scores["att"], scores["one"])
    torch.testing.assert_close(scores["ave"].sum(dim=1), torch.ones(len(bags)))  # AVE: one softmax per bag


def test_att_scores_each_relation_with_its_own_query(train_bags, pair_bags, relations):
    bag = multi_sentence(pair_bags, 1)[0]
    model = build("pcnn_att", train_bags, relations).eval()
    with torch.no_grad():
        batch = batch_of(model, [bag])
        scores = model(batch)["scores"][0]
        sentences = model.encoder(batch)  # (n_sent, hidden)
        for relation in (0, 5, relations["/location/location/contains"]):
            alpha = torch.softmax(sentences @ model.relation_queries[relation], dim=0)  # Lin et al. eq. 6
            expected = torch.softmax(model.classifier(alpha @ sentences), dim=0)[relation]  # eqs. 8-9
            torch.testing.assert_close(scores[relation], expected)


def test_one_takes_the_best_sentence(train_bags, pair_bags, relations):
    bag = multi_sentence(pair_bags, 1)[0]
    model = build("cnn_att", train_bags, relations, aggregation="one").eval()
    with torch.no_grad():
        batch = batch_of(model, [bag])
        per_sentence = torch.softmax(model.classifier(model.encoder(batch)), dim=-1)
        torch.testing.assert_close(model(batch)["scores"][0], per_sentence.max(dim=0).values)


def test_att_explanations_sum_to_one(train_bags, pair_bags, relations):
    bags = multi_sentence(pair_bags, 2)
    model = build("pcnn_att", train_bags, relations).eval()
    with torch.no_grad():
        output = model(batch_of(model, bags))
    for bag, explanation in zip(bags, output["explanations"], strict=True):
        by_relation = explanation["by_relation"]
        assert set(by_relation) == set(relations.relations[1:])
        weights = by_relation["/people/person/nationality"]["attention"]["weights"]
        assert len(weights) == 1 and len(weights[0]) == bag.size
        assert sum(weights[0]) == pytest.approx(1.0, abs=1e-4)



def test_attention_rows_are_built_when_read_with_each_bags_own_weights():
    """AttentionRows keeps the members' weights compact and builds a row's dict on reading: the same values
    as reading the padded (n_bags, R, levels, n_sent) tensor bag by bag, folded back through a sample."""
    import pickle

    from hiere.models.bag.common import attention_explanations, bag_membership

    generator = torch.Generator().manual_seed(0)
    relations = ["NA", "/a", "/a/b"]
    names = [["NA"], ["/a"], ["/a", "/a/b"]]
    sentence_bag = torch.tensor([0, 1, 1, 1, 2, 2])  # bags of 1, 3 and 2 sentences
    membership = bag_membership(sentence_bag, 3)
    weights = torch.rand(3, 3, 2, 6, generator=generator).to(torch.bfloat16)  # (n_bags, R, levels, n_sent)
    rows = attention_explanations(relations, names, weights, membership)
    assert len(rows) == 3
    for row in range(3):
        members = membership[row].nonzero(as_tuple=True)[0]
        expected = weights[row][:, :, members].tolist()  # the eager reading
        for index, relation in enumerate(relations[1:], start=1):
            attention = rows[row]["by_relation"][relation]["attention"]
            assert attention["levels"] == names[index]
            assert attention["weights"] == [[round(w, 6) for w in level] for level in expected[index]]
        assert "NA" not in rows[row]["by_relation"]
    assert rows[-1] == rows[2] and rows[0:2] == [rows[0], rows[1]]
    with pytest.raises(IndexError):
        rows[3]
    assert pickle.loads(pickle.dumps(rows))[1] == rows[1]  # gathered across DDP ranks as it is

    batch = {"sentence_origin": [[0], [2, 0, 2], [1, 0]], "original_sizes": [1, 4, 2]}  # sampled sentences
    sampled = attention_explanations(relations, names, weights, membership, batch)[1]
    level = sampled["by_relation"]["/a"]["attention"]["weights"][0]
    drawn = weights[1, 1, 0, 1:4].tolist()
    assert level == [round(drawn[1], 6), 0.0, round(drawn[0] + drawn[2], 6), 0.0]  # summed, never drawn: 0


# ---------------------------------------------------------------- training bags


def test_training_groups_relation_vs_pair(relations):
    pairs = read_bags(NYT10 / "nyt10sub_train90.txt", relations, require_labels=True, limit=300)
    bag = next(b for b in pairs if len(b.relations) > 1)  # an entity pair with two relations
    model = build("pcnn_att", [bag], relations)
    batch = batch_of(model, [bag])
    membership, labels, rows = training_groups(batch, "relation")
    assert sorted(labels.tolist()) == sorted(relations[r] for r in bag.relations)
    assert membership.sum().item() == bag.size  # each sentence in the group of its own relation
    pair_membership, pair_labels, _ = training_groups(batch, "pair")
    assert sorted(pair_labels.tolist()) == sorted(labels.tolist())
    assert pair_membership.all()  # every gold relation queries all the pair's sentences
    assert rows.tolist() == [0] * len(bag.relations)


def test_training_read_options(relations):
    assert get_model_class("hnre").training_read_options(get_model_class("hnre").Config()) == {
        "mode": "pair_relation"
    }
    pair_config = get_model_class("pcnn_att").Config(training_bags="pair")
    assert get_model_class("pcnn_att").training_read_options(pair_config) == {"mode": "pair"}


# ---------------------------------------------------------------- HNRE


@pytest.mark.parametrize("encoder", ["cnn", "pcnn"])
def test_hnre_levels_match_hierarchy(train_bags, relations, encoder):
    model = build("hnre", train_bags, relations, encoder=encoder)
    assert len(model.level_queries) == model.hierarchy.n_levels == 3
    assert [q.shape[0] for q in model.level_queries] == model.hierarchy.level_sizes()
    hidden = model.encoder.output_size
    assert model.classifier.in_features == 3 * hidden  # eq. 3: concatenation of the level representations
    flat = build("hnre", train_bags, relations, encoder=encoder, levels=1)  # ablation: no hierarchy
    assert len(flat.level_queries) == 1 and flat.classifier.in_features == hidden


def test_hnre_training_uses_the_gold_chain(train_bags, relations):
    model = build("hnre", train_bags, relations)
    bags = train_bags[:6]
    model.train()
    model(batch_of(model, bags))["loss"].backward()
    for level, queries in enumerate(model.level_queries):
        gold = {model.hierarchy.chain(r)[level] for bag in bags for r in bag.relations}
        # a bag of one distinct sentence (NYT10 repeats sentences) has fixed weights: no gradient there
        learning = {
            model.hierarchy.chain(r)[level]
            for bag in bags
            if len({s.tokens for s in bag.sentences}) > 1
            for r in bag.relations
        }
        touched = {i for i in range(queries.shape[0]) if queries.grad[i].abs().sum() > 0}
        assert learning and learning <= touched <= gold  # only the gold relations' chain nodes learn
        assert len(gold) < queries.shape[0]


def test_hnre_scores_and_explanations(train_bags, pair_bags, relations):
    bags = multi_sentence(pair_bags, 3)
    model = build("hnre", train_bags, relations, encoder="pcnn").eval()
    with torch.no_grad():
        batch = batch_of(model, bags)
        output = model(batch)
    assert output["scores"].shape == (3, len(relations))
    for bag, explanation in zip(bags, output["explanations"], strict=True):
        attention = explanation["by_relation"]["/people/person/place_lived"]["attention"]
        assert attention["levels"] == ["/people/person/place_lived", "/people/person", "/people"]
        assert len(attention["weights"]) == 3
        for level in attention["weights"]:
            assert len(level) == bag.size and sum(level) == pytest.approx(1.0, abs=1e-4)
    # the score of a relation is p(r | S) with its own chain (test-time scoring of the HNRE code)
    with torch.no_grad():
        sentences = model.encoder(batch)[: bags[0].size]
        relation = relations["/people/person/place_lived"]
        levels = []
        for level, queries in enumerate(model.level_queries):
            query = queries[model.hierarchy.chain("/people/person/place_lived")[level]]
            levels.append(torch.softmax(sentences @ query, dim=0) @ sentences)
        expected = torch.softmax(model.classifier(torch.cat(levels)), dim=0)[relation]
    torch.testing.assert_close(output["scores"][0, relation], expected)


def test_hnre_on_gids_with_pair_training_bags():
    relations = RelationMap.from_rel_info(DATA / "gids" / "gids_rel2id.json")
    bags = read_bags(DATA / "gids" / "gids_dev.txt", relations, require_labels=True, limit=12)
    model = build("hnre", bags, relations, training_bags="pair")
    assert model.hierarchy.level_sizes() == [5, 3, 2]
    model.train()
    output = model(batch_of(model, bags))
    output["loss"].backward()
    assert all(q.grad is not None for q in model.level_queries)


@pytest.mark.parametrize(
    "name, options", [("hnre", {}), ("pcnn_att", {}), ("cnn_att", {"aggregation": "one"})]
)
def test_a_bag_scores_the_same_alone_and_in_a_batch(train_bags, pair_bags, relations, name, options):
    bags = pair_bags[:6]
    model = build(name, train_bags, relations, **options).eval()
    with torch.no_grad():
        together = model(batch_of(model, bags))["scores"]
        alone = torch.cat([model(batch_of(model, [bag]))["scores"] for bag in bags])
    torch.testing.assert_close(together, alone)


def test_determinism_under_a_seed(train_bags, pair_bags, relations):
    results = []
    for _ in range(2):
        model = build("hnre", train_bags, relations, seed=7)
        model.train()
        torch.manual_seed(3)
        loss = model(batch_of(model, train_bags[:8]))["loss"]
        model.eval()
        with torch.no_grad():
            scores = model(batch_of(model, pair_bags[:8]))["scores"]
        results.append((loss.detach(), scores))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=0, atol=0)
    other = build("hnre", train_bags, relations, seed=8).eval()
    with torch.no_grad():
        assert not torch.allclose(other(batch_of(other, pair_bags[:8]))["scores"], results[0][1])


def test_resources_round_trip(tmp_path, train_bags, pair_bags, relations):
    model = build("hnre", train_bags, relations).eval()
    model.resources.save(tmp_path)
    restored = get_model_class("hnre")(model.config, Resources.load(tmp_path))
    restored.load_state_dict(model.state_dict())
    restored.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            restored(batch_of(restored, pair_bags[:5]))["scores"],
            model(batch_of(model, pair_bags[:5]))["scores"],
        )


def test_bad_config_values(train_bags, relations):
    from hiere.errors import HiereConfigError

    with pytest.raises(HiereConfigError, match="encoder must be one of cnn, pcnn, transformer"):
        get_model_class("hnre").Config.from_dict({"encoder": "lstm"})
    with pytest.raises(HiereConfigError, match="aggregation"):
        get_model_class("pcnn_att").Config.from_dict({"aggregation": "max"})
    with pytest.raises(HiereConfigError, match="training_bags"):
        get_model_class("cnn_att").Config.from_dict({"training_bags": "sentence"})
    with pytest.raises(HiereConfigError, match="unknown model keys"):
        get_model_class("hnre").Config.from_dict({"hidden_size": 10})
    with pytest.raises(HiereConfigError, match="attention_query"):
        get_model_class("pcnn_att").Config.from_dict({"attention_query": "bag"})
    with pytest.raises(HiereConfigError, match="initialization"):
        get_model_class("pcnn_att").Config.from_dict({"initialization": "normal"})
    with pytest.raises(HiereConfigError, match="train_words=true"):
        get_model_class("pcnn_att").Config.from_dict({"glove_vocab": 0})
    with pytest.raises(HiereConfigError, match="sentence_dropout"):
        get_model_class("pcnn_att").Config.from_dict({"sentence_dropout": 1.0})


# ---------------------------------------------------------------- OpenNRE reading vs the HNRE code's


def test_classifier_query_is_the_classifier_row_times_a_learned_diagonal(train_bags, relations):
    model = build("pcnn_att", train_bags, relations)  # attention_query: classifier (OpenNRE)
    names = {name for name, _ in model.named_parameters()}
    assert "query_diagonal" in names and "free_queries" not in names
    torch.testing.assert_close(model.query_diagonal.detach(), torch.ones(model.encoder.output_size))
    with torch.no_grad():
        model.query_diagonal.uniform_(0.5, 2.0)
    torch.testing.assert_close(model.relation_queries, model.classifier.weight * model.query_diagonal)
    model.train()
    model(batch_of(model, multi_sentence(train_bags)))["loss"].backward()
    assert model.query_diagonal.grad.abs().sum() > 0

    free = build("pcnn_att", train_bags, relations, attention_query="free")
    free_names = {name for name, _ in free.named_parameters()}
    assert "free_queries" in free_names and "query_diagonal" not in free_names
    assert free.relation_queries is free.free_queries
    assert free.free_queries.abs().sum() > 0  # initialised, not left empty
    ave = build("pcnn_att", train_bags, relations, aggregation="ave")
    assert not {"free_queries", "query_diagonal"} & {name for name, _ in ave.named_parameters()}


def test_initialization_pytorch_vs_xavier(train_bags, relations):
    opennre = build("pcnn_att", train_bags, relations, hidden=230)  # pytorch defaults, positions N(0, 1)
    hnre = build("pcnn_att", train_bags, relations, hidden=230, initialization="xavier")
    for model in (opennre, hnre):
        assert model.encoder.pos_head_embedding.weight[0].abs().sum() == 0  # padding position
    assert 0.8 < float(opennre.encoder.pos_head_embedding.weight[1:].detach().std()) < 1.2
    assert float(hnre.encoder.pos_head_embedding.weight[1:].detach().std()) < 0.2
    assert float(opennre.classifier.bias.detach().abs().sum()) > 0  # torch's default bias init
    assert float(hnre.classifier.bias.detach().abs().sum()) == 0


def test_hnre_level_queries_initialised_under_both_initializations(train_bags, relations):
    """HNRE's per-level queries are bare Parameters: torch has no default for them, so both readings draw
    them (Xavier-uniform) instead of leaving torch.empty's memory in place."""
    for initialization in ("pytorch", "xavier"):
        model = build("hnre", train_bags, relations, hidden=230, initialization=initialization)
        for queries in model.level_queries:
            bound = (6 / sum(queries.shape)) ** 0.5
            assert torch.isfinite(queries).all()
            assert float(queries.detach().abs().max()) <= bound
            assert float(queries.detach().std()) > bound / 4


def test_vocabulary_glove_only_or_with_training_words(train_bags, relations):
    words_in_train = {token.lower() for bag in train_bags for sentence in bag.sentences for token in sentence.tokens}
    joined = sorted(word for word in words_in_train if "_" in word)  # NYT10's joined names: not in GloVe
    assert joined
    glove_only = build("pcnn_att", train_bags, relations, glove_vocab=1000, train_words=False)
    words = glove_only.resources.vocabs["words"]
    assert len(words) == 1002  # <pad>, <unk> and the 1,000 most frequent GloVe words
    assert words[joined[0]] == 1  # shares the trained <unk> vector (OpenNRE)
    with_train = build("pcnn_att", train_bags, relations, glove_vocab=1000, train_words=True)
    assert with_train.resources.vocabs["words"][joined[0]] > 1


def test_sentence_dropout_applies_to_sentence_vectors_in_training_only(train_bags, pair_bags, relations):
    bags = multi_sentence(train_bags)
    losses = {}
    for rate in (0.0, 0.5):
        model = build("pcnn_att", train_bags, relations, dropout=0.0, sentence_dropout=rate)
        model.train()
        batch = batch_of(model, bags)
        torch.manual_seed(1)
        first = model(batch)["loss"].item()
        torch.manual_seed(2)
        losses[rate] = (first, model(batch)["loss"].item())
        model.eval()
        with torch.no_grad():
            scores = [model(batch_of(model, pair_bags[:4]))["scores"] for _ in range(2)]
        torch.testing.assert_close(scores[0], scores[1])  # inference is deterministic
    assert losses[0.0][0] == losses[0.0][1]
    assert losses[0.5][0] != losses[0.5][1]


# ---------------------------------------------------------------- trainer and API


@pytest.mark.parametrize("name", ["hnre", "pcnn_att"])
def test_two_training_steps_through_the_trainer(tmp_path, name):
    import hiere
    from hiere.config import resolve
    from hiere.training.trainer import train

    config = resolve(
        {
            "model": {"name": name, **SMALL},
            "data": {
                "train": str(NYT10 / "nyt10sub_train90.txt"),
                "train_slice": [0, 24],
                "dev": str(NYT10 / "nyt10sub_val10.txt"),
                "dev_slice": [0, 8],
                "test": str(NYT10 / "nyt10sub_test.txt"),
                "test_slice": [3180, 3230],  # NA and positive pairs
                "long_tail": str(DATA / "hnre" / "rel100.txt"),
                "relations": str(NYT10 / "nyt10_rel2id.json"),
            },
            "trainer": {
                "epochs": 1,
                "max_steps": 2,
                "batch_size": 8,
                "optimizer": "sgd",
                "lr": 0.2,
                "momentum": 0.0,
                "weight_decay": 1e-5,
                "device": "cpu",
                "progress": False,
            },
        }
    )
    out = train(config, tmp_path / "model")
    predictor = hiere.load(out, device="cpu")
    bags = read_bags(NYT10 / "nyt10sub_test.txt", predictor.relations.relations, limit=3)
    records = predictor.predict(bags)
    assert len(records) == 3 * (len(predictor.relations) - 1)  # every pair x every non-NA relation
    assert {(r["h"], r["t"]) for r in records} == {bag.pair for bag in bags}
    levels = 3 if name == "hnre" else 1
    for record in records:
        weights = record["attention"]["weights"]
        assert len(weights) == levels and all(sum(level) == pytest.approx(1.0, abs=1e-4) for level in weights)
    assert_metrics_as_from_records(config, out)


def assert_metrics_as_from_records(config: dict, out: Path) -> None:
    """The trainer scores dev and test from the score matrix; the dicts equal those of decoded records."""
    import json

    from hiere.data.bags import read_long_tail
    from hiere.models.directory import load_model_dir
    from hiere.tasks.bag import TASK
    from hiere.training.inference import predict_examples

    model, saved, threshold = load_model_dir(out, torch.device("cpu"))  # one epoch: dev scored this model
    precision = json.loads((out / "runtime.json").read_text())["precision_resolved"]
    long_tail = read_long_tail(config["data"]["long_tail"])
    for split, stored in (("test", json.loads((out / "test_metrics.json").read_text())),
                          ("dev", json.loads((out / "history.json").read_text())[0]["dev"])):
        start, end = config["data"][f"{split}_slice"]
        bags = read_bags(config["data"][split], model.relations.relations, require_labels=True)[start:end]
        records = predict_examples(model, TASK, bags, threshold, int(saved["trainer"]["eval_batch_size"]),
                                   torch.device("cpu"), precision, explain=False)
        expected = json.loads(json.dumps(TASK.metrics(bags, records, long_tail=long_tail)))
        assert {key: value for key, value in stored.items() if key != "threshold"} == expected, split
        assert "hits@10_micro" in stored and stored["n_facts"] > 0


# ---------------------------------------------------------------- HNRE warm start (init_from)


def saved(model, folder: Path) -> Path:
    from hiere.models.directory import save_model_dir

    save_model_dir(model, {"model": {"name": model.name, **model.config.to_dict()}}, 0.5, folder)
    return folder


def test_hnre_warm_start_from_pcnn_att_scores_like_its_source(tmp_path, train_bags, pair_bags, relations):
    """One level, same encoder: the warm-started HNRE is the trained PCNN+ATT, so test scores agree."""
    from hiere.models.bag.hnre import warm_start

    source = build("pcnn_att", train_bags, relations, seed=3).eval()
    hnre = build("hnre", train_bags, relations, seed=4, levels=1, max_length=128).eval()
    batch = batch_of(source, pair_bags[:6])
    assert not torch.allclose(hnre(batch)["scores"], source(batch)["scores"])
    copied = warm_start(hnre, saved(source, tmp_path / "pcnn_att"))
    assert copied["repeat"] == 1 and copied["levels"] == 1 and copied["words"] == len(hnre.resources.vocabs["words"])
    torch.testing.assert_close(hnre(batch)["scores"], source(batch)["scores"])


def test_hnre_pcnn_warm_start_from_cnn_att_repeats_queries_and_classifier(tmp_path, train_bags, relations):
    """The released recipe: a CNN's weights seed PCNN-HATT, queries and classifier repeated per piece and
    per level; coarser nodes start from the mean of their relations' queries."""
    from hiere.models.bag.hnre import warm_start

    source = build("cnn_att", train_bags, relations, seed=3, hidden=8)
    hnre = build("hnre", train_bags, relations, seed=4, encoder="pcnn", hidden=8, max_length=128)
    warm_start(hnre, saved(source, tmp_path / "cnn_att"))
    torch.testing.assert_close(hnre.encoder.conv.weight, source.encoder.conv.weight)
    torch.testing.assert_close(hnre.encoder.pos_head_embedding.weight, source.encoder.pos_head_embedding.weight)
    queries = source.relation_queries.detach()  # (R, 8)
    torch.testing.assert_close(hnre.level_queries[0].detach()[hnre.chains[:, 0]], queries.repeat(1, 3))
    coarse = hnre.chains[:, 2]  # /domain nodes
    node = int(coarse[1])
    members = (coarse == node).nonzero(as_tuple=True)[0]
    torch.testing.assert_close(hnre.level_queries[2].detach()[node], queries[members].mean(0).repeat(3))
    weight = hnre.classifier.weight.detach().reshape(len(relations), 3, 24)
    for level in range(3):
        torch.testing.assert_close(weight[:, level], source.classifier.weight.detach().repeat(1, 3))
    torch.testing.assert_close(hnre.classifier.bias, source.classifier.bias)


def test_hnre_warm_start_errors_name_the_setting(tmp_path, train_bags, relations):
    from hiere.errors import HiereConfigError
    from hiere.models.bag.hnre import warm_start

    hnre = build("hnre", train_bags, relations, encoder="pcnn", hidden=8, max_length=128)
    with pytest.raises(HiereConfigError, match="model.init_from: .* is not a directory"):
        warm_start(hnre, tmp_path / "missing")
    other_window = saved(build("cnn_att", train_bags, relations, window=5, hidden=8), tmp_path / "window5")
    with pytest.raises(HiereConfigError, match=r"encoder weight conv.weight has shape"):
        warm_start(hnre, other_window)
    few = RelationMap(relations.relations[:10])
    fewer = saved(build("cnn_att", train_bags[:3], few, hidden=8), tmp_path / "few")
    with pytest.raises(HiereConfigError, match="relations differ"):
        warm_start(hnre, fewer)


def test_hnre_init_from_through_the_trainer(tmp_path):
    """``model.init_from`` in a config: the new run starts from the trained model's weights, logged."""
    from hiere.config import resolve
    from hiere.models.directory import load_model_dir
    from hiere.training.trainer import train

    def config(name: str, **model):
        return resolve({
            "model": {"name": name, **SMALL, "max_length": 128, **model},
            "data": {"train": str(NYT10 / "nyt10sub_train90.txt"), "train_slice": [0, 24],
                     "dev": str(NYT10 / "nyt10sub_val10.txt"), "dev_slice": [0, 8],
                     "relations": str(NYT10 / "nyt10_rel2id.json")},
            "trainer": {"epochs": 1, "max_steps": 1, "batch_size": 8, "optimizer": "sgd", "lr": 1e-12,
                        "momentum": 0.0, "device": "cpu", "progress": False},
        })

    source_dir = train(config("pcnn_att"), tmp_path / "pcnn_att")
    hnre_dir = train(config("hnre", init_from=str(source_dir)), tmp_path / "hnre")
    source, hnre = load_model_dir(source_dir)[0], load_model_dir(hnre_dir)[0]
    torch.testing.assert_close(hnre.encoder.conv.weight, source.encoder.conv.weight)  # lr ~0: still the copy
    assert "warm start from" in (hnre_dir / "train.log").read_text()


def test_opennre_padding_pools_over_a_trained_pad_word_and_masked_padding_does_not(train_bags, relations):
    masked = build("cnn_att", train_bags, relations, encoder="cnn", max_length=40)
    opennre = build("cnn_att", train_bags, relations, encoder="cnn", max_length=40, padding="opennre")
    short = min(train_bags, key=lambda bag: max(len(s.tokens) for s in bag.sentences))
    batch = batch_of(opennre, [short])
    assert batch["word_ids"].shape[1] < 40  # the batch is shorter than max_length: opennre pads it further
    embedding = opennre.encoder.word_embedding.embedding
    assert embedding.padding_idx is None and torch.equal(embedding.weight[0], torch.zeros(embedding.weight.shape[1]))
    assert masked.encoder.word_embedding.embedding.padding_idx == 0
    with torch.no_grad():  # each filter = the sum of the centre word's vector; the [PAD] word sums to 500
        for model in (opennre, masked):
            conv = model.encoder.conv
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[:, :50, 1] = 1.0
            model.encoder.word_embedding.embedding.weight[0] = 10.0
        with_padding, without = opennre.encoder(batch), masked.encoder(batch)
    assert torch.allclose(with_padding, torch.full_like(with_padding, 500.0))
    assert (without < 100).all()  # the real words only
    opennre.train()
    opennre(batch_of(opennre, train_bags[:4]))["loss"].backward()
    assert embedding.weight.grad[0].abs().sum() > 0  # [PAD] is trained


def test_an_unknown_padding_is_a_config_error():
    from hiere.errors import HiereConfigError
    from hiere.models.bag.att import AttConfig

    with pytest.raises(HiereConfigError, match="model.padding='zero': must be one of masked, opennre"):
        AttConfig.from_dict({"padding": "zero"})


def test_hnre_reads_sentences_through_a_transformer_encoder(train_bags, relations, tmp_path):
    """A bag head takes any sentence encoder: HNRE's hierarchical attention over MiniLM sentence vectors."""
    import hiere
    from hiere.config import resolve
    from hiere.training.trainer import train

    model = build("hnre", train_bags, relations, encoder="transformer", max_length=32, max_bag_sentences=2)
    assert model.encoder.output_size == model.encoder.hidden_size
    assert model.level_queries[0].shape[1] == model.encoder.hidden_size
    bags = multi_sentence(train_bags, 3)
    model.train()
    batch = batch_of(model, bags)
    assert batch["input_ids"].shape[0] == sum(min(bag.size, 2) for bag in bags)  # sampled to 2 per bag
    output = model(batch)
    output["loss"].backward()
    assert model.encoder.transformer.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert model.encoder.W_S.weight.grad.abs().sum() > 0 and model.level_queries[0].grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        scores = model(batch_of(model, bags))["scores"]  # every sentence at inference
    assert scores.shape == (3, len(relations))

    config = resolve({
        "model": {"name": "hnre", "encoder": "transformer", "max_length": 32, "max_bag_sentences": 2},
        "data": {"train": str(NYT10 / "nyt10sub_train90.txt"), "train_slice": [0, 12],
                 "relations": str(NYT10 / "nyt10_rel2id.json")},
        "trainer": {"epochs": 1, "max_steps": 1, "batch_size": 4, "progress": False, "device": "cpu",
                    "encoder_lr": 2e-5},
    })
    model_dir = train(config, tmp_path / "hnre_transformer")
    assert (model_dir / "encoder").is_dir()  # the tokenizer and model config travel with the weights
    loaded = hiere.load(model_dir, device="cpu")
    records = loaded.predict(bags[:1])
    assert len(records) == len(relations) - 1 and "attention" in records[0]


def test_hnre_warm_start_needs_a_cnn_encoder(train_bags, relations, tmp_path):
    from hiere.errors import HiereConfigError

    model = build("hnre", train_bags, relations, encoder="transformer", max_length=32, init_from=str(tmp_path))
    with pytest.raises(HiereConfigError, match="copies CNN/PCNN weights"):
        model.init_pretrained()
