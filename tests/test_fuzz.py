"""Property tests (hypothesis) over the readers and ``extract``: whatever the input, the only exception is
one of hiere's own errors, offsets stay inside the text, and output is valid JSON.

Inputs are real records (Re-DocRED, NYT10, predictions made from their facts, the shipped bilstm config)
with one part replaced by generated JSON, bytes or text. Kept small for a slow shared CPU: few examples,
no deadline.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import REDOCRED, REL_INFO, REPO, SHARED_DATA
from hiere.errors import HiereConfigError, HiereInputError

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.data_too_large])
NYT10_DEV = SHARED_DATA / "nyt10" / "nyt10sub_val10.txt"
HIERE_ERRORS = (HiereInputError, HiereConfigError)

json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
surrogates = st.integers(0xD800, 0xDFFF).map(chr)
odd_characters = surrogates | st.sampled_from(["\x00", "\x07", "\x1b", "\u2028", "\ufeff", "\ufffd", "\u200b", "\r"])


def real_docs(n: int = 3) -> list[dict]:
    return json.loads(REDOCRED.read_text(encoding="utf-8"))[:n]


REAL_DOCS = real_docs()
REAL_LINES = NYT10_DEV.read_text(encoding="utf-8").splitlines()[:6]


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with one node (chosen by walking down) replaced by generated JSON, or deleted."""
    value = copy.deepcopy(base)
    node, depth = value, 0
    while isinstance(node, dict | list) and node and depth < 6:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        child = node[key]
        if not isinstance(child, dict | list) or not child or draw(st.booleans()):
            if draw(st.integers(0, 3)) == 0:
                del node[key]
            else:
                node[key] = draw(json_values | st.integers(-3, 40))
            return value
        node, depth = child, depth + 1
    return draw(json_values)


def write(data: str | bytes, suffix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="hiere_fuzz_"))
    path = folder / f"input{suffix}"
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    path.write_bytes(data)
    return path


def file_bytes(text_form: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """The text, or the text with random bytes spliced in, or random bytes."""
    spliced = st.tuples(text_form, st.binary(max_size=8), st.integers(0, 10**6)).map(
        lambda t: t[0].encode("utf-8", "surrogatepass")[: t[2] % (len(t[0]) + 1)] + t[1]
        + t[0].encode("utf-8", "surrogatepass")[t[2] % (len(t[0]) + 1):])
    return text_form.map(lambda s: s.encode("utf-8", "surrogatepass")) | spliced | st.binary(max_size=64)


# ------------------------------------------------------------------------------------------ DocRED


@FUZZ
@given(data=file_bytes(mutated(REAL_DOCS[0]).map(lambda doc: json.dumps([REAL_DOCS[1], doc]))),
       labels=st.booleans())
def test_docred_reader_accepts_or_names_the_problem(data, labels):
    from hiere.data.docred import read_docred

    path = write(data, ".json")
    from hiere.data.relations import RelationMap

    known = RelationMap.from_rel_info(REL_INFO).relations
    try:
        documents = read_docred(path, relations=known, require_labels=labels)
    except HiereInputError as error:
        assert str(error).startswith(str(path)) and "\n" not in str(error)
        event("rejected")
        return
    event("accepted")
    for document in documents:
        for entity in document.entities:
            for mention in entity:
                assert 0 <= mention.pos[0] < mention.pos[1] <= len(document.sents[mention.sent_id])
        for fact in document.facts:
            assert 0 <= fact.h < len(document.entities) and 0 <= fact.t < len(document.entities)


# ------------------------------------------------------------------------------------------ OpenNRE jsonl


@FUZZ
@given(data=file_bytes(st.tuples(st.integers(0, len(REAL_LINES) - 1), mutated(json.loads(REAL_LINES[0]))).map(
    lambda t: "\n".join(REAL_LINES[: t[0]] + [json.dumps(t[1])] + REAL_LINES[t[0]:]))), labels=st.booleans())
def test_opennre_reader_accepts_or_names_the_problem(data, labels):
    from hiere.data.bags import read_bags

    path = write(data, ".txt")
    try:
        bags = read_bags(path, require_labels=labels)
    except HiereInputError as error:
        assert str(error).startswith(str(path)) and "\n" not in str(error)
        event("rejected")
        return
    event("accepted")
    for bag in bags:
        for sentence in bag.sentences:
            for start, end in (sentence.head, sentence.tail):
                assert 0 <= start < end <= len(sentence.tokens)


# ------------------------------------------------------------------------------------------ predictions


def gold_predictions() -> list[dict]:
    return [{"title": doc["title"], "h_idx": fact["h"], "t_idx": fact["t"], "r": fact["r"], "score": 0.5}
            for doc in REAL_DOCS for fact in doc["labels"][:3]]


@FUZZ
@given(data=file_bytes(mutated(gold_predictions()).map(json.dumps)))
def test_doc_predictions_are_scored_or_named(data):
    from hiere.data.docred import parse_documents
    from hiere.metrics.doc import score_documents
    from hiere.tasks.doc import known_relations, read_predictions

    gold = parse_documents(REAL_DOCS)
    path = write(data, ".json")
    try:
        records = read_predictions(path, gold, known_relations(gold))
    except HiereInputError as error:
        assert str(error).startswith(str(path)) and "\n" not in str(error)
        event("rejected")
        return
    event("accepted")
    metrics = score_documents(gold, records)
    json.dumps(metrics, allow_nan=False)
    assert 0.0 <= metrics["precision"] <= 1.0 and 0.0 <= metrics["recall"] <= 1.0


def bag_predictions() -> list[dict]:
    from hiere.data.bags import read_bags

    bags = read_bags(NYT10_DEV, limit=4)
    return [{"h": bag.head_id, "t": bag.tail_id, "relation": relation, "score": 0.1 * i}
            for i, bag in enumerate(bags) for relation in ("/people/person/nationality", "NA")]


@FUZZ
@given(data=file_bytes(mutated(bag_predictions()).map(json.dumps)))
def test_bag_predictions_are_scored_or_named(data):
    from hiere.data.bags import read_bags
    from hiere.metrics.bag import score_bags
    from hiere.tasks.bag import read_predictions

    path = write(data, ".json")
    try:
        records = read_predictions(path)
    except HiereInputError as error:
        assert str(error).startswith(str(path)) and "\n" not in str(error)
        event("rejected")
        return
    event("accepted")
    json.dumps(score_bags(read_bags(NYT10_DEV, limit=4), records))


# ------------------------------------------------------------------------------------------ configs

BILSTM_CONFIG = yaml.safe_load((REPO / "configs" / "bilstm_redocred.yaml").read_text())
config_keys = st.sampled_from(["model." + k for k in BILSTM_CONFIG["model"]] + ["trainer." + k for k in (
    "epochs", "lr", "schedule", "precision", "grad_accumulation", "device", "batch_size", "warmup_ratio",
    "max_steps", "optimizer", "fused", "metric")] + ["data.train_slice", "data.test", "trainr.lr", "model.name"])
yaml_values = st.sampled_from(["0", "-1", "1e-3", "fast", "ten", "2", "cosine", "fp8", "null", "[1, 2]", "{a: 1}",
                               ".nan", ".inf", "true", "cuda:7", "[", "'", "\udcff"]) | st.text(max_size=6)


@FUZZ
@given(overrides=st.lists(st.tuples(config_keys, yaml_values).map("=".join), max_size=3))
def test_configs_resolve_or_name_the_key(overrides):
    from hiere.config import apply_overrides, resolve
    from hiere.models import get_model_class

    try:
        config = resolve(apply_overrides(BILSTM_CONFIG, overrides))
        get_model_class(config["model"]["name"]).Config.from_dict(config["model"])
    except HIERE_ERRORS as error:
        assert "\n" not in str(error)
        event("rejected")


@FUZZ
@given(data=file_bytes(mutated(BILSTM_CONFIG).map(yaml.safe_dump)))
def test_config_files_load_or_name_the_file(data):
    from hiere.config import load_config

    path = write(data, ".yaml")
    try:
        load_config(path)
    except HIERE_ERRORS as error:
        assert "\n" not in str(error)
        event("rejected")


# ------------------------------------------------------------------------------------------ extract

REAL_SENTENCES = [" ".join(sentence) for doc in REAL_DOCS for sentence in doc["sents"]]
pieces = st.one_of(
    st.sampled_from(REAL_SENTENCES),
    st.text(max_size=30),
    st.text(odd_characters, max_size=4),
    st.sampled_from(["<p>", "</p>", "<a href='x'>", "&amp;", "<script>alert(1)</script>", "<br/>"]),
    st.integers(50, 3000).map(lambda n: "x" * n),  # a very long token
    st.lists(st.sampled_from(["Paris", "London", "Marie Curie", "IBM", "1999", "Berlin", "NASA"]), max_size=60)
    .map(", ".join),  # many entities
    st.just(""),
    st.just("\n\n"),
)
texts = st.lists(pieces, max_size=6).map(" ".join)


@pytest.fixture(scope="module")
def model(tiny_bilstm_dir):
    import hiere

    predictor = hiere.load(tiny_bilstm_dir, device="cpu")
    predictor.extract("Marie Curie was born in Warsaw.")  # loads spaCy once
    return predictor


@pytest.fixture(scope="module")
def pipeline():
    from hiere.text.pipeline import TextPipeline

    return TextPipeline(check_english=False)


@FUZZ
@given(text=texts)
def test_parse_offsets_index_the_given_text(pipeline, text):
    from hiere.text.pipeline import clean_text

    try:
        parsed = pipeline.parse(text)
    except HiereInputError:
        event("rejected")
        return
    event("accepted")
    assert parsed.text == clean_text(text) and len(parsed.text) == len(text)
    for sentence, spans in zip(parsed.document.sents, parsed.token_spans, strict=True):
        for token, (start, end) in zip(sentence, spans, strict=True):
            assert 0 <= start < end <= len(text) and parsed.text[start:end] == token
    for entity in parsed.document.entities:
        for mention in entity:
            start, end = parsed.mention_chars(mention)
            assert 0 <= start < end <= len(text)


@FUZZ
@given(text=texts, threshold=st.none() | st.floats(0, 1))
def test_extract_gives_json_triples_or_a_hiere_error(model, text, threshold):
    from hiere.extract import TRIPLE_FIELDS
    from hiere.text.pipeline import clean_text

    try:
        triples = model.extract(text, threshold=threshold)
    except HiereInputError as error:
        assert "\n" not in str(error)
        event("rejected")
        return
    event("accepted")
    cleaned = clean_text(text)
    for triple in triples:
        assert tuple(triple) == TRIPLE_FIELDS
        assert all(sentence in cleaned for sentence in triple["evidence"])
        assert triple["head"] in cleaned and triple["tail"] in cleaned
    json.loads(json.dumps(triples, ensure_ascii=False).encode("utf-8"))
