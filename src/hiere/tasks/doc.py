"""Document-level task: DocRED files in, DocRED submission records out, DocRED metrics."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from hiere.data.docred import Document, load_json, read_docred
from hiere.data.pubtator import is_pubtator, read_pubtator
from hiere.data.relations import RelationMap
from hiere.errors import HiereConfigError, HiereInputError
from hiere.evidence import DEFAULT_RULE, EvidenceRule, apply_rule
from hiere.metrics.doc import best_threshold, score_documents

LOGGER = logging.getLogger(__name__)
PREDICTION_FORM = 'a prediction must be an object {"title", "h_idx", "t_idx", "r", "score"?}'


class DocTask:
    name = "doc"
    primary_metric = "f1"
    unit = "documents"
    evidence = True  # records carry evidence sentence ids; Evi P / R / F1 score them
    ranked = False  # decode keeps the facts at or above the threshold
    level = "document-level"
    request_field = "documents"
    records_are_examples = True

    def read(
        self, path: str | Path, relations: Iterable[str] | None = None, require_labels: bool = False, **slicing: Any
    ) -> list[Document]:
        """A DocRED JSON file, or a PubTator file (BC5CDR) by its extension: ``*.PubTator.txt``, ``*.pubtator``."""
        if is_pubtator(path):
            return read_pubtator(path, relations, require_labels=require_labels, **slicing)
        return read_docred(path, relations, require_labels=require_labels, **slicing)

    def parse(self, records: Iterable[Any], relations: Iterable[str] | None = None, source: str = "<input>"
              ) -> list[Document]:
        from hiere.data.docred import parse_documents

        return parse_documents(records, source=source, relations=relations)

    def relation_ids(self, examples: list[Document]) -> set[str]:
        return {fact.r for doc in examples for fact in doc.facts}

    def decode(
        self,
        examples: list[Document],
        rows: list[tuple[int, Any]],
        scores: torch.Tensor,
        relations: RelationMap,
        threshold: float,
        explanations: list[dict] | None = None,
        evidence_rule: EvidenceRule | None = DEFAULT_RULE,
    ) -> list[dict[str, Any]]:
        """Every (pair, relation != NA) with ``score >= threshold``, as DocRED submission records.

        An explanation's ``sentence_scores`` become the record's ``evidence`` by ``evidence_rule``
        (:mod:`hiere.evidence`); ``evidence_rule=None`` keeps the raw ``sentence_scores`` instead.
        """
        records = []
        hits = (scores[:, 1:] >= threshold).nonzero().tolist()
        for row, column in hits:
            example_index, (h, t) = rows[row]
            record = {
                "title": examples[example_index].title,
                "h_idx": int(h),
                "t_idx": int(t),
                "r": relations.relations[column + 1],
                "score": float(scores[row, column + 1]),
            }
            if explanations is not None and explanations[row]:
                record.update(explanations[row])
                apply_rule(record, evidence_rule)
            records.append(record)
        return records

    def tune_threshold(
        self, examples: list[Document], rows: list[tuple[int, Any]], scores: torch.Tensor, relations: RelationMap
    ) -> tuple[float, float]:
        """The global threshold with the best dev F1 -> ``(threshold, f1)``."""
        gold = {(i, f.h, f.t, relations[f.r]) for i, doc in enumerate(examples) for f in doc.facts if f.r in relations}
        n_gold = sum(len(doc.facts) for doc in examples)
        flat = scores[:, 1:]
        # only candidates that could matter: keep the top scores (recall cannot exceed what they hold)
        keep = min(flat.numel(), max(50 * n_gold, 10000))
        values, positions = flat.flatten().topk(keep)
        n_columns = flat.shape[1]
        candidates = []
        for value, position in zip(values.tolist(), positions.tolist(), strict=True):
            row, column = divmod(position, n_columns)
            example_index, (h, t) = rows[row]
            candidates.append((value, (example_index, h, t, column + 1) in gold))
        return best_threshold(candidates, n_gold)

    def metrics(
        self, examples: list[Document], records: list[dict[str, Any]], train: list[Document] | None = None, **_: Any
    ) -> dict[str, Any]:
        """DocRED metrics; for PubTator documents (BC5CDR) plain F1 and intra/inter F1 only, as the CDR
        papers report (Ign F1 is DocRED's notion, and BC5CDR has no evidence annotation)."""
        if any(doc.source == "pubtator" for doc in examples):
            train = None
        return score_documents(examples, records, train)

    def metrics_from_scores(self, examples: list[Document], rows: list[tuple[int, Any]], scores: torch.Tensor,
                            relations: RelationMap, threshold: float, explanations: list[dict] | None = None,
                            evidence_rule: EvidenceRule | None = DEFAULT_RULE, train: list[Document] | None = None,
                            **options: Any) -> dict[str, Any]:
        """:meth:`metrics` of the records :meth:`decode` makes (document metrics need the decoded facts)."""
        records = self.decode(examples, rows, scores, relations, threshold, explanations, evidence_rule)
        return self.metrics(examples, records, train=train, **options)

    def metric_options(self, long_tail: str | Path | None = None, plot: str | Path | None = None) -> dict[str, Any]:
        if long_tail or plot:
            raise HiereConfigError("a long-tail list and a PR-curve plot are for bag models (ranking metrics)")
        return {}

    def metrics_train(self, train_examples: list[Document]) -> list[Document]:
        return train_examples

    def score_files(self, gold: str | Path, predictions: Sequence[str | Path], train: str | Path | None = None,
                    relations: str | Path | None = None, long_tail: str | Path | None = None,
                    plot: str | Path | None = None) -> dict[str, Any]:
        if len(predictions) != 1:
            raise HiereConfigError("document-level scoring takes one predictions file")
        self.metric_options(long_tail, plot)
        return score_files(gold, predictions[0], train, relations)


def known_relations(
    gold: Iterable[Document], train: Iterable[Document] | None = None, relations: str | Path | None = None
) -> set[str]:
    """The relations a prediction may name: those of ``relations`` (a rel_info.json or rel2id.json) if
    given; else those of the gold and training facts, plus DocRED's 96 when every gold relation is one
    of DocRED's (a small gold file need not use every relation)."""
    if relations is not None:
        return set(RelationMap.from_rel_info(relations).relations)
    seen = {fact.r for doc in [*gold, *(train or [])] for fact in doc.facts}
    bundled = resources.files("hiere") / "resources" / "rel_info.json"  # DocRED's relation ids and names
    docred = set(RelationMap.from_rel_info(str(bundled)).relations)
    return seen | docred if seen <= docred else seen


def read_predictions(path: str | Path, gold: list[Document], relations: set[str] | None = None) -> list[dict]:
    """A DocRED submission file, validated against the gold documents.

    One :class:`HiereInputError` for a record that is not an object, a missing or mistyped field, an
    unknown relation, or an entity index outside its (gold) document. What the official scorer
    tolerates is kept, with a warning and a count: a prediction whose title is not a gold document
    (it counts as predicted and wrong) and duplicates of ``(title, h_idx, t_idx, r)`` (counted once).
    """
    records = load_json(path)
    if not isinstance(records, list):
        raise HiereInputError(str(path), None, None, "a predictions file must be a JSON list of records")
    by_title = {doc.title: doc for doc in gold}
    seen: set[tuple[str, int, int, str]] = set()
    duplicates = unknown_titles = 0
    for index, record in enumerate(records):
        where = f"prediction {index}"
        if not isinstance(record, dict):
            raise HiereInputError(str(path), where, None, PREDICTION_FORM)
        for key in ("title", "h_idx", "t_idx", "r"):
            if key not in record:
                raise HiereInputError(str(path), where, key, "missing")
        title = record["title"]
        if not isinstance(title, str):
            raise HiereInputError(str(path), where, "title", f"must be a document title (string), got {title!r}")
        where += f" ({title!r})"
        for key in ("h_idx", "t_idx"):
            if not isinstance(record[key], int) or isinstance(record[key], bool):
                raise HiereInputError(str(path), where, key, f"must be an entity index (int), got {record[key]!r}")
        relation = record["r"]
        if not isinstance(relation, str):
            raise HiereInputError(str(path), where, "r", f"must be a relation id (string), got {relation!r}")
        if relations is not None and relation not in relations:
            raise HiereInputError(str(path), where, "r", f"unknown relation {relation!r}")
        score = record.get("score", 0.0)
        if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
            raise HiereInputError(str(path), where, "score", f"must be a finite number, got {score!r}")
        evidence = record.get("evidence", [])
        if not isinstance(evidence, list) or not all(isinstance(e, int) and not isinstance(e, bool) for e in evidence):
            raise HiereInputError(str(path), where, "evidence", f"must be a list of sentence ids, got {evidence!r}")
        document = by_title.get(title)
        if document is None:
            unknown_titles += 1
        else:
            for key in ("h_idx", "t_idx"):
                if not 0 <= record[key] < len(document.entities):
                    raise HiereInputError(
                        str(path), where, key,
                        f"entity index {record[key]} is out of range (the gold document has "
                        f"{len(document.entities)} entities)",
                    )
        key = (title, record["h_idx"], record["t_idx"], relation)
        duplicates += key in seen
        seen.add(key)
    if unknown_titles:
        LOGGER.warning("%s: %d prediction(s) name a title that is not in the gold file; they count as wrong "
                       "predictions, as in the official DocRED scorer", path, unknown_titles)
    if duplicates:
        LOGGER.warning("%s: %d duplicate prediction(s) of the same (title, h_idx, t_idx, r) are counted once, "
                       "as in the official DocRED scorer", path, duplicates)
    return records


def read_gold(path: str | Path) -> list[Document]:
    """Labelled documents for scoring: DocRED JSON, or PubTator (BC5CDR) by its file name."""
    if is_pubtator(path):
        return read_pubtator(path, None, require_labels=True)
    return read_docred(path, require_labels=True)


def score_files(
    gold_path: str | Path,
    pred_path: str | Path,
    train_path: str | Path | None = None,
    relations_path: str | Path | None = None,
) -> dict[str, Any]:
    """``hiere score GOLD PRED``: DocRED metrics of a predictions file (see :func:`read_predictions`)."""
    gold = read_gold(gold_path)
    if not gold:
        raise HiereInputError(str(gold_path), None, None, "the gold file holds no documents")
    if not any(doc.facts for doc in gold):
        LOGGER.warning("%s: no gold document has a relation fact: recall is 0", gold_path)
    train = read_gold(train_path) if train_path else None
    records = read_predictions(pred_path, gold, known_relations(gold, train, relations_path))
    return score_documents(gold, records, train)


TASK = DocTask()
