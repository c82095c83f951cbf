"""DocRED reader: real data read whole, and every kind of bad input gives one clear error."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REDOCRED, REL_INFO
from hiere.data.docred import parse_documents, read_docred
from hiere.data.relations import RelationMap
from hiere.errors import HiereInputError


def test_reads_all_of_redocred_dev(redocred_docs):
    assert len(redocred_docs) == 500
    assert sum(len(doc.facts) for doc in redocred_docs) == 17284
    doc = redocred_docs[0]
    assert doc.title == "Willi Schneider (skeleton racer)"
    mention = doc.entities[0][0]
    start, end = doc.mention_span(mention)
    assert doc.tokens[start:end] == doc.sents[mention.sent_id][mention.pos[0] : mention.pos[1]]


def test_relation_map_from_rel_info_keeps_na_first_and_names():
    relations = RelationMap.from_rel_info(REL_INFO)
    assert relations.relations[0] == "NA" and len(relations) == 97
    assert relations.relations[1:4] == ["P6", "P17", "P19"]
    assert relations.name("P19") == "place of birth"


def test_relation_map_from_opennre_rel2id():
    relations = RelationMap.from_rel_info(REDOCRED.parents[1] / "nyt10" / "nyt10_rel2id.json")
    assert relations["NA"] == 0 and relations["/location/neighborhood/neighborhood_of"] == 1


def write(tmp_path, records, name="bad.json"):
    path = tmp_path / name
    path.write_text(json.dumps(records))
    return path


def one_doc(redocred_raw, index=0):
    return copy.deepcopy(redocred_raw[index])


@pytest.mark.parametrize(
    ("mutate", "field", "phrase"),
    [
        (lambda d: d.update(sents=[]), "field sents", "empty document"),
        (lambda d: d["vertexSet"][1][0].update(pos=[0, 999]), "field vertexSet[1][0].pos", "outside sentence"),
        (lambda d: d["vertexSet"][2][0].update(sent_id=77), "field vertexSet[2][0].sent_id", "out of range"),
        (lambda d: d["labels"][0].update(h=99), "field labels[0].h", "entity index 99 is out of range"),
        (lambda d: d["labels"][1].update(r="P99999"), "field labels[1].r", "unknown relation 'P99999'"),
        (lambda d: d.pop("title"), "field title", "missing"),
    ],
)
def test_bad_document_names_file_document_and_field(tmp_path, redocred_raw, mutate, field, phrase):
    docs = [one_doc(redocred_raw, 0), one_doc(redocred_raw, 1)]
    mutate(docs[1])
    path = write(tmp_path, docs)
    with pytest.raises(HiereInputError) as caught:
        read_docred(path, RelationMap.from_rel_info(REL_INFO).relations)
    message = str(caught.value)
    assert message.startswith(str(path))
    assert "document 1" in message and field in message and phrase in message
    if "title" in docs[1]:
        assert repr(docs[1]["title"]) in message


def test_malformed_json_and_missing_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"title": "x", "sents": [["a"]]')
    with pytest.raises(HiereInputError, match=r"broken.json: malformed JSON at line 1"):
        read_docred(path)
    with pytest.raises(HiereInputError, match="does not exist"):
        read_docred(tmp_path / "nope.json")


def test_cli_reports_bad_input_in_one_line_without_traceback(tmp_path, redocred_raw):
    doc = one_doc(redocred_raw, 3)
    doc["vertexSet"][0][0]["pos"] = [5, 2]
    gold = write(tmp_path, [doc], "gold.json")
    pred = write(tmp_path, [], "pred.json")
    result = subprocess.run([sys.executable, "-m", "hiere", "score", str(gold), str(pred)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "gold.json" in lines[0] and "document 0" in lines[0] and "vertexSet[0][0].pos" in lines[0]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 499), st.data())
def test_round_trip_of_real_documents_with_shuffled_labels(redocred_raw, index, data):
    record = one_doc(redocred_raw, index)
    record["labels"] = data.draw(st.permutations(record["labels"]))
    doc = parse_documents([record])[0]
    again = parse_documents([doc.to_json()])[0]
    assert again == doc
    assert [(f.h, f.t, f.r) for f in doc.facts] == [(lab["h"], lab["t"], lab["r"]) for lab in record["labels"]]
