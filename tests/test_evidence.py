"""Evidence selection, the two baselines and subword -> sentence maps, on real Re-DocRED documents."""

from __future__ import annotations

import pytest
import torch

from conftest import write_docred
from hiere.errors import HiereConfigError
from hiere.evidence import (
    EvidenceRule,
    attach_baseline_evidence,
    closest_mention_sentences,
    mention_sentences,
    token_sentences,
)
from hiere.metrics.doc import score_documents


def test_rule_top_k_and_cut_off() -> None:
    scores = [0.1, 0.5, 0.05, 0.3, 0.5]
    assert EvidenceRule(top_k=2).select(scores) == [1, 4]  # ties: the earlier sentence first, output in order
    assert EvidenceRule(top_k=3).select(scores) == [1, 3, 4]
    assert EvidenceRule(top_k=None, min_score=0.1).select(scores) == [0, 1, 3, 4]
    assert EvidenceRule(top_k=2, min_score=0.4).select(scores) == [1, 4]
    assert EvidenceRule(top_k=None, min_score=0.9).select(scores) == []
    assert EvidenceRule(top_k=3).select([1.0, 0.0, 1.0, 0.0]) == [0, 2]  # a score of 0 is never evidence
    with pytest.raises(HiereConfigError):
        EvidenceRule(top_k=0)


def test_baselines_by_hand(redocred_docs) -> None:
    doc = redocred_docs[0]
    # fact 0: head 11 only in sentence 2, tail 6 only in sentence 0
    assert {m.sent_id for m in doc.entities[11]} == {2} and {m.sent_id for m in doc.entities[6]} == {0}
    assert mention_sentences(doc, 11, 6) == [0, 2]
    assert closest_mention_sentences(doc, 11, 6) == [0, 2]
    for h in range(len(doc.entities)):
        for t in range(len(doc.entities)):
            closest = closest_mention_sentences(doc, h, t)
            assert set(closest) <= set(mention_sentences(doc, h, t)) and 1 <= len(closest) <= 2
            shared = {m.sent_id for m in doc.entities[h]} & {m.sent_id for m in doc.entities[t]}
            if shared:  # entities that share a sentence: the closest pair lies in one of the shared ones
                assert len(closest) == 1 and closest[0] in shared


def test_baseline_records_score(redocred_docs) -> None:
    gold = redocred_docs[:5]
    records = [{"title": d.title, "h_idx": f.h, "t_idx": f.t, "r": f.r} for d in gold for f in d.facts]
    mentions = score_documents(gold, attach_baseline_evidence(records, gold, "mentions"))
    closest = score_documents(gold, attach_baseline_evidence(records, gold, "closest"))
    assert mentions["evi_recall"] >= closest["evi_recall"]  # a superset of sentences per fact
    assert mentions["n_pred_evidence"] >= closest["n_pred_evidence"]
    with pytest.raises(HiereConfigError):
        attach_baseline_evidence(records, gold, "random")


def test_token_sentences_follow_words_and_markers() -> None:
    # [CLS] w0 w1 | <m> w2 </m>-marker w3 [SEP]: sentence 0 = words 0-1, sentence 1 = words 2-3
    word_spans = [(1, 2), (2, 4), (5, 6), (7, 8)]
    ids = token_sentences(word_spans, [2, 2], {2}, 1, 9)
    assert ids == [-1, 0, 0, 0, 1, 1, 1, 1, -1]


def test_bilstm_evidence_is_the_closest_rule(redocred_docs) -> None:
    from hiere.data.relations import RelationMap
    from hiere.data.vocab import Vocab
    from hiere.models.doc.bilstm import BiLSTMRE
    from hiere.models.doc.common import build_type_vocab, collate_documents, featurize_document

    docs = redocred_docs[:2]
    words = Vocab(sorted({token for doc in docs for token in doc.tokens}))
    relations = RelationMap.from_facts({f.r for doc in docs for f in doc.facts})
    batch = collate_documents([featurize_document(doc, words, build_type_vocab(docs), relations) for doc in docs])
    explanations = BiLSTMRE.explain(batch)
    assert len(explanations) == len(batch["pairs"])
    rule = EvidenceRule(top_k=None, min_score=0.5)
    for (b, h, t), explanation in zip(batch["pairs"], explanations, strict=True):
        assert len(explanation["sentence_scores"]) == len(docs[b].sents)
        assert rule.select(explanation["sentence_scores"]) == closest_mention_sentences(docs[b], h, t)


def test_evidence_table_runs_on_a_one_step_model(tmp_path, capsys) -> None:
    """benchmarks/evidence_table.py end to end: a HIN trained for one step, 1 tune + 1 report document."""
    import importlib.util
    import json

    from conftest import REDOCRED, REL_INFO, REPO
    from hiere.config import resolve
    from hiere.data.docred import read_docred
    from hiere.training.trainer import train

    config = resolve({
        "model": {"name": "hin", "hidden": 16, "subspace_dim": 8},
        "data": {"train": str(REDOCRED), "train_slice": [0, 2], "relations": str(REL_INFO)},
        "trainer": {"epochs": 1, "max_steps": 1, "batch_size": 2, "progress": False, "device": "cpu"},
    })
    model_dir = train(config, tmp_path / "hin")
    dev = tmp_path / "dev.json"
    write_docred(read_docred(REDOCRED, limit=2, offset=450), dev)
    spec = importlib.util.spec_from_file_location("evidence_table", REPO / "benchmarks" / "evidence_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "table.json"
    argv = [str(model_dir), "--dev", str(dev), "--slice", "0", "2", "--tune-docs", "1", "--json", str(out)]
    assert module.main(argv) == 0
    figures = json.loads(out.read_text())["models"][0]
    assert {"top1", "top2", "top3", "tuned", "mentions", "closest"} <= figures.keys()
    assert 0.0 <= figures["tuned"]["evi_f1"] <= 1.0
    assert "| hin" in capsys.readouterr().out
    from hiere import load

    metrics = load(model_dir, "cpu").evaluate(dev)  # hiere evaluate: with the model's evidence rule
    assert {"evi_precision", "evi_recall", "evi_f1", "n_pred_evidence"} <= metrics.keys()


def test_fast_rule_tuning_counts_as_the_scorer(redocred_docs) -> None:
    """benchmarks/evidence_table.py tunes with array counts; they must give score_documents' Evi F1."""
    import importlib.util

    from conftest import REPO
    from hiere.evidence import apply_rule

    spec = importlib.util.spec_from_file_location("evidence_table", REPO / "benchmarks" / "evidence_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    docs = redocred_docs[:20]
    records = []
    for d in docs:  # every gold fact plus a wrong one per document, scored by a fixed pattern
        for index, f in enumerate([*d.facts, type(d.facts[0])(0, 1, "P17")]):
            scores = [((index + 3) * (s + 1)) % 7 / 7 for s in range(len(d.sents))]
            records.append({"title": d.title, "h_idx": f.h, "t_idx": f.t, "r": f.r, "sentence_scores": scores})
    rule, f1 = module.tune_rule(docs, records)
    exact = score_documents(docs, [apply_rule(dict(r), rule) for r in records])["evi_f1"]
    assert f1 == pytest.approx(exact)


def test_cli_score_reports_evidence_and_rejects_a_bad_list(tmp_path, capsys) -> None:
    import json

    from conftest import REDOCRED
    from hiere.cli import main
    from hiere.data.docred import read_docred

    docs = read_docred(REDOCRED, limit=2)
    gold = tmp_path / "gold.json"
    write_docred(docs, gold)
    records = [{"title": d.title, "h_idx": f.h, "t_idx": f.t, "r": f.r, "evidence": list(f.evidence)}
               for d in docs for f in d.facts]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(records))
    assert main(["score", str(gold), str(pred)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["evi_f1"] == 1.0
    records[3]["evidence"] = "2"
    pred.write_text(json.dumps(records))
    assert main(["score", str(gold), str(pred)]) == 2
    err = capsys.readouterr().err
    assert "prediction 3 (" in err and "field evidence: must be a list of sentence ids, got '2'" in err


def test_baseline_command_writes_records_with_evidence(tmp_path) -> None:
    import json

    from conftest import REDOCRED
    from hiere.data.docred import read_docred
    from hiere.evidence import main

    docs = tmp_path / "docs.json"
    write_docred(read_docred(REDOCRED, limit=2), docs)
    out = tmp_path / "out.json"
    assert main([str(docs), "--gold-facts", "--baseline", "mentions", "-o", str(out)]) == 0
    records = json.loads(out.read_text())
    assert records and all(r["evidence"] for r in records)
    assert main([str(docs), "--baseline", "mentions", "-o", str(out)]) == 2  # neither PRED nor --gold-facts


def test_sentence_score_rows_are_made_when_read_and_chained_batches_index_as_one() -> None:
    from hiere.evidence import SentenceScoreRows
    from hiere.training.inference import ChainedRows

    mass = torch.tensor([[0.5, 0.25, 0.1234567], [0.0, 1.0, 0.0]])
    rows = SentenceScoreRows(mass, [3, 2])
    assert len(rows) == 2 and rows[0] == {"sentence_scores": [0.5, 0.25, 0.123457]}
    assert rows[-1] == {"sentence_scores": [0.0, 1.0]} and rows[0:2] == [rows[0], rows[1]]
    with pytest.raises(IndexError):
        rows[2]
    with pytest.raises(ValueError, match="2 rows of scores but 1 sentence counts"):
        SentenceScoreRows(mass, [3])
    chained = ChainedRows([rows, [None], [], rows])
    assert len(chained) == 5 and list(chained) == [rows[0], rows[1], None, rows[0], rows[1]]
    assert chained[2] is None and chained[-2] == rows[0]
