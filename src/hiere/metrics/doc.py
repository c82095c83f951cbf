"""DocRED / Re-DocRED official scoring: F1, Ign F1, intra/inter-sentence F1.

Follows the official ``evaluation.py`` of DocRED (also used by ATLOP and Re-DocRED):

* facts are ``(title, h_idx, t_idx, r)``; predictions are deduplicated on that key;
* P = correct / predicted (all deduplicated predictions, also of titles not in the gold file),
  R = correct / gold, F1 = 2PR / (P + R);
* a correct prediction is *in train* when some (head mention name, tail mention name, r) occurs among
  the training documents' facts; Ign P = (correct - in_train) / (predicted - in_train + 1e-5) (the
  official scorer's epsilon), Ign F1 from Ign P and the plain R;
* intra / inter: a fact is intra-sentence when its head and tail have mentions in a common sentence;
  P, R and F1 are computed within each group, classifying predictions by the gold document;
* evidence (Evi P / R / F1), as the official scorer counts it: of duplicate predictions the first in
  the file is kept (with its ``evidence``); ``n_pred_evidence`` sums the distinct sentence ids of
  *every* kept prediction of a gold title, right or wrong (a record without ``evidence`` adds 0);
  ``n_correct_evidence`` sums, over the *correct* facts only, the predicted ids that are among the gold
  fact's evidence; ``n_gold_evidence`` sums the length of every gold label's evidence list.
  Evi P = correct / predicted ids (0 when none), Evi R = correct / gold ids, Evi F1 = 2PR / (P + R).
  The evidence keys are left out of the result when no prediction carries ``evidence`` (nothing was
  explained, so nothing is measured) or when the gold file has no evidence (BC5CDR).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hiere.data.docred import Document

FactKey = tuple[str, int, int, str]


def train_facts(train_documents: Iterable[Document]) -> set[tuple[str, str, str]]:
    """(head mention name, tail mention name, relation) of every training fact, as the scorer builds them."""
    facts = set()
    for doc in train_documents:
        for fact in doc.facts:
            for head in doc.entities[fact.h]:
                for tail in doc.entities[fact.t]:
                    facts.add((head.name, tail.name, fact.r))
    return facts


def is_intra(doc: Document, h: int, t: int) -> bool:
    return bool({m.sent_id for m in doc.entities[h]} & {m.sent_id for m in doc.entities[t]})


def f1_score(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def score_documents(
    gold: list[Document],
    predictions: Iterable[Mapping[str, Any]],
    train: Iterable[Document] | None = None,
) -> dict[str, float | int]:
    """Score DocRED submission records ``{"title", "h_idx", "t_idx", "r"}`` against gold documents."""
    by_title = {doc.title: doc for doc in gold}
    gold_keys: set[FactKey] = {(doc.title, f.h, f.t, f.r) for doc in gold for f in doc.facts}
    first_record: dict[FactKey, Mapping[str, Any]] = {}
    for record in predictions:
        first_record.setdefault((record["title"], int(record["h_idx"]), int(record["t_idx"]), record["r"]), record)
    predicted: set[FactKey] = set(first_record)
    correct = predicted & gold_keys

    precision = len(correct) / len(predicted) if predicted else 0.0
    recall = len(correct) / len(gold_keys) if gold_keys else 0.0
    result: dict[str, float | int] = {
        "precision": precision,
        "recall": recall,
        "f1": f1_score(precision, recall),
        "n_pred": len(predicted),
        "n_gold": len(gold_keys),
        "n_correct": len(correct),
    }

    if train is not None:
        known = train_facts(train)
        in_train = sum(
            1
            for title, h, t, r in correct
            if any(
                (head.name, tail.name, r) in known
                for head in by_title[title].entities[h]
                for tail in by_title[title].entities[t]
            )
        )
        ign_precision = (len(correct) - in_train) / (len(predicted) - in_train + 1e-5)
        result.update(ign_precision=ign_precision, ign_f1=f1_score(ign_precision, recall), n_correct_in_train=in_train)

    for group, want_intra in (("intra", True), ("inter", False)):
        group_gold = {k for k in gold_keys if is_intra(by_title[k[0]], k[1], k[2]) == want_intra}
        group_pred = {
            k
            for k in predicted
            if k[0] in by_title and _valid_pair(by_title[k[0]], k[1], k[2])
            and is_intra(by_title[k[0]], k[1], k[2]) == want_intra
        }
        group_correct = len(group_pred & group_gold)
        p = group_correct / len(group_pred) if group_pred else 0.0
        r = group_correct / len(group_gold) if group_gold else 0.0
        result[f"{group}_precision"], result[f"{group}_recall"], result[f"{group}_f1"] = p, r, f1_score(p, r)
    result.update(evidence_scores(gold, first_record, by_title))
    return result


def evidence_scores(
    gold: list[Document], first_record: Mapping[FactKey, Mapping[str, Any]], by_title: Mapping[str, Document]
) -> dict[str, float | int]:
    """Evi P / R / F1 of the deduplicated predictions (see the module docstring); {} when not measurable."""
    if not any("evidence" in record for record in first_record.values()):
        return {}
    gold_evidence: dict[FactKey, set[int]] = {}
    n_gold_evidence = 0
    for doc in gold:
        for fact in doc.facts:
            gold_evidence[(doc.title, fact.h, fact.t, fact.r)] = set(fact.evidence)  # a repeated label: the last
            n_gold_evidence += len(fact.evidence)
    if n_gold_evidence == 0:
        return {}
    n_pred_evidence = n_correct_evidence = 0
    for key, record in first_record.items():
        if key[0] not in by_title:
            continue
        evidence = {int(sent_id) for sent_id in record.get("evidence") or ()}
        n_pred_evidence += len(evidence)
        if key in gold_evidence:
            n_correct_evidence += len(evidence & gold_evidence[key])
    precision = n_correct_evidence / n_pred_evidence if n_pred_evidence else 0.0
    recall = n_correct_evidence / n_gold_evidence
    return {
        "evi_precision": precision,
        "evi_recall": recall,
        "evi_f1": f1_score(precision, recall),
        "n_pred_evidence": n_pred_evidence,
        "n_gold_evidence": n_gold_evidence,
        "n_correct_evidence": n_correct_evidence,
    }


def _valid_pair(doc: Document, h: int, t: int) -> bool:
    return 0 <= h < len(doc.entities) and 0 <= t < len(doc.entities)


def best_threshold(
    candidates: list[tuple[float, bool]], n_gold: int
) -> tuple[float, float]:
    """Global threshold that maximises F1 over ``(score, is_correct)`` candidates (one per unique fact).

    Returns ``(threshold, f1)``; predictions are ``score >= threshold``. Ties in score are kept
    together, so the threshold reproduces exactly the F1 it reports.
    """
    ordered = sorted(candidates, key=lambda item: -item[0])
    best_f1, best = 0.0, (ordered[0][0] + 1.0 if ordered else 0.5)
    n_correct = 0
    for rank, (score, correct) in enumerate(ordered, start=1):
        n_correct += correct
        if rank < len(ordered) and ordered[rank][0] == score:
            continue
        f1 = f1_score(n_correct / rank, n_correct / n_gold if n_gold else 0.0)
        if f1 > best_f1:
            best_f1, best = f1, score
    return best, best_f1
