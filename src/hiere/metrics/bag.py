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

:func:`score_bag_matrix` gives the same dict straight from a ``(rows, relations)`` score matrix, ranked with a
stable numpy argsort in the records' order (row, then relation), without a record per cell.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    predicted: dict[str, int] = defaultdict(int)
    correct: dict[str, int] = defaultdict(int)
    for key, score in ranked:
        if score < threshold:
            break
        predicted[key[2]] += 1
        correct[key[2]] += key in facts
    return mean_relation_f1(facts, predicted, correct)


def mean_relation_f1(facts: set[Fact], predicted: Mapping[str, int], correct: Mapping[str, int]) -> float:
    """Mean F1 over the relations of ``facts``, from the predicted and correct counts of each relation (summed
    in relation-name order: a set's order changes with Python's hash seed, and so would the last digit)."""
    gold_by_relation: dict[str, int] = defaultdict(int)
    for _, _, relation in facts:
        gold_by_relation[relation] += 1
    scores = []
    for relation, n_gold in sorted(gold_by_relation.items()):
        n_predicted, n_correct = predicted.get(relation, 0), correct.get(relation, 0)
        p = n_correct / n_predicted if n_predicted else 0.0
        r = n_correct / n_gold
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

    def rank_of(pair: tuple[str, str], relation: str) -> float:
        bag_scores = scores.get(pair, {})
        if relation not in bag_scores:
            return math.inf
        return sum(1 for r, s in bag_scores.items() if r != relation and s > bag_scores[relation])

    order = {r: i for i, r in enumerate(relation_order)} if relation_order is not None else appearance
    return _hits(bags, rank_of, order, long_tail, ks)


def _hits(
    bags: Iterable[Bag],
    rank_of: Callable[[tuple[str, str], str], float],
    order: Mapping[str, int],
    long_tail: Iterable[str],
    ks: Sequence[int],
) -> dict[str, float | int]:
    """Hits@K given ``rank_of(pair, relation)``: the relations of the pair scored above it (inf: unscored)."""
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
        rank = rank_of(bag.pair, first)
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
    correct = np.fromiter((key in facts for key, _ in ranked), dtype=bool, count=len(ranked))
    ranked_scores = np.fromiter((score for _, score in ranked), dtype=np.float64, count=len(ranked))
    result = _ranking_metrics(bags, facts, correct, ranked_scores, lambda threshold: macro_f1(ranked, facts, threshold))
    if long_tail is not None:
        result.update(hits_at_k(bags, records, long_tail, relation_order))
    return result


def score_bag_matrix(
    bags: Sequence[Bag],
    scores: Any,
    relation_names: Sequence[str],
    long_tail: Iterable[str] | None = None,
    relation_order: Sequence[str] | None = None,
    row_bags: Sequence[int] | None = None,
) -> dict[str, float | int]:
    """:func:`score_bags` of the records ``{"h", "t", "relation", "score"}`` of every score matrix cell, in row
    then column order (``BagTask.decode``'s records), computed from the matrix: the same dict, value for value.

    ``scores``: ``(n_rows, len(relation_names))``, a torch tensor (read as float32, as ``decode`` does) or an
    array (read as float64); columns named NA are not ranked. ``row_bags``: the index in ``bags`` of each row
    (default: row i is ``bags[i]``); ties keep row order, so rows in ``run_model``'s order rank as its records.
    """
    if hasattr(scores, "detach"):  # a torch tensor
        scores = scores.detach().float().cpu().numpy()
    values = np.asarray(scores, dtype=np.float64)
    rows = list(range(len(bags))) if row_bags is None else list(row_bags)
    if values.shape != (len(rows), len(relation_names)):
        raise ValueError(f"scores of shape {values.shape} for {len(rows)} rows and {len(relation_names)} relations")
    columns = [j for j, name in enumerate(relation_names) if name != NA]
    names = [str(relation_names[j]) for j in columns]
    pairs = [(str(bags[row].head_id), str(bags[row].tail_id)) for row in rows]  # rank_records' keys
    values = values[:, columns]
    repeated = bool(names and pairs) and (len(set(pairs)) < len(pairs) or len(set(names)) < len(names))
    if repeated or np.isnan(values).any():  # rank_records raises / Python's sort ranks NaN its own way
        records = (
            {"h": h, "t": t, "relation": name, "score": float(score)}
            for (h, t), row in zip(pairs, values, strict=True)
            for name, score in zip(names, row, strict=True)
        )
        return score_bags(bags, records, long_tail, relation_order)

    facts = gold_facts(bags)
    row_of_pair = {pair: row for row, pair in enumerate(pairs)}
    column_of = {name: column for column, name in enumerate(names)}
    gold = np.zeros(values.shape, dtype=bool)
    for h, t, relation in facts:
        if (h, t) in row_of_pair and relation in column_of:
            gold[row_of_pair[(h, t)], column_of[relation]] = True
    order = np.argsort(-values.ravel(), kind="stable")  # rank_records: sort by -score, ties in record order
    ranked_scores = values.ravel()[order]
    correct = gold.ravel()[order]
    ranked_columns = order % max(len(names), 1)

    def macro_at(threshold: float) -> float:
        kept = int(np.count_nonzero(ranked_scores >= threshold))  # the records macro_f1 takes before it stops
        predicted = np.bincount(ranked_columns[:kept], minlength=len(names)).tolist()
        right = np.bincount(ranked_columns[:kept][correct[:kept]], minlength=len(names)).tolist()
        return mean_relation_f1(facts, dict(zip(names, predicted, strict=True)), dict(zip(names, right, strict=True)))

    result = _ranking_metrics(bags, facts, correct, ranked_scores, macro_at)
    if long_tail is not None:

        def rank_of(pair: tuple[str, str], relation: str) -> float:
            if pair not in row_of_pair or relation not in column_of:
                return math.inf
            row = values[row_of_pair[pair]]
            return int(np.count_nonzero(row > row[column_of[relation]]))

        if relation_order is not None:
            order_of = {r: i for i, r in enumerate(relation_order)}
        else:  # hits_at_k's default: the order in which relations first appear in the records
            order_of = column_of if rows else {}
        result.update(_hits(bags, rank_of, order_of, long_tail, HITS_K))
    return result


def _ranking_metrics(
    bags: Sequence[Bag],
    facts: set[Fact],
    correct: np.ndarray,
    ranked_scores: np.ndarray,
    macro_at: Callable[[float], float],
) -> dict[str, float | int]:
    """The ranking metrics of the module docstring, from each ranked record's correctness and score."""
    precision, recall = precision_recall(correct, len(facts))
    f1 = f1_curve(precision, recall)
    best = int(np.argmax(f1)) if len(f1) else 0
    threshold = float(ranked_scores[best]) if len(ranked_scores) else 0.0
    result: dict[str, float | int] = {"pr_auc": pr_auc(precision, recall)}
    for n in PRECISION_AT:
        result[f"p@{n}"] = precision_at(correct, n)
    result["p@m"] = float(np.mean([result[f"p@{n}"] for n in PRECISION_AT]))
    result["micro_f1"] = float(f1[best]) if len(f1) else 0.0
    result["micro_f1_threshold"] = threshold
    result["macro_f1"] = macro_at(threshold) if len(ranked_scores) else 0.0
    result.update(
        n_bags=len(bags), n_facts=len(facts), n_predictions=len(ranked_scores), n_correct=int(np.count_nonzero(correct))
    )
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
