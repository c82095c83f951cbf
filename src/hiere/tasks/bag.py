"""Bag-level task: OpenNRE jsonl in, ranked ``{"h", "t", "relation", "score"}`` records out.

Bag models are judged by ranking (PR curve), so ``decode`` writes a record for every bag and every
non-NA relation whatever the threshold; ``tune_threshold`` still reports the dev score at max
micro-F1, which a user may apply to keep only confident facts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from hiere.data.bags import Bag, iter_json_records, read_bags, read_long_tail
from hiere.data.relations import NA, RelationMap
from hiere.errors import HiereConfigError, HiereInputError
from hiere.metrics.bag import plot_pr_curves, pr_curve, score_bag_matrix, score_bags

LOGGER = logging.getLogger(__name__)


class BagTask:
    name = "bag"
    primary_metric = "pr_auc"
    unit = "bags"
    evidence = False  # bags explain with sentence attention, not evidence ids
    ranked = True  # every pair x every non-NA relation: the PR curve's ranking
    level = "bag-level"
    request_field = "sentences"  # a bag is the sentences of one entity pair
    records_are_examples = False

    def read(
        self,
        path: str | Path,
        relations: Iterable[str] | RelationMap | None = None,
        require_labels: bool = False,
        mode: str = "pair",
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Bag]:
        """Bags of an OpenNRE jsonl file; ``mode="pair_relation"`` gives OpenNRE's training bags."""
        return read_bags(
            path, relations, mode=mode, require_labels=require_labels, limit=limit, offset=offset
        )

    def parse(self, records: Iterable[Any], relations: Iterable[str] | None = None, source: str = "<input>"
              ) -> list[Bag]:
        from hiere.data.bags import parse_bags

        return parse_bags(records, source=source, relations=relations)

    def relation_ids(self, examples: list[Bag]) -> set[str]:
        return {r for bag in examples for r in bag.relations if r != NA}

    def decode(
        self,
        examples: list[Bag],
        rows: list[tuple[int, Any]],
        scores: torch.Tensor,
        relations: RelationMap,
        threshold: float = 0.0,
        explanations: list[dict] | None = None,
        evidence_rule: None = None,
    ) -> list[dict[str, Any]]:
        """One record per bag and non-NA relation, in row then relation-map order (``threshold`` and
        ``evidence_rule`` unused: bag records are a ranking, and carry attention instead of evidence).

        An explanation dict of a row is added to each record of its bag; its optional
        ``"by_relation": {relation: {...}}`` entry goes only to that relation's record.
        """
        values = scores[:, 1:].detach().float().cpu().tolist()
        names = relations.relations[1:]
        records = []
        for row, (example_index, _) in enumerate(rows):
            bag = examples[example_index]
            shared, by_relation = {}, {}
            explanation = explanations[row] if explanations is not None else None  # built when read: read once
            if explanation:
                shared = {k: v for k, v in explanation.items() if k != "by_relation"}
                by_relation = explanation.get("by_relation") or {}
            for relation, score in zip(names, values[row], strict=True):
                record = {"h": bag.head_id, "t": bag.tail_id, "relation": relation, "score": score}
                record.update(shared)
                record.update(by_relation.get(relation, {}))
                records.append(record)
        return records

    def tune_threshold(
        self, examples: list[Bag], rows: list[tuple[int, Any]], scores: torch.Tensor, relations: RelationMap
    ) -> tuple[float, float]:
        """``(score at max micro-F1, max micro-F1)`` on dev bags."""
        result = score_bag_matrix(examples, scores, relations.relations, row_bags=[index for index, _ in rows])
        return float(result["micro_f1_threshold"]), float(result["micro_f1"])

    def metrics(
        self,
        examples: list[Bag],
        records: list[dict[str, Any]],
        train: list[Bag] | None = None,
        long_tail: str | Path | Iterable[str] | None = None,
        relations: RelationMap | None = None,
        plot: str | Path | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        """PR-AUC, P@N, P@M, micro/macro-F1 and, with a long-tail list (file or names), Hits@10/15/20.

        ``relations``: the model's map, whose order picks a bag's first gold relation for Hits@K
        (default: the order of the records). ``plot``: also draw the PR curve to this PNG.
        """
        tail = read_long_tail(long_tail) if isinstance(long_tail, str | Path) else long_tail
        order = relations.relations if relations is not None else None
        if plot is not None:
            self.plot(examples, {Path(plot).stem: records}, plot)
        return score_bags(examples, records, tail, order)

    def metrics_from_scores(self, examples: list[Bag], rows: list[tuple[int, Any]], scores: torch.Tensor,
                            relations: RelationMap, threshold: float = 0.0, explanations: list[dict] | None = None,
                            evidence_rule: None = None, train: list[Bag] | None = None,
                            long_tail: str | Path | Iterable[str] | None = None, plot: str | Path | None = None,
                            **_: Any) -> dict[str, Any]:
        """:meth:`metrics` of the records :meth:`decode` would make, computed from the score matrix instead
        (the same dict; no record per bag and relation: NYT10's test set would make 298k).
        ``threshold``, ``explanations``, ``evidence_rule`` and ``train`` do not change bag metrics."""
        if plot is not None:  # the PR curve is drawn from records
            return self.metrics(examples, self.decode(examples, rows, scores, relations), long_tail=long_tail,
                                plot=plot)
        tail = read_long_tail(long_tail) if isinstance(long_tail, str | Path) else long_tail
        return score_bag_matrix(examples, scores, relations.relations, tail, row_bags=[index for index, _ in rows])

    def metric_options(self, long_tail: str | Path | None = None, plot: str | Path | None = None) -> dict[str, Any]:
        options: dict[str, Any] = {"long_tail": read_long_tail(long_tail) if long_tail else None}
        if plot:
            options["plot"] = plot
        return options

    def metrics_train(self, train_examples: list[Bag]) -> None:
        return None

    def score_files(self, gold: str | Path, predictions: Sequence[str | Path], train: str | Path | None = None,
                    relations: str | Path | None = None, long_tail: str | Path | None = None,
                    plot: str | Path | None = None) -> dict[str, Any]:
        if train or relations:
            raise HiereConfigError("--train and --relations are for document-level scoring (--task doc)")
        return score_files(gold, predictions, long_tail=long_tail, plot=plot)

    def plot(self, examples: list[Bag], runs: Mapping[str, list[dict[str, Any]]], path: str | Path) -> None:
        """PR curves of several prediction lists ``{label: records}`` on one PNG."""
        plot_pr_curves({label: pr_curve(examples, records) for label, records in runs.items()}, path)


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """A bag prediction file (JSON list or jsonl of ``{"h", "t", "relation", "score"}``), validated."""
    records, seen = [], set()
    for where, record in iter_json_records(path):
        if not isinstance(record, dict):
            raise HiereInputError(
                str(path), where, None, 'a prediction must be an object {"h", "t", "relation", "score"}'
            )
        for key in ("h", "t"):
            if not isinstance(record.get(key), str | int) or isinstance(record.get(key), bool):
                raise HiereInputError(str(path), where, key, "missing or not an entity id")
        if not isinstance(record.get("relation"), str):
            raise HiereInputError(str(path), where, "relation", "missing or not a string")
        score = record.get("score")
        if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
            raise HiereInputError(str(path), where, "score", f"must be a finite number, got {score!r}")
        key = (str(record["h"]), str(record["t"]), record["relation"])
        if key in seen and key[2] != NA:
            raise HiereInputError(str(path), where, None, f"(h, t, relation) {key} is scored twice")
        seen.add(key)
        records.append(record)
    return records


def score_files(
    gold_path: str | Path,
    pred_paths: str | Path | Sequence[str | Path],
    long_tail: str | Path | Iterable[str] | None = None,
    plot: str | Path | None = None,
) -> dict[str, Any]:
    """``hiere score --task bag GOLD PRED...``: one file's metrics, or ``{file: metrics}`` for several.

    ``long_tail``: HNRE's list for Hits@K, a file or the relation names. ``plot``: a PNG with the PR
    curve of every prediction file (labelled by file name).
    """
    paths = [pred_paths] if isinstance(pred_paths, str | Path) else list(pred_paths)
    gold = read_bags(gold_path, require_labels=True)
    if not gold:
        raise HiereInputError(str(gold_path), None, None, "the gold file holds no bags")
    if not any(relation != NA for bag in gold for relation in bag.relations):
        LOGGER.warning("%s: no gold bag has a relation other than NA: recall and PR-AUC are 0", gold_path)
    tail = read_long_tail(long_tail) if isinstance(long_tail, str | Path) else long_tail
    runs = {str(path): read_predictions(path) for path in paths}
    results = {label: score_bags(gold, records, tail) for label, records in runs.items()}
    if plot is not None:
        stems = [Path(label).stem for label in runs]
        labels = stems if len(set(stems)) == len(stems) else list(runs)
        TASK.plot(gold, dict(zip(labels, runs.values(), strict=True)), plot)
    return results[str(paths[0])] if len(paths) == 1 else results


TASK = BagTask()
