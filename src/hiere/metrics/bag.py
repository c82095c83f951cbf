"""Bag-level (distant supervision) metrics: the OpenNRE ranking protocol and HNRE's Hits@K.

Protocol (OpenNRE ``BagREDataset.eval``), over prediction records ``{"h", "t", "relation", "score"}``:

* a *fact* is ``(head_id, tail_id, relation)`` for every gold non-NA relation of a test bag;
  ``n_facts`` counts them all, also facts whose relation the model cannot predict;
* all non-NA records are ranked by score, descending. Ties keep the records' input order (a stable
  sort, as OpenNRE's ``sorted(..., reverse=True)``), so a result is deterministic for a given file;
* precision and recall at every rank k: ``correct_k / k`` and ``correct_k / n_facts``;
* **PR-AUC**: trapezoid area under (recall, precision) from rank 1 on (``sklearn.metrics.auc``);
* **P@N**: precision at rank N (``correct in the top N / N``; when fewer than N records exist the
  missing ones count as wrong); **P@M**: the mean of P@100, P@200 and P@300;
* **micro-F1**: the maximum of ``2PR / (P + R)`` over the curve;
* **macro-F1**: the records with ``score >= t*`` are predicted, where ``t*`` is the score at the rank
  of max micro-F1 (OpenNRE's ``max_macro_f1`` threshold); F1 per relation over those predictions,
  averaged over the relations that have at least one gold fact. (OpenNRE averages over every
  relation of its ``rel2id``, so relations absent from the test set add zeros; we leave them out.)

Hits@K (HNRE ``scripts/evaluate.py``, ``hit_k_100``/``hit_k_200`` modes): for each test bag take its
*first* gold relation in relation-map order; if that relation is in the long-tail list, its rank is
the number of non-NA relations of the bag scored strictly higher; a hit when ``rank < K``. Micro:
hits over such bags; macro: the mean over those relations of each relation's hit rate. A gold
relation with no score (not in the model's relation map) is a miss.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hiere.data.bags import Bag
from hiere.data.relations import NA

Fact = tuple[str, str, str]  # (head_id, tail_id, relation)
HITS_K = (10, 15, 20)
PRECISION_AT = (100, 200, 300)


def gold_facts(bags: Iterable[Bag]) -> set[Fact]:
    """``(head_id, tail_id, relation)`` of every gold non-NA relation of every bag."""
    return {(bag.head_id, bag.tail_id, r) for bag in bags for r in bag.relations if r != NA}


def rank_records(records: Iterable[Mapping[str, Any]]) -> list[tuple[Fact, float]]:
    """Non-NA records as ``((h, t, relation), score)``, by score descending; ties keep input order.

    Raises ``ValueError`` on a repeated ``(h, t, relation)``: each fact must be scored once.
    """
    seen: set[Fact] = set()
    ranked = []
    for record in records:
        if record["relation"] == NA:
            continue
        key = (str(record["h"]), str(record["t"]), str(record["relation"]))
        if key in seen:
            raise ValueError(f"fact {key} is scored more than once")
        seen.add(key)
        ranked.append((key, float(record["score"])))
    ranked.sort(key=lambda item: -item[1])
    return ranked


def precision_recall(correct: Sequence[bool], n_facts: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at every rank of a ranking whose items are ``correct`` or not."""
    hits = np.cumsum(np.asarray(correct, dtype=np.float64))
    ranks = np.arange(1, len(hits) + 1, dtype=np.float64)
    return hits / ranks, hits / n_facts if n_facts else np.zeros_like(hits)


def pr_auc(precision: np.ndarray, recall: np.ndarray) -> float:
    """Trapezoid area under the curve with recall on x (non-decreasing along the ranking)."""
    if len(recall) < 2:
        return 0.0
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2.0))


def precision_at(correct: Sequence[bool], n: int) -> float:
    """P@N: correct records among the top ``n`` divided by ``n``."""
    return float(sum(correct[:n])) / n


def f1_curve(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    total = precision + recall
    return np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)


def macro_f1(ranked: list[tuple[Fact, float]], facts: set[Fact], threshold: float) -> float:
    """Mean F1 over the relations with gold facts, predicting every record with ``score >= threshold``."""
    gold_by_relation: dict[str, int] = defaultdict(int)
    for _, _, relation in facts:
        gold_by_relation[relation] += 1
    predicted: dict[str, int] = defaultdict(int)
    correct: dict[str, int] = defaultdict(int)
    for key, score in ranked:
        if score < threshold:
            break
        predicted[key[2]] += 1
        correct[key[2]] += key in facts
    scores = []
    for relation, n_gold in gold_by_relation.items():
        p = correct[relation] / predicted[relation] if predicted[relation] else 0.0
        r = correct[relation] / n_gold
        scores.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def hits_at_k(
    bags: Iterable[Bag],
    records: Iterable[Mapping[str, Any]],
    long_tail: Iterable[str],
    relation_order: Sequence[str] | None = None,
    ks: Sequence[int] = HITS_K,
) -> dict[str, float | int]:
    """HNRE's Hits@K on the bags whose first gold relation is in ``long_tail`` (see module docstring).

    ``relation_order``: the relation map's order, used to pick a bag's first gold relation; by
    default the order in which relations first appear in ``records`` (``decode`` writes them in map
    order), with relations never scored after them, by name.
    """
    records = list(records)
    scores: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    appearance: dict[str, int] = {}
    for record in records:
        relation = str(record["relation"])
        if relation == NA:
            continue
        scores[(str(record["h"]), str(record["t"]))][relation] = float(record["score"])
        appearance.setdefault(relation, len(appearance))
    order = {r: i for i, r in enumerate(relation_order)} if relation_order is not None else appearance
    tail = set(long_tail)

    n_bags, hits = 0, dict.fromkeys(ks, 0)
    per_relation: dict[str, list[int]] = {}  # relation -> [n_bags, hits@k...]
    for bag in bags:
        gold = [r for r in bag.relations if r != NA]
        if not gold:
            continue
        first = min(gold, key=lambda r: (r not in order, order.get(r, 0), r))
        if first not in tail:
            continue
        bag_scores = scores.get(bag.pair, {})
        if first in bag_scores:
            rank = sum(1 for r, s in bag_scores.items() if r != first and s > bag_scores[first])
        else:
            rank = math.inf
        counts = per_relation.setdefault(first, [0] * (len(ks) + 1))
        n_bags += 1
        counts[0] += 1
        for column, k in enumerate(ks, start=1):
            if rank < k:
                hits[k] += 1
                counts[column] += 1
    result: dict[str, float | int] = {"n_long_tail_bags": n_bags, "n_long_tail_relations": len(per_relation)}
    for column, k in enumerate(ks, start=1):
        result[f"hits@{k}_micro"] = hits[k] / n_bags if n_bags else 0.0
        result[f"hits@{k}_macro"] = (
            float(np.mean([c[column] / c[0] for c in per_relation.values()])) if per_relation else 0.0
        )
    return result


def pr_curve(bags: Iterable[Bag], records: Iterable[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """``(precision, recall)`` at every rank, for plotting."""
    facts = gold_facts(bags)
    ranked = rank_records(records)
    return precision_recall([key in facts for key, _ in ranked], len(facts))


def score_bags(
    bags: Sequence[Bag],
    records: Iterable[Mapping[str, Any]],
    long_tail: Iterable[str] | None = None,
    relation_order: Sequence[str] | None = None,
) -> dict[str, float | int]:
    """All bag-level metrics of prediction ``records`` against gold ``bags`` (see module docstring)."""
    records = list(records)
    facts = gold_facts(bags)
    ranked = rank_records(records)
    correct = [key in facts for key, _ in ranked]
    precision, recall = precision_recall(correct, len(facts))
    f1 = f1_curve(precision, recall)
    best = int(np.argmax(f1)) if len(f1) else 0
    result: dict[str, float | int] = {"pr_auc": pr_auc(precision, recall)}
    for n in PRECISION_AT:
        result[f"p@{n}"] = precision_at(correct, n)
    result["p@m"] = float(np.mean([result[f"p@{n}"] for n in PRECISION_AT]))
    result["micro_f1"] = float(f1[best]) if len(f1) else 0.0
    result["micro_f1_threshold"] = ranked[best][1] if ranked else 0.0
    result["macro_f1"] = macro_f1(ranked, facts, ranked[best][1]) if ranked else 0.0
    result.update(
        n_bags=len(bags), n_facts=len(facts), n_predictions=len(ranked), n_correct=int(sum(correct))
    )
    if long_tail is not None:
        result.update(hits_at_k(bags, records, long_tail, relation_order))
    return result


def plot_pr_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path) -> None:
    """Draw ``{label: (precision, recall)}`` on one precision-recall plot, written atomically as PNG."""
    import io

    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

    from hiere.io import write_bytes_atomic

    figure = Figure(figsize=(6, 4.5))
    axes = figure.subplots()
    for label, (precision, recall) in curves.items():
        axes.plot(
            recall, precision, label=f"{label} (AUC {pr_auc(np.asarray(precision), np.asarray(recall)):.3f})"
        )
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.05)
    axes.grid(True, alpha=0.3)
    if curves:
        axes.legend(loc="upper right", fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())
