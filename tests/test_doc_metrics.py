"""DocRED scoring, checked against values computed by hand on real documents."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hiere.metrics.doc import best_threshold, is_intra, score_documents, train_facts


def facts_of(doc):
    return [{"title": doc.title, "h_idx": f.h, "t_idx": f.t, "r": f.r} for f in doc.facts]


def test_perfect_predictions(redocred_docs):
    gold = redocred_docs[:3]
    preds = [p for doc in gold for p in facts_of(doc)]
    result = score_documents(gold, preds)
    assert result["precision"] == result["recall"] == result["f1"] == 1.0
    assert result["n_pred"] == result["n_gold"] == sum(len(d.facts) for d in gold)


def test_hand_computed_precision_recall_with_duplicates_and_wrong_facts(redocred_docs):
    doc = redocred_docs[0]
    n_gold = len(doc.facts)
    right = facts_of(doc)[:4]
    wrong = [{"title": doc.title, "h_idx": 0, "t_idx": 0, "r": "P17"},
             {"title": "a title not in gold", "h_idx": 0, "t_idx": 1, "r": "P17"}]
    preds = right + right[:2] + wrong  # duplicates count once
    result = score_documents([doc], preds)
    assert result["n_pred"] == 6 and result["n_correct"] == 4
    precision, recall = 4 / 6, 4 / n_gold
    assert result["precision"] == pytest.approx(precision)
    assert result["recall"] == pytest.approx(recall)
    assert result["f1"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_ign_f1_discounts_facts_seen_in_training(redocred_docs):
    doc = redocred_docs[0]
    preds = facts_of(doc)
    # training on the same document: every correct fact is "in train"
    same = score_documents([doc], preds, train=[doc])
    assert same["n_correct_in_train"] == len(doc.facts)
    assert same["ign_precision"] == pytest.approx(0.0)
    assert same["ign_f1"] == 0.0
    # training on unrelated documents: count by hand which (mention name, mention name, r) are known
    train = redocred_docs[100:150]
    known = train_facts(train)
    in_train = sum(
        any((a.name, b.name, f.r) in known for a in doc.entities[f.h] for b in doc.entities[f.t]) for f in doc.facts
    )
    result = score_documents([doc], preds, train=train)
    assert result["n_correct_in_train"] == in_train
    n = len(doc.facts)
    ign_p = (n - in_train) / (n - in_train + 1e-5)
    assert result["ign_precision"] == pytest.approx(ign_p)
    assert result["ign_f1"] == pytest.approx(2 * ign_p * 1.0 / (ign_p + 1.0))


def test_intra_and_inter_split_by_shared_sentence(redocred_docs):
    doc = redocred_docs[0]
    intra = [f for f in doc.facts if is_intra(doc, f.h, f.t)]
    inter = [f for f in doc.facts if not is_intra(doc, f.h, f.t)]
    assert intra and inter
    preds = [{"title": doc.title, "h_idx": f.h, "t_idx": f.t, "r": f.r} for f in intra]
    result = score_documents([doc], preds)
    assert result["intra_precision"] == result["intra_recall"] == 1.0
    assert result["inter_recall"] == 0.0 and result["inter_f1"] == 0.0
    h, t = doc.facts[0].h, doc.facts[0].t
    shared = {m.sent_id for m in doc.entities[h]} & {m.sent_id for m in doc.entities[t]}
    assert is_intra(doc, h, t) == bool(shared)


def test_no_predictions_gives_zeros(redocred_docs):
    result = score_documents(redocred_docs[:2], [])
    assert result["precision"] == result["recall"] == result["f1"] == 0.0


def test_best_threshold_matches_exhaustive_search():
    candidates = [(0.9, True), (0.8, False), (0.8, True), (0.7, True), (0.3, False), (0.2, True)]
    n_gold = 5
    threshold, f1 = best_threshold(candidates, n_gold)

    def f1_at(cut):
        chosen = [c for s, c in candidates if s >= cut]
        correct = sum(chosen)
        p, r = (correct / len(chosen) if chosen else 0), correct / n_gold
        return 2 * p * r / (p + r) if p + r else 0

    assert f1 == pytest.approx(max(f1_at(s) for s, _ in candidates))
    assert f1_at(threshold) == pytest.approx(f1)
    # at 0.7: 3 of 4 correct, F1 = 0.667; at 0.2: 4 of 6, P 2/3, R 4/5, F1 = 0.727
    assert threshold == 0.2
    assert f1 == pytest.approx(2 * (2 / 3) * 0.8 / (2 / 3 + 0.8))


def test_score_cli_prints_metrics_json(tmp_path, redocred_raw, redocred_docs):
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps(redocred_raw[:2]))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(facts_of(redocred_docs[0])))
    train = tmp_path / "train.json"
    train.write_text(json.dumps(redocred_raw[10:20]))
    out = subprocess.run([sys.executable, "-m", "hiere", "score", str(gold), str(pred), "--train", str(train)],
                         capture_output=True, text=True, check=True).stdout
    metrics = json.loads(out)
    expected = score_documents(redocred_docs[:2], facts_of(redocred_docs[0]), redocred_docs[10:20])
    for key in ("precision", "recall", "f1", "ign_f1", "intra_f1", "inter_f1", "n_pred", "n_gold"):
        assert metrics[key] == pytest.approx(expected[key])


def test_evidence_scores_hand_computed(redocred_docs):
    """Evi P counts the ids of every kept prediction, Evi R every gold id; only correct facts score."""
    doc = redocred_docs[0]
    f0, f1, f3 = doc.facts[0], doc.facts[1], doc.facts[3]
    assert f0.evidence == (2,) and f1.evidence == (2,) and f3.evidence == (4,)

    def record(fact, evidence=None, title=doc.title):
        out = {"title": title, "h_idx": fact.h, "t_idx": fact.t, "r": fact.r}
        if evidence is not None:
            out["evidence"] = evidence
        return out

    wrong = type(f0)(0, 0, "P17")
    preds = [
        record(f0, [2, 0]),  # correct fact: 2 predicted ids, 1 right
        record(f0, [0, 1, 2, 3]),  # duplicate: the first record is kept, this one is ignored
        record(f3, [4, 4]),  # ids are a set: 1 predicted, 1 right
        record(wrong, [1, 2]),  # wrong fact: its 2 ids count as predicted, none as right
        record(f0, [0], title="a title not in gold"),  # not a gold title: not counted
        record(f1),  # no evidence: 0 ids
    ]
    result = score_documents([doc], preds)
    n_gold = sum(len(f.evidence) for f in doc.facts)
    assert n_gold == 27
    assert (result["n_pred_evidence"], result["n_correct_evidence"], result["n_gold_evidence"]) == (5, 2, 27)
    precision, recall = 2 / 5, 2 / 27
    assert result["evi_precision"] == pytest.approx(precision)
    assert result["evi_recall"] == pytest.approx(recall)
    assert result["evi_f1"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_evidence_perfect_and_absent(redocred_docs):
    gold = redocred_docs[:3]
    preds = [{**p, "evidence": list(f.evidence)} for doc in gold for p, f in zip(facts_of(doc), doc.facts, strict=True)]
    result = score_documents(gold, preds)
    assert result["evi_precision"] == result["evi_recall"] == result["evi_f1"] == 1.0
    # without any evidence list nothing is measured: the keys are absent, not zeros
    plain = score_documents(gold, [p for doc in gold for p in facts_of(doc)])
    assert not any(key.startswith("evi_") for key in plain)
