"""hiere extract: raw text -> DocRED document -> triples, on real Re-DocRED text."""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
from pathlib import Path

import pytest

from hiere.cli import add_extract_arguments, run_extract
from hiere.data.docred import Document, parse_document, read_docred
from hiere.data.relations import RelationMap
from hiere.errors import HiereInputError
from hiere.extract import (
    TRIPLE_FIELDS,
    document_to_bags,
    document_windows,
    entity_ids,
    extract,
    extract_text,
    format_table,
    iter_documents,
    triples_from_predictions,
    window_document,
)
from hiere.text.clusters import MentionInfo, cluster_mentions, initials, is_acronym, normalize_name
from hiere.text.pipeline import (
    DOCRED_TYPES,
    SPACY_TO_DOCRED,
    EntitySpan,
    TextPipeline,
    entity_names,
    parse_entities,
    split_windows,
    text_to_document,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED = Path(__file__).resolve().parents[2] / "shared"
REDOCRED = SHARED / "data" / "redocred" / "dev_revised.json"
REL_INFO = SHARED / "data" / "redocred" / "rel_info.json"


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return read_docred(REDOCRED, limit=6)


@pytest.fixture(scope="module")
def pipeline() -> TextPipeline:
    return TextPipeline()


@pytest.fixture(scope="module")
def relations() -> RelationMap:
    return RelationMap.from_rel_info(REL_INFO)


def joined(document: Document) -> str:
    return " ".join(" ".join(sent) for sent in document.sents)


def squash(name: str) -> str:
    return "".join(name.split()).casefold()


def gold_char_spans(document: Document) -> list[list[tuple[int, int]]]:
    """Character spans of every gold mention in :func:`joined` text, per entity."""
    starts, position = [], 0
    for token in document.tokens:
        starts.append(position)
        position += len(token) + 1
    spans = []
    for entity in document.entities:
        spans.append([])
        for mention in entity:
            first, last = document.mention_span(mention)
            spans[-1].append((starts[first], starts[last - 1] + len(document.tokens[last - 1])))
    return spans


class GoldPredictor:
    """Stands in for ``hiere.load(dir)``: predicts the gold facts of the Re-DocRED document whose
    entity names match (by name), so the plumbing around the model is tested on real facts."""

    def __init__(self, gold: list[Document], relations: RelationMap, task: str = "doc"):
        self.gold, self.relations, self.task, self.threshold = gold, relations, task, 0.5
        self.calls = 0

    def gold_pairs(self, document: Document) -> list[tuple[int, int, str]]:
        """Facts of the gold document sharing the most entity names with ``document``."""
        names = [{squash(m.name) for m in entity} for entity in document.entities]
        best: list[tuple[int, int, str]] = []
        best_matched = 1
        for gold in self.gold:
            gold_names = [{squash(m.name) for m in entity} for entity in gold.entities]
            matches = [[i for i, n in enumerate(names) if n & g] for g in gold_names]
            if sum(bool(m) for m in matches) > best_matched:
                best_matched = sum(bool(m) for m in matches)
                best = [(h, t, f.r) for f in gold.facts for h in matches[f.h] for t in matches[f.t] if h != t]
        return best

    def predict(self, examples: list) -> list[dict]:
        self.calls += 1
        if self.task == "bag":
            return self._predict_bags(examples)
        records = []
        for document in examples:
            for h, t, r in self.gold_pairs(document):
                records.append({"title": document.title, "h_idx": h, "t_idx": t, "r": r, "score": 0.9})
        return records

    def _predict_bags(self, bags: list) -> list[dict]:
        records = []
        for bag in bags:
            head = squash(bag.head_name)
            known = [g for g in self.gold if any(head == squash(m.name) for e in g.entities for m in e)]
            gold = known[0] if known else None
            if gold is None:
                continue
            index = {squash(m.name): i for i, e in enumerate(gold.entities) for m in e}
            facts = {(f.h, f.t): f.r for f in gold.facts}
            true = facts.get((index.get(squash(bag.head_name)), index.get(squash(bag.tail_name))))
            for relation in self.relations.relations[1:]:
                score = 0.9 if relation == true else 0.01
                records.append({"h": bag.head_id, "t": bag.tail_id, "relation": relation, "score": score})
        return records


# ------------------------------------------------------------------------------------------ pipeline


def test_pipeline_finds_most_gold_entity_names(documents, pipeline):
    found = total = 0
    for document in documents:
        parsed = pipeline.parse(joined(document), title=document.title)
        names = {squash(m.name) for entity in parsed.document.entities for m in entity}
        gold = [{squash(m.name) for m in entity} for entity in document.entities]
        found += sum(bool(g & names) for g in gold)
        total += len(gold)
    assert found / total >= 0.6, (found, total)


def test_spans_map_back_to_text_and_tokens(documents, pipeline):
    text = joined(documents[0])
    parsed = pipeline.parse(text)
    doc = parsed.document
    assert doc.tokens == [t for sentence in parsed.token_spans for t in (text[a:b] for a, b in sentence)]
    assert "".join(doc.tokens) == "".join(text.split())  # nothing dropped, nothing truncated
    for entity in doc.entities:
        for mention in entity:
            start, end = parsed.mention_chars(mention)
            assert text[start:end] == mention.name
            assert " ".join(doc.sents[mention.sent_id][mention.pos[0] : mention.pos[1]]) == mention.name
    assert parse_document(doc.to_json(), "x", 0).entities == doc.entities  # valid DocRED
    salt_lake = next(e for e in doc.entities if e[0].name == "Salt Lake City")
    assert salt_lake[0].type == "LOC" and doc.sents[salt_lake[0].sent_id][salt_lake[0].pos[0]] == "Salt"


def test_type_map_covers_every_spacy_label(pipeline, documents):
    labels = pipeline.nlp.get_pipe("ner").labels
    assert set(labels) <= set(SPACY_TO_DOCRED)
    assert {t for t in SPACY_TO_DOCRED.values() if t} <= set(DOCRED_TYPES)
    doc = text_to_document(joined(documents[0]), pipeline)
    types = {e[0].name: e[0].type for e in doc.entities}
    assert types["German"] == "LOC"  # NORP -> LOC, as DocRED annotates nationalities
    assert types["13 March 1963"] == "TIME"
    assert types["Duff Gibson"] == "PER"


def test_text_to_document_accepts_a_loaded_spacy_pipeline(pipeline, documents):
    sentence = " ".join(documents[0].sents[4])
    doc = text_to_document(sentence, pipeline.nlp, title="s4")
    assert doc.title == "s4" and len(doc.sents) == 1
    assert "Jon Montgomery" in entity_names(doc)


def test_user_entities_replace_ner_and_rebuild_the_gold_document(documents, pipeline):
    gold = documents[1]
    text = joined(gold)
    spans = [
        {"start": start, "end": end, "type": gold.entity_type(index), "cluster": index}
        for index, entity_spans in enumerate(gold_char_spans(gold))
        for start, end in entity_spans
    ]
    parsed = pipeline.parse(text, spans)
    assert len(parsed.document.entities) == len(gold.entities)
    rebuilt = sorted(sorted(m.name for m in e) for e in parsed.document.entities)
    expected = sorted(sorted(m.name for m in e) for e in gold.entities)
    assert rebuilt == expected
    # types from NER when not given: a span NER also finds gets NER's type, others MISC
    untyped = [{"start": s["start"], "end": s["end"]} for s in spans]
    kinds = {e[0].name: e[0].type for e in pipeline.parse(text, untyped).document.entities}
    assert set(kinds.values()) <= set(DOCRED_TYPES)


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ({"start": 0, "end": 5}, "entities", "JSON list"),
        ([{"start": 4, "end": 4}], "end", "empty"),
        ([{"start": -1, "end": 4}], "start", "character offset"),
        ([{"start": 0, "end": 4, "type": "ANIMAL"}], "type", "unknown type"),
        ([{"start": 0, "end": 4, "cluster": [1]}], "cluster", "cluster id"),
    ],
)
def test_bad_user_entities_name_the_field(raw, field, fragment):
    with pytest.raises(HiereInputError) as caught:
        parse_entities(raw, "ents.json")
    assert caught.value.field == field and fragment in caught.value.message
    assert caught.value.path == "ents.json"


def test_user_entity_outside_text_or_on_spaces(documents, pipeline):
    text = joined(documents[0])
    with pytest.raises(HiereInputError, match="outside the text"):
        pipeline.parse(text, [EntitySpan(0, len(text) + 5)])
    space = text.index(" ")
    with pytest.raises(HiereInputError, match="covers no token"):
        pipeline.parse(text, [{"start": space, "end": space + 1}])


def test_user_spans_crossing_a_sentence_end_merge_the_sentences(documents, pipeline):
    text = joined(documents[0])
    plain = pipeline.parse(text)
    first_end = plain.sentence_spans[0][1]
    parsed = pipeline.parse(text, [{"start": first_end - 5, "end": first_end + 5, "type": "MISC"},
                                   {"start": 0, "end": 8, "type": "PER"}])
    assert len(parsed.document.sents) == len(plain.document.sents) - 1
    assert parsed.document.sents[0] == plain.document.sents[0] + plain.document.sents[1]


# ------------------------------------------------------------------------------------------ clustering


def test_clustering_rules_on_real_names():
    names = [
        ('Wilfried " Willi " Schneider', "PER"), ("Schneider", "PER"),  # last token of a person name
        ("Latin American School of Medicine", "ORG"), ("LASM", "ORG"),  # acronym
        ("the United States", "LOC"), ("U.S.", "LOC"), ("United States", "LOC"),  # exact name + acronym
        ("Schneider", "PER"), ("Turin", "LOC"), ("Vancouver", "LOC"),
    ]
    infos = [MentionInfo(name, kind, position) for position, (name, kind) in enumerate(names)]
    groups = [[names[i][0] for i in members] for members in cluster_mentions(infos)]
    assert groups == [
        ['Wilfried " Willi " Schneider', "Schneider", "Schneider"],
        ["Latin American School of Medicine", "LASM"],
        ["the United States", "U.S.", "United States"],
        ["Turin"],
        ["Vancouver"],
    ]


def test_ambiguous_last_name_goes_to_the_nearest_earlier_person():
    # Re-DocRED document 3 has both "Ramez Idriss" and "Ramey Idriss"
    infos = [MentionInfo("Ramez Idriss", "PER", 0), MentionInfo("Ramey Idriss", "PER", 10),
             MentionInfo("Idriss", "PER", 20)]
    assert cluster_mentions(infos) == [[0], [1, 2]]
    before_both = [MentionInfo("Idriss", "PER", 0), *infos[:2]]
    assert cluster_mentions(before_both) == [[0], [1], [2]]  # ambiguous, nothing before it: alone


def test_user_clusters_are_never_merged_but_can_absorb_unlabelled_mentions():
    infos = [MentionInfo("George Tibbles", "PER", 0, "a"), MentionInfo("George Tibbles", "PER", 5, "b"),
             MentionInfo("Tibbles", "PER", 9)]
    groups = cluster_mentions(infos)
    assert [0] in groups or [0, 2] in groups
    assert len(groups) == 2


def test_name_helpers():
    assert normalize_name("The U.S.'s") == "us" == normalize_name("US")
    assert is_acronym("U.S.") and is_acronym("AACSB") and not is_acronym("Turin")
    assert initials("Association to Advance Collegiate Schools of Business") == "AACSB"
    assert initials("Navy , Army and Air Force Institutes") == "NAAFI"


def test_clustering_matches_gold_coreference_mostly(documents):
    agree = total = 0
    for document in documents:
        mentions = sorted(
            (document.mention_span(m)[0], m.name, m.type, index)
            for index, entity in enumerate(document.entities) for m in entity
        )
        groups = cluster_mentions([MentionInfo(name, kind, pos) for pos, name, kind, _ in mentions])
        predicted = {i: g for g, members in enumerate(groups) for i in members}
        for i, j in itertools.combinations(range(len(mentions)), 2):
            if predicted[i] == predicted[j]:
                total += 1
                agree += mentions[i][3] == mentions[j][3]
    assert agree / total >= 0.9


# ------------------------------------------------------------------------------------------ bad input


def test_binary_input_is_a_clear_error(pipeline):
    data = REDOCRED.read_bytes()[:200] + b"\x00\x01\x02\xff\xfe" * 20
    with pytest.raises(HiereInputError, match="binary"):
        pipeline.parse(data)
    with pytest.raises(HiereInputError, match="binary"):
        pipeline.parse(data.decode("latin-1").replace("\x00", ""))


def test_non_english_text_is_a_clear_error(pipeline):
    notes = (SHARED / "papers" / "002_66c7fb4f2eb29160.txt").read_text(encoding="utf-8")
    chinese = max(notes.splitlines(), key=lambda line: sum("\u4e00" <= ch <= "\u9fff" for ch in line)
                  - 2 * sum(ch.isascii() and ch.isalpha() for ch in line))
    with pytest.raises(HiereInputError, match="English"):
        pipeline.parse(chinese)
    assert TextPipeline(pipeline.nlp, check_english=False).parse(chinese).document.sents


def test_empty_text_and_text_without_entities_give_no_triples(documents, relations, pipeline):
    predictor = GoldPredictor(documents, relations)
    assert pipeline.parse("  \n ").document.sents == []
    assert extract_text(predictor, "", pipeline=pipeline) == []
    plain = next(
        " ".join(sent) for doc in documents for sent in doc.sents
        if len(pipeline.parse(" ".join(sent)).document.entities) < 2
    )
    assert extract_text(predictor, plain, pipeline=pipeline) == []
    assert predictor.calls == 0


def test_long_text_is_windowed_not_truncated(documents, pipeline):
    text = "\n\n".join(joined(doc) for doc in documents)
    windowed = TextPipeline(pipeline.nlp, chunk_chars=1500).parse(text)
    whole = pipeline.parse(text)
    assert windowed.document.tokens == whole.document.tokens
    assert windowed.token_spans[-1][-1][1] == len(text.rstrip())
    names_windowed = set(entity_names(windowed.document))
    names_whole = set(entity_names(whole.document))
    assert len(names_windowed & names_whole) >= 0.9 * len(names_whole)


def test_split_windows_cover_the_text_at_sentence_ends(documents):
    text = " ".join(joined(doc) for doc in documents)
    windows = split_windows(text, 1000)
    assert windows[0][0] == 0 and windows[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert all(0 < end - start <= 1000 for start, end in windows)
    assert all(text[end - 2 : end] in (". ", "? ", "! ") for _, end in windows[:-1])


# ------------------------------------------------------------------------------------------ bags, triples


def test_document_to_bags_one_bag_per_pair_sharing_a_sentence(documents):
    doc = documents[0]
    bags = document_to_bags(doc, entity_types=None)
    expected = {
        (h, t) for h, t in itertools.permutations(range(len(doc.entities)), 2)
        if {m.sent_id for m in doc.entities[h]} & {m.sent_id for m in doc.entities[t]}
    }
    ids = entity_ids(doc)
    assert {(ids.index(b.head_id), ids.index(b.tail_id)) for b in bags} == expected
    names = entity_names(doc)
    for bag in bags:
        assert bag.relations == ["NA"]
        for sentence in bag.sentences:
            head = " ".join(sentence.tokens[sentence.head[0] : sentence.head[1]])
            tail = " ".join(sentence.tokens[sentence.tail[0] : sentence.tail[1]])
            assert head in {m.name for m in doc.entities[ids.index(bag.head_id)]}
            assert tail in {m.name for m in doc.entities[ids.index(bag.tail_id)]}
            assert sentence.text == " ".join(sentence.tokens)
        assert bag.head_name == names[ids.index(bag.head_id)]
    named = document_to_bags(doc)
    assert named and all(doc.entity_type(ids.index(b.head_id)) not in ("TIME", "NUM") for b in named)


def test_triples_from_doc_records_use_names_relation_names_and_evidence(documents, relations):
    doc = documents[0]
    records = [
        {"title": doc.title, "h_idx": f.h, "t_idx": f.t, "r": f.r, "score": 0.5 + i / 100,
         "evidence": list(f.evidence)}
        for i, f in enumerate(doc.facts)
    ]
    records.append({**records[0], "score": 0.1})  # duplicate with a lower score: dropped
    triples = triples_from_predictions(doc, records, relations)
    assert len(triples) == len({(f.h, f.r, f.t) for f in doc.facts})
    assert [t["score"] for t in triples] == sorted((t["score"] for t in triples), reverse=True)
    names = entity_names(doc)
    first = next(t for t in triples if t["score"] == 0.5)
    fact = doc.facts[0]
    assert first["head"] == names[fact.h] and first["tail"] == names[fact.t]
    assert first["relation_name"] == json.loads(REL_INFO.read_text())[fact.r]
    assert first["evidence"] == [" ".join(doc.sents[i]) for i in sorted(fact.evidence)]
    assert tuple(first) == TRIPLE_FIELDS


def test_triples_from_bag_records_keep_scores_above_threshold(documents, relations):
    doc = documents[0]
    ids = entity_ids(doc)
    fact = doc.facts[0]
    records = [
        {"h": ids[fact.h], "t": ids[fact.t], "relation": fact.r, "score": 0.7},
        {"h": ids[fact.h], "t": ids[fact.t], "relation": "P17", "score": 0.2},
        {"h": ids[fact.h], "t": ids[fact.t], "relation": "NA", "score": 0.9},
    ]
    other = next(f for f in doc.facts if (f.h, f.t) != (fact.h, fact.t))
    records.append({"h": ids[other.h], "t": ids[other.t], "relation": other.r, "score": 0.3})
    kept = triples_from_predictions(doc, records, relations, threshold=0.5)
    assert [(t["relation"], t["score"]) for t in kept] == [(fact.r, 0.7)]  # best non-NA of its pair only
    low = triples_from_predictions(doc, records, relations, threshold=0.1)
    assert [(t["relation"], t["score"]) for t in low] == [(fact.r, 0.7), (other.r, 0.3)]


# ------------------------------------------------------------------------------------------ extract()


def test_extract_streams_one_result_per_text_in_order(documents, relations, pipeline):
    predictor = GoldPredictor(documents, relations)
    texts = [joined(documents[0]), "", joined(documents[2]), {"text": joined(documents[3]), "title": "x"}]
    results = list(extract(predictor, texts, pipeline=pipeline, batch_size=2))
    assert len(results) == 4 and results[1] == []
    for index in (0, 2, 3):
        document, triples = documents[index], results[index]
        assert triples
        gold = {(squash(m.name), f.r) for f in document.facts for m in document.entities[f.h]}
        assert all((squash(t["head"]), t["relation"]) in gold for t in triples)
    assert predictor.calls == 2


def test_extract_with_a_bag_model(documents, relations, pipeline):
    predictor = GoldPredictor(documents, relations, task="bag")
    triples = extract_text(predictor, joined(documents[0]), pipeline=pipeline)
    gold = {(squash(m.name), f.r) for f in documents[0].facts for m in documents[0].entities[f.h]}
    assert triples and all((squash(t["head"]), t["relation"]) in gold for t in triples)
    assert all(t["score"] == 0.9 for t in triples)


def test_extract_skips_bad_documents_when_asked(documents, relations, pipeline, caplog):
    predictor = GoldPredictor(documents, relations)
    texts = ["abc\x00def", joined(documents[0])]
    with pytest.raises(HiereInputError, match="document 1"):
        list(extract(predictor, texts, pipeline=pipeline))
    results = list(extract(predictor, texts, pipeline=pipeline, skip_errors=True))
    assert results[0] == [] and results[1]
    assert "binary" in caplog.text


# ------------------------------------------------------------------------------------------ files, CLI


def test_iter_documents_reads_lines_and_jsonl(tmp_path, documents):
    lines = tmp_path / "docs.txt"
    lines.write_text(f"{joined(documents[0])}\n\n{joined(documents[1])}\n", encoding="utf-8")
    assert [d["title"] for d in iter_documents(lines)] == ["line 1", "line 3"]
    records = tmp_path / "docs.jsonl"
    records.write_text(json.dumps({"text": joined(documents[0]), "title": documents[0].title}) + "\n"
                       + json.dumps(joined(documents[1])) + "\n{broken\n", encoding="utf-8")
    items = iter_documents(records)
    assert next(items)["title"] == documents[0].title
    assert next(items) == {"text": joined(documents[1]), "title": "line 2"}
    with pytest.raises(HiereInputError, match="line 3.*malformed JSON"):
        next(items)
    with pytest.raises(HiereInputError, match="does not exist"):
        iter_documents(tmp_path / "missing.txt")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    decoded = list(iter_documents(binary))  # bad bytes are U+FFFD; the binary check comes when parsing
    assert decoded[0] == {"text": "\ufffdPNG", "title": "line 1"}
    assert any("\x00" in d["text"] for d in decoded)


def test_table_columns_are_aligned(documents, relations):
    doc = documents[0]
    records = [{"title": "t", "h_idx": f.h, "t_idx": f.t, "r": f.r, "score": 0.8} for f in doc.facts[:5]]
    table = format_table(triples_from_predictions(doc, records, relations), "Willi Schneider").splitlines()
    assert table[0] == "# Willi Schneider" and table[1].split()[:2] == ["head", "relation"]
    columns = [table[1].index(word) for word in ("relation", "tail")]
    for row in table[3:]:
        assert all(row[c - 2 : c] == "  " and row[c] != " " for c in columns)
    assert format_table([]) == "(no relations found)"


def parse_cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    add_extract_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["m", "docs.txt", "--text", "x"], "either --text"),
        (["m"], "either --text"),
        (["m", "--text", "   "], "empty"),
        (["m", "docs.txt", "--entities", "e.json"], "--entities goes with --text"),
        (["m", "missing.txt"], "does not exist"),
    ],
)
def test_cli_input_errors_are_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "docs.txt" in argv:
        (tmp_path / "docs.txt").write_text("text\n")
    assert run_extract(parse_cli(argv)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.slow
def test_cli_extract_end_to_end_with_a_trained_bilstm(tmp_path, documents, capsys):
    """Train bilstm for 2 steps on 4 real documents, then run ``hiere extract`` on text and on a file."""
    from hiere.cli import main

    repo = Path(__file__).resolve().parents[1]
    model_dir = tmp_path / "model"
    code = main([
        "train", str(repo / "configs" / "bilstm_redocred.yaml"), "-o", str(model_dir),
        "--set", f"data.train={REDOCRED}", "--set", "data.train_slice=[0,4]",
        "--set", f"data.dev={REDOCRED}", "--set", "data.dev_slice=[4,6]",
        "--set", f"data.relations={REL_INFO}",
        "--set", "trainer.epochs=1", "--set", "trainer.max_steps=2", "--set", "trainer.progress=false",
        "--set", "model.hidden=16",
    ])
    assert code == 0
    capsys.readouterr()
    out = io.StringIO()
    args = parse_cli([str(model_dir), "--text", joined(documents[0])])
    assert run_extract(args, out) == 0
    for line in out.getvalue().splitlines():
        triple = json.loads(line)
        assert tuple(triple) == TRIPLE_FIELDS
    docs = tmp_path / "docs.txt"
    docs.write_text(f"{joined(documents[4])}\n\n{joined(documents[5])}\n", encoding="utf-8")
    out = io.StringIO()
    assert run_extract(parse_cli([str(model_dir), str(docs), "--format", "table", "--no-progress"]), out) == 0
    assert out.getvalue().count("# line ") == 2
    assert "2 document(s)" in capsys.readouterr().err


def test_bad_entities_of_a_record_name_the_document(documents, relations, pipeline):
    predictor = GoldPredictor(documents, relations)
    bad = {"text": joined(documents[1]), "entities": [{"start": 3, "end": 1}]}
    records = [{"text": joined(documents[0])}, bad]
    with pytest.raises(HiereInputError) as caught:
        list(extract(predictor, records, pipeline=pipeline, source="docs.jsonl"))
    assert str(caught.value).startswith("docs.jsonl: document 2, entity 0, field end:")


def test_document_windows_overlap_and_cover_every_sentence(documents, pipeline):
    long_doc = pipeline.parse(" ".join(joined(doc) for doc in documents)).document
    lengths = [len(sentence) for sentence in long_doc.sents]
    windows = document_windows(long_doc, 300)
    assert windows[0][0] == 0 and windows[-1][1] == len(lengths) and len(windows) > 2
    assert all(sum(lengths[a:b]) <= 300 or b - a == 1 for a, b in windows)
    assert all(b[0] < a[1] and a[0] < b[0] for a, b in itertools.pairwise(windows))  # overlapping, advancing
    assert all(any(a <= i and i + 1 < b for a, b in windows) for i in range(len(lengths) - 1))
    assert document_windows(long_doc, 0) == [(0, len(lengths))]
    start, end = windows[1]
    window, index = window_document(long_doc, start, end, "w")
    assert window.sents == long_doc.sents[start:end]
    for local, entity in enumerate(window.entities):
        assert {m.name for m in entity} <= {m.name for m in long_doc.entities[index[local]]}
        assert all(window.sents[m.sent_id][m.pos[0] : m.pos[1]] == m.name.split() for m in entity)


def test_extract_reads_long_documents_in_windows(documents, relations, pipeline):
    predictor = GoldPredictor(documents, relations)
    text = " ".join(joined(doc) for doc in documents[:3])
    whole = extract_text(predictor, text, pipeline=pipeline)
    [windowed] = extract(predictor, [text], pipeline=pipeline, window_tokens=250)
    gold_by_doc = [{(squash(m.name), f.r) for f in d.facts for m in d.entities[f.h]} for d in documents[:3]]
    keys = {(squash(t["head"]), t["relation"]) for t in windowed}
    sources = {i for i, gold in enumerate(gold_by_doc) if keys & gold}
    assert len(sources) >= 2 and len(windowed) > len(whole) > 0
    assert len({(t["head"], t["relation"], t["tail"]) for t in windowed}) == len(windowed)


@pytest.mark.slow
def test_extract_with_a_trained_bag_model_through_the_python_api(tmp_path, documents):
    """Train pcnn_att for 2 steps on 300 NYT10 sentences; ``hiere.load(dir).extract`` reads raw text as bags."""
    import hiere
    from hiere.config import load_config
    from hiere.training.trainer import train

    repo = Path(__file__).resolve().parents[1]
    nyt = SHARED / "data" / "nyt10"
    config = load_config(repo / "configs" / "pcnn_att_nyt10.yaml", [
        f"data.train={nyt / 'nyt10sub_train90.txt'}", "data.train_slice=[0,300]",
        f"data.dev={nyt / 'nyt10sub_val10.txt'}", "data.dev_slice=[0,100]", "data.test=null",
        f"data.relations={nyt / 'nyt10_rel2id.json'}", "data.long_tail=null",
        "trainer.epochs=1", "trainer.max_steps=2", "trainer.progress=false",
        "model.glove_vocab=1000", "model.hidden=16",
    ])
    model = hiere.load(train(config, tmp_path / "pcnn"), device="cpu")
    triples = model.extract(joined(documents[0]), threshold=0.0)
    pairs = {(t["head"], t["tail"]) for t in triples}
    assert triples and len(pairs) == len(triples)  # one relation per entity pair
    assert all(t["relation"].startswith("/") and t["head_type"] not in ("TIME", "NUM") for t in triples)
    expected = {(b.head_name, b.tail_name) for b in document_to_bags(model._text_pipeline.parse(
        joined(documents[0])).document)}
    assert pairs == expected


def test_model_calls_are_bounded_by_windows_not_by_texts(documents, relations, pipeline):
    """A long text's windows fill a batch: it is flushed alone instead of waiting for batch_size texts
    (which once put every window of 8 long texts into one model call); the triples do not change."""

    class Recording(GoldPredictor):
        def __init__(self, *args):
            super().__init__(*args)
            self.sizes: list[int] = []

        def predict(self, examples: list) -> list[dict]:
            self.sizes.append(len(examples))
            return super().predict(examples)

    texts = [" ".join(joined(doc) for doc in documents[:3]), joined(documents[3]), joined(documents[4])]
    one_by_one = Recording(documents, relations)
    expected = list(extract(one_by_one, texts, pipeline=pipeline, window_tokens=250, batch_size=1))
    long_windows, short, other = one_by_one.sizes
    assert long_windows >= 4 and short == other == 1
    batched = Recording(documents, relations)
    got = list(extract(batched, texts, pipeline=pipeline, window_tokens=250, batch_size=4))
    assert batched.sizes == [long_windows, 2]  # the long text alone, then the two short ones together
    assert got == expected
