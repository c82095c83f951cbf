"""DocRED / Re-DocRED official scoring: F1, Ign F1, intra/inter-sentence F1.

Follows the official ``evaluation.py`` of DocRED (also used by ATLOP and Re-DocRED):

* facts are ``(title, h_idx, t_idx, r)``; predictions are deduplicated on that key;
* P = correct / predicted (all deduplicated predictions, also of titles not in the gold file),
  R = correct / gold, F1 = 2PR / (P + R);
* a correct prediction is *in train* when some (head mention name, tail mention name, r) occurs among
  the training documents' facts; Ign P = (correct - in_train) / (predicted - in_train + 1e-5) (the
  official scorer's epsilon), Ign F1 from Ign P and the plain R;
* intra / inter: a fact is intra-sentence when its head and tail have mentions in a common sentence;
  P, R and F1 are computed within each group, classifying predictions by the gold document.
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
    predicted: set[FactKey] = {(p["title"], int(p["h_idx"]), int(p["t_idx"]), p["r"]) for p in predictions}
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
    return result


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
