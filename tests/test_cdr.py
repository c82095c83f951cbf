"""BC5CDR PubTator reader on the real files' first documents, its rules, its errors, and the CDR configs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO, SHARED_DATA
from hiere.data.pubtator import _tokenize, is_pubtator, read_pubtator
from hiere.errors import HiereInputError
from hiere.metrics.doc import is_intra
from hiere.tasks.doc import TASK

CDR = SHARED_DATA / "cdr"
TRAIN = CDR / "CDR_TrainingSet.PubTator.txt"
DEV = CDR / "CDR_DevelopmentSet.PubTator.txt"


@pytest.fixture(scope="module")
def first_docs():
    return read_pubtator(TRAIN, limit=5)


def entity_of(doc, name):
    return next(i for i, entity in enumerate(doc.entities) if any(m.name == name for m in entity))


def test_first_document_by_hand(first_docs) -> None:
    doc = first_docs[0]  # PMID 227508, "Naloxone reverses the antihypertensive effect of clonidine."
    assert doc.title == "227508" and doc.source == "pubtator"
    assert doc.sents[0] == ["Naloxone", "reverses", "the", "antihypertensive", "effect", "of", "clonidine", "."]
    assert len(doc.sents) == 7  # title + 6 abstract sentences; "0.2 to 2 mg/kg" is not cut at "0."
    assert "0 . 2 to 2 mg / kg" in " ".join(doc.sents[1])
    # 6 entities: naloxone, clonidine (D003000), hypertensive, hypotensive, alpha-methyldopa, and the
    # file's "D003000f" clonidine kept as annotated; "nalozone" and "[3H]-naloxone" have id -1: left out
    assert len(doc.entities) == 6
    assert not any(m.name in ("nalozone", "[3H]-naloxone") for entity in doc.entities for m in entity)
    naloxone = doc.entities[entity_of(doc, "Naloxone")]
    assert [m.sent_id for m in naloxone] == [0, 2, 3, 4, 6]
    methyldopa, hypotensive = entity_of(doc, "alpha-methyldopa"), entity_of(doc, "hypotensive")
    assert [(f.h, f.t, f.r) for f in doc.facts] == [(methyldopa, hypotensive, "CID")]
    assert doc.entities[methyldopa][0].pos == (8, 11)  # alpha - methyldopa: three tokens of sentence 2
    assert is_intra(doc, methyldopa, hypotensive)


def test_multi_id_mention_joins_each_entity() -> None:
    doc = next(d for d in read_pubtator(TRAIN, limit=40) if d.title == "2234245")
    ocular = [i for i, e in enumerate(doc.entities) if any(m.name == "Ocular and auditory toxicity" for m in e)]
    assert len(ocular) == 2  # D014786 and D006311
    assert {doc.entities[i][0].pos for i in ocular} == {(0, 4)}


def test_every_mention_is_its_tokens_and_pairs_are_chemical_to_disease() -> None:
    for path in (TRAIN, DEV):
        docs = read_pubtator(path)
        assert len(docs) == 500
        for doc in docs:
            for entity in doc.entities:
                assert len({m.type for m in entity}) == 1
                for m in entity:
                    tokens = doc.sents[m.sent_id][m.pos[0] : m.pos[1]]
                    assert "".join(tokens) == "".join(m.name.split())
            pairs = doc.candidate_pairs()
            assert all(doc.entity_type(h) == "Chemical" and doc.entity_type(t) == "Disease" for h, t in pairs)
            assert {(f.h, f.t) for f in doc.facts} <= set(pairs)
    assert sum(len(d.facts) for d in read_pubtator(TRAIN)) == 1038  # the file's 1038 CID lines, none repeated


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ab1 .-(", min_size=1, max_size=30), st.sets(st.integers(0, 30)))
def test_tokens_cover_the_text_and_respect_cuts(text, cuts) -> None:
    tokens = _tokenize(text, cuts)
    assert all(a < b for a, b in tokens) and all(tokens[i][1] <= tokens[i + 1][0] for i in range(len(tokens) - 1))
    covered = {offset for a, b in tokens for offset in range(a, b)}
    assert covered == {i for i, c in enumerate(text) if not c.isspace()}
    boundaries = {a for a, _ in tokens} | {b for _, b in tokens}
    assert all(c in boundaries for c in cuts if 0 < c < len(text) and c in covered and c - 1 in covered)


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bad.PubTator.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = ["1|t|Aspirin causes ulcers.", "1|a|Ulcers follow aspirin.", "1\t0\t7\tAspirin\tChemical\tD001241",
        "1\t15\t21\tulcers\tDisease\tD014456", "1\tCID\tD001241\tD014456"]


@pytest.mark.parametrize(
    ("line_number", "bad", "message"),
    [
        (3, "1\t0\t8\tAspirin\tChemical\tD001241", "differs from the text"),
        (3, "1\t0\t99\tAspirin\tChemical\tD001241", "outside the text"),
        (3, "1\tx\t7\tAspirin\tChemical\tD001241", "must be integers"),
        (3, "1\t0\t7\tAspirin\tGene\tD001241", "is not one of Chemical, Disease"),
        (3, "1\t0\t7\tAspirin", "tab-separated columns"),
        (5, "1\tCID\tD000001\tD014456", "names no Chemical mention"),
        (5, "2\tCID\tD001241\tD014456", "differs from the record's PMID"),
    ],
)
def test_a_bad_record_is_one_line_naming_file_pmid_and_line(tmp_path, line_number, bad, message) -> None:
    lines = list(GOOD)
    lines[line_number - 1] = bad
    path = write(tmp_path, lines)
    with pytest.raises(HiereInputError) as error:
        read_pubtator(path)
    text = str(error.value)
    assert "\n" not in text and str(path) in text and f"PMID 1, line {line_number}" in text and message in text


def test_a_repeated_pmid_is_an_error(tmp_path) -> None:
    with pytest.raises(HiereInputError, match="PMID 1, line 7, field PMID: a second record of this PMID"):
        read_pubtator(write(tmp_path, [*GOOD, "", *GOOD]))


def test_missing_abstract_and_missing_file(tmp_path) -> None:
    with pytest.raises(HiereInputError, match="PMID 1, line 1.*no PMID\\|a\\| line"):
        read_pubtator(write(tmp_path, [GOOD[0]]))
    with pytest.raises(HiereInputError, match="does not exist"):
        read_pubtator(tmp_path / "none.PubTator.txt")


def test_task_reads_pubtator_by_extension_and_reports_plain_f1(first_docs) -> None:
    assert is_pubtator(TRAIN) and not is_pubtator("dev_revised.json")
    docs = TASK.read(TRAIN, limit=5)
    assert [d.title for d in docs] == [d.title for d in first_docs]
    records = [{"title": d.title, "h_idx": f.h, "t_idx": f.t, "r": f.r} for d in docs for f in d.facts]
    metrics = TASK.metrics(docs, records, train=docs)
    assert metrics["f1"] == 1.0 and "ign_f1" not in metrics and "evi_f1" not in metrics
    assert {"intra_f1", "inter_f1"} <= metrics.keys()


@pytest.mark.parametrize("name", ["atlop_cdr", "kmgre_cdr", "bilstm_cdr"])
def test_cdr_configs_train_on_training_select_on_development_no_test(name) -> None:
    from hiere.config import load_config

    config = load_config(REPO / "configs" / f"{name}.yaml")
    assert config["data"]["train"].endswith("CDR_TrainingSet.PubTator.txt")
    assert config["data"]["dev"].endswith("CDR_DevelopmentSet.PubTator.txt")
    assert not config["data"].get("test")


def test_one_step_bilstm_on_cdr_trains_evaluates_and_predicts_evidence(tmp_path) -> None:
    from hiere import load
    from hiere.config import load_config
    from hiere.training.trainer import train

    config = load_config(REPO / "configs" / "bilstm_cdr.yaml", [
        f"data.train={TRAIN}", f"data.dev={DEV}", "data.train_slice=[0, 4]", "data.dev_slice=[0, 3]",
        "trainer.epochs=1", "trainer.max_steps=1", "trainer.device=cpu", "trainer.progress=false",
        "model.hidden=16",
    ])
    model_dir = train(config, tmp_path / "bilstm_cdr")
    predictor = load(model_dir, "cpu")
    assert predictor.relations.relations[1:] == ["CID"]
    metrics = predictor.evaluate(read_pubtator(DEV, limit=3))
    assert {"f1", "intra_f1", "inter_f1"} <= metrics.keys() and "ign_f1" not in metrics
    predictor.threshold = 0.0
    records = predictor.predict(read_pubtator(DEV, limit=1))
    assert records, records
    assert all(r["r"] == "CID" and 1 <= len(r["evidence"]) <= 2 for r in records), str(records[:2])


class PairRecorder:
    """Stands in for a BC5CDR model in ``hiere extract``: predicts CID for every pair it is asked about."""

    task = "doc"
    threshold = 0.5
    config = {"data": {"train": str(TRAIN)}}

    def __init__(self):
        from hiere.data.relations import RelationMap

        self.relations = RelationMap.from_facts({"CID"})
        self.seen = []

    def predict(self, documents):
        records = []
        for doc in documents:
            self.seen.append(doc)
            for h, t in doc.candidate_pairs():
                records.append({"title": doc.title, "h_idx": h, "t_idx": t, "r": "CID", "score": 0.9})
        return records


def first_record_with_spans():
    lines = TRAIN.read_text(encoding="utf-8").split("\n\n")[0].splitlines()
    title, abstract = lines[0].split("|", 2)[2], lines[1].split("|", 2)[2]
    entities = [
        {"start": int(c[1]), "end": int(c[2]), "type": c[4], "cluster": c[5]}
        for c in (line.split("\t") for line in lines[2:]) if len(c) >= 6 and c[5] != "-1"
    ]
    return {"text": title + " " + abstract, "title": "227508", "entities": entities}


def test_extract_with_a_biomedical_model_needs_user_spans_and_pairs_chemicals_with_diseases() -> None:
    from hiere.extract import extract, is_biomedical

    predictor = PairRecorder()
    assert is_biomedical(predictor)
    record = first_record_with_spans()
    triples = next(extract(predictor, [record]))
    document = predictor.seen[0]
    assert document.source == "pubtator"
    assert all(t["head_type"] == "Chemical" and t["tail_type"] == "Disease" for t in triples)
    assert ("alpha-methyldopa", "hypotensive") in {(t["head"], t["tail"]) for t in triples}
    with pytest.raises(HiereInputError, match="trained on BC5CDR"):
        next(extract(predictor, [record["text"]]))  # spaCy's NER types: a clear error


def test_atlop_featurizes_cdr_chemical_disease_pairs_in_windows(first_docs) -> None:
    from hiere.data.relations import RelationMap
    from hiere.models import get_model_class
    from hiere.models.base import Resources

    model_class = get_model_class("atlop")
    relations = RelationMap.from_facts({"CID"})
    model = model_class(model_class.Config.from_dict({"max_length": 128, "emb_size": 128}), Resources(relations))
    doc = first_docs[0]
    feature = model.featurize(doc)
    assert feature["pairs"] == doc.candidate_pairs() and len(feature["input_ids"]) > 128  # windows needed
    positive = [row for row, pair in enumerate(feature["pairs"]) if feature["labels"][row, 1] == 1]
    assert [feature["pairs"][row] for row in positive] == [(doc.facts[0].h, doc.facts[0].t)]
    assert feature["evidence"].sum() == 0  # BC5CDR has no evidence: the DREEAM term has nothing to learn
    assert set(feature["token_sents"]) - {-1} == set(range(len(doc.sents)))
