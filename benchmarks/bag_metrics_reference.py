"""Bag-level metrics: cross-check against a literal re-implementation of the reference scorers, and floors.

1. Reads the NYT10 test subset (timing, bag and fact counts).
2. Scores random predictions with ``hiere.metrics.bag.score_bags`` and with a direct transcription of
   OpenNRE's ``BagREDataset.eval`` (``sklearn.metrics.auc``, ``sklearn.metrics.f1_score``) and of HNRE's
   Hits@K loop, and prints the largest absolute difference (sklearn is needed for this step only).
3. Scores two training-free floors on the test set: the relation prior of the training bags
   (``prior``), and the prior times ``1 - 1/(1 + bag size)`` (``prior_x_size``).

Usage: ``python benchmarks/bag_metrics_reference.py [--data ../shared/data] [--plot pr.png]``
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from hiere.data.bags import read_bags, read_long_tail, read_relation_map
from hiere.metrics.bag import plot_pr_curves, pr_curve, score_bags


def opennre_reference(bags, records, relation_ids):
    """OpenNRE ``eval`` transcribed (plus macro-F1 at the max-micro-F1 threshold over gold relations)."""
    import sklearn.metrics

    facts = {(b.head_id, b.tail_id, r) for b in bags for r in b.relations if r != "NA"}
    ordered = sorted(records, key=lambda x: x["score"], reverse=True)
    precision, recall, correct = [], [], 0
    for rank, item in enumerate(ordered):
        correct += (item["h"], item["t"], item["relation"]) in facts
        precision.append(correct / (rank + 1))
        recall.append(correct / len(facts))
    p, r = np.array(precision), np.array(recall)
    f1 = 2 * p * r / (p + r + 1e-20)
    threshold = ordered[int(f1.argmax())]["score"]
    pairs = {pair: i for i, pair in enumerate(dict.fromkeys(b.pair for b in bags))}
    labels = np.zeros((len(pairs), len(relation_ids)), dtype=int)
    predicted = np.zeros_like(labels)
    for h, t, relation in facts:
        labels[pairs[(h, t)], relation_ids[relation]] = 1
    for item in records:
        if item["score"] >= threshold:
            predicted[pairs[(item["h"], item["t"])], relation_ids[item["relation"]]] = 1
    gold_columns = [c for c in range(1, len(relation_ids)) if labels[:, c].any()]
    return {
        "pr_auc": sklearn.metrics.auc(x=recall, y=precision),
        "p@100": p[99],
        "p@200": p[199],
        "p@300": p[299],
        "micro_f1": f1.max(),
        "macro_f1": sklearn.metrics.f1_score(
            labels, predicted, labels=gold_columns, average="macro", zero_division=0
        ),
    }


def hnre_reference(bags, scores, relations, long_tail):
    """HNRE ``hit_k`` mode transcribed: first gold relation by id, rank = count of strictly higher scores."""
    tail, total, hits, per_relation = set(long_tail), 0, Counter(), {}
    for row, bag in enumerate(bags):
        gold = [relations[r] - 1 for r in bag.relations if r != "NA"]
        if not gold:
            continue
        first = min(gold)
        if relations.relations[first + 1] not in tail:
            continue
        total += 1
        higher = int((scores[row, 1:] > scores[row, first + 1]).sum())
        counts = per_relation.setdefault(first, Counter())
        counts["n"] += 1
        for k in (10, 15, 20):
            hits[k] += higher < k
            counts[k] += higher < k
    result = {}
    for k in (10, 15, 20):
        result[f"hits@{k}_micro"] = hits[k] / total
        result[f"hits@{k}_macro"] = float(np.mean([c[k] / c["n"] for c in per_relation.values()]))
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    data = Path(args.data)
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print("machine:", platform.platform(), platform.processor() or platform.machine())

    start = time.perf_counter()
    test = read_bags(data / "nyt10" / "nyt10sub_test.txt", require_labels=True)
    seconds = time.perf_counter() - start
    facts = sum(len(b.relations) for b in test if not b.is_na)
    sentences = sum(b.size for b in test)
    print(
        f"read nyt10sub_test.txt: {len(test)} bags, {facts} facts, {sentences} sentences in {seconds:.2f} s"
    )

    relations = read_relation_map(data / "nyt10" / "nyt10_rel2id.json")
    long_tail = read_long_tail(data / "hnre" / "rel200.txt")
    rng = np.random.default_rng(0)
    scores = rng.random((len(test), len(relations)))
    for row, bag in enumerate(test):  # make the ranking informative, with many tied scores
        for relation in bag.relations:
            if relation != "NA" and rng.random() < 0.6:
                scores[row, relations[relation]] += 0.25
    scores = np.round(scores, 3)
    records = [
        {"h": b.head_id, "t": b.tail_id, "relation": r, "score": float(scores[i, relations[r]])}
        for i, b in enumerate(test)
        for r in relations.relations[1:]
    ]
    ours = score_bags(test, records, long_tail, relations.relations)
    reference = {
        **opennre_reference(test, records, relations.index),
        **hnre_reference(test, scores, relations, long_tail),
    }
    difference = max(abs(ours[key] - value) for key, value in reference.items())
    print(
        f"random scores ({len(records)} records, 3-decimal ties): max |hiere - reference| = {difference:.2e}"
    )
    for key, value in reference.items():
        print(f"  {key:14s} hiere {ours[key]:.6f}  reference {value:.6f}")

    train = read_bags(data / "nyt10" / "nyt10sub_train90.txt")
    prior = Counter(r for bag in train for r in bag.relations)
    total = sum(prior.values())
    floors = {
        "prior": lambda bag, r: prior[r] / total,
        "prior_x_size": lambda bag, r: prior[r] / total * (1 - 1 / (1 + bag.size)),
    }
    curves = {}
    for name, score in floors.items():
        floor_records = [
            {"h": b.head_id, "t": b.tail_id, "relation": r, "score": score(b, r)}
            for b in test
            for r in relations.relations[1:]
        ]
        result = score_bags(test, floor_records, long_tail, relations.relations)
        curves[name] = pr_curve(test, floor_records)
        shown = (
            "pr_auc",
            "p@100",
            "p@200",
            "p@300",
            "p@m",
            "micro_f1",
            "macro_f1",
            "hits@10_micro",
            "hits@20_micro",
        )
        print(f"floor {name}: " + ", ".join(f"{key} {result[key]:.4f}" for key in shown))
    if args.plot:
        plot_pr_curves(curves, args.plot)
        print("plot:", args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
