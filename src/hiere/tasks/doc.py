"""Document-level task: DocRED files in, DocRED submission records out, DocRED metrics."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from hiere.data.docred import Document, read_docred
from hiere.data.pubtator import is_pubtator, read_pubtator
from hiere.data.relations import RelationMap
from hiere.evidence import DEFAULT_RULE, EvidenceRule, apply_rule
from hiere.metrics.doc import best_threshold, score_documents


class DocTask:
    name = "doc"
    primary_metric = "f1"
    unit = "documents"

    def read(
        self, path: str | Path, relations: Iterable[str] | None = None, require_labels: bool = False, **slicing: Any
    ) -> list[Document]:
        """A DocRED JSON file, or a PubTator file (BC5CDR) by its extension: ``*.PubTator.txt``, ``*.pubtator``."""
        if is_pubtator(path):
            return read_pubtator(path, relations, require_labels=require_labels, **slicing)
        return read_docred(path, relations, require_labels=require_labels, **slicing)

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


TASK = DocTask()
