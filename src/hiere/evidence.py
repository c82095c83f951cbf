"""Evidence sentences for predicted facts: per-sentence scores -> ``evidence`` lists, and two baselines.

Every document model gives each explained row a ``sentence_scores`` list (one score per sentence of
the document, higher = more likely evidence):

* HIN: its document-level sentence attention a_j (eq. 13);
* ATLOP: the localized-context attention a(s,o) (eqs. 6-7) summed over each sentence's tokens
  (the reading DREEAM uses for evidence);
* KMGRE: per sentence, the strongest key mention pair (p_ω, or p_θ without the key-instance
  classifier) that has its head or tail mention in that sentence; sentences of no key pair score 0;
* BiLSTM-RE has no attention: the documented rule :func:`closest_mention_sentences`, score 1.

:class:`EvidenceRule` turns scores into ``evidence``: the sentences with a positive score and score >=
``min_score`` (when set), best first, at most ``top_k`` (when set), returned in document order; a score of
0 means "not evidence" (KMGRE's sentences of no key pair, BiLSTM-RE's other sentences). The cut-off is chosen on
dev data (``benchmarks/evidence_table.py``), never on test data.

Baselines (no model): ``mentions`` — every sentence that mentions the head or the tail;
``closest`` — the sentence pair of the closest head and tail mentions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hiere.data.docred import Document
from hiere.errors import HiereConfigError
from hiere.rows import LazyRows


@dataclass(frozen=True)
class EvidenceRule:
    """Which sentences become a fact's ``evidence``: at most ``top_k``, each with score >= ``min_score``."""

    top_k: int | None = 3
    min_score: float | None = None

    def __post_init__(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            raise HiereConfigError(f"evidence top_k must be >= 1 or None, got {self.top_k}")

    def select(self, sentence_scores: Sequence[float]) -> list[int]:
        ranked = sorted((sent_id for sent_id, score in enumerate(sentence_scores) if score > 0),
                        key=lambda sent_id: (-sentence_scores[sent_id], sent_id))
        if self.min_score is not None:
            ranked = [sent_id for sent_id in ranked if sentence_scores[sent_id] >= self.min_score]
        if self.top_k is not None:
            ranked = ranked[: self.top_k]
        return sorted(ranked)


DEFAULT_RULE = EvidenceRule()


def model_rule(model_config: Any, top_k: int | None = None, min_score: float | None = None) -> EvidenceRule:
    """A document model's rule: its ``evidence_top_k`` / ``evidence_min_score``, overridden by the arguments
    (``top_k=0``: no limit)."""
    config_top_k = getattr(model_config, "evidence_top_k", 3)
    config_min = getattr(model_config, "evidence_min_score", None)
    chosen_top_k = config_top_k if top_k is None else (top_k or None)
    return EvidenceRule(chosen_top_k, config_min if min_score is None else min_score)


def mention_sentences(doc: Document, h: int, t: int) -> list[int]:
    """Baseline: every sentence with a mention of the head or the tail entity."""
    return sorted({m.sent_id for m in doc.entities[h]} | {m.sent_id for m in doc.entities[t]})


def closest_mention_sentences(doc: Document, h: int, t: int) -> list[int]:
    """Baseline: the sentences of the closest (head mention, tail mention) pair.

    Closest = fewest sentences apart, then fewest tokens apart (start to start in the flattened
    document), then the first such pair in mention order. One id when both lie in one sentence.
    """
    def located(entity: int) -> list[tuple[int, int]]:
        return [(m.sent_id, doc.mention_span(m)[0]) for m in doc.entities[entity]]

    return closest_pair_sentences(located(h), located(t))


def closest_pair_sentences(head: Sequence[tuple[int, int]], tail: Sequence[tuple[int, int]]) -> list[int]:
    """``head``/``tail``: (sentence id, document token start) of each mention -> the closest pair's sentences."""
    _, _, (head_sent, _), (tail_sent, _) = min(
        (abs(a[0] - b[0]), abs(a[1] - b[1]), a, b) for a in head for b in tail
    )
    return sorted({head_sent, tail_sent})


BASELINES = {"mentions": mention_sentences, "closest": closest_mention_sentences}


def attach_baseline_evidence(
    records: Iterable[Mapping[str, Any]], documents: Iterable[Document], baseline: str
) -> list[dict[str, Any]]:
    """Copies of ``records`` whose ``evidence`` is the ``baseline``'s (``mentions`` | ``closest``)."""
    if baseline not in BASELINES:
        raise HiereConfigError(f"unknown evidence baseline {baseline!r}; available: {sorted(BASELINES)}")
    rule = BASELINES[baseline]
    by_title = {doc.title: doc for doc in documents}
    out = []
    for record in records:
        copy = {key: value for key, value in record.items() if key != "sentence_scores"}
        doc = by_title.get(record["title"])
        if doc is not None:
            copy["evidence"] = rule(doc, int(record["h_idx"]), int(record["t_idx"]))
        out.append(copy)
    return out


def closest_rule_scores(
    n_sents: int, head: Sequence[tuple[int, int]], tail: Sequence[tuple[int, int]]
) -> list[float]:
    """``sentence_scores`` of the closest-mention rule (BiLSTM-RE's evidence): 1 on the sentences of
    :func:`closest_pair_sentences`, 0 elsewhere."""
    scores = [0.0] * n_sents
    for sent_id in closest_pair_sentences(head, tail):
        scores[sent_id] = 1.0
    return scores


def token_sentences(
    word_spans: Sequence[tuple[int, int]],
    sent_lengths: Sequence[int],
    marked_word_starts: set[int],
    marker_length: int,
    seq_len: int,
) -> list[int]:
    """Sentence id of every subword position (``-1`` for ``[CLS]``/``[SEP]``).

    A sentence runs from its first word (or the start marker before it) to the next sentence's
    first word (or its start marker), so end markers stay with the mention they close.
    """
    sentence_of = [-1] * seq_len
    first_word = 0
    begins = []
    for length in sent_lengths:
        if length:
            begin = word_spans[first_word][0] - (marker_length if first_word in marked_word_starts else 0)
            begins.append(begin)
        else:
            begins.append(None)
        first_word += length
    content_end = seq_len - 1  # [SEP]
    for sent_id, begin in enumerate(begins):
        if begin is None:
            continue
        end = next((b for b in begins[sent_id + 1 :] if b is not None), content_end)
        for position in range(begin, end):
            sentence_of[position] = sent_id
    return sentence_of


def sentence_one_hot(token_sents: list[list[int]], seq_len: int) -> torch.Tensor:
    """Per document, positions -> sentences as a (batch, seq, max_sents) 0/1 matrix."""
    n_sents = max((max(ids, default=-1) + 1 for ids in token_sents), default=1)
    one_hot = torch.zeros(len(token_sents), seq_len, max(n_sents, 1))
    for doc, ids in enumerate(token_sents):
        for position, sent_id in enumerate(ids):
            if sent_id >= 0:
                one_hot[doc, position, sent_id] = 1.0
    return one_hot


class SentenceScoreRows(LazyRows):
    """Per-sentence scores of many rows, ``{"sentence_scores": [...]}`` made only for the rows looked at.

    A document of 2,000 tokens has 35,000 entity pairs, and a dict of rounded Python floats for each of them
    would cost more memory and time than the model's own pass; decoding reads the few predicted rows only.
    """

    def __init__(self, sentence_mass: torch.Tensor, n_sents: Sequence[int]):
        self.mass = sentence_mass.detach().float().cpu()  # (n_rows, max_sents)
        self.n_sents = list(n_sents)
        if len(self.n_sents) != len(self.mass):
            raise ValueError(f"{len(self.mass)} rows of scores but {len(self.n_sents)} sentence counts")

    def __len__(self) -> int:
        return len(self.n_sents)

    def row(self, row: int) -> dict[str, Any]:
        return {"sentence_scores": [round(value, 6) for value in self.mass[row, : self.n_sents[row]].tolist()]}


def rows_of_scores(sentence_mass: torch.Tensor, n_sents: Sequence[int]) -> SentenceScoreRows:
    """(n_rows, max_sents) per-sentence scores -> one ``{"sentence_scores": [...]}`` per row (own length), each
    made when it is read (:class:`SentenceScoreRows`)."""
    return SentenceScoreRows(sentence_mass, n_sents)


def apply_rule(record: dict[str, Any], rule: EvidenceRule | None) -> dict[str, Any]:
    """Replace a record's ``sentence_scores`` by ``evidence`` (``rule`` None: keep the scores as they are)."""
    if rule is None or "sentence_scores" not in record:
        return record
    scores = record.pop("sentence_scores")
    record["evidence"] = rule.select(scores)
    return record


def main(argv: list[str] | None = None) -> int:
    """``python -m hiere.evidence DOCS PRED --baseline mentions|closest -o OUT``: a baseline's evidence on
    the facts of a predictions file (or, with ``--gold-facts``, on the gold facts of DOCS)."""
    import argparse
    import sys

    from hiere.data.docred import load_json, read_docred
    from hiere.data.pubtator import is_pubtator, read_pubtator
    from hiere.errors import HiereInputError
    from hiere.io import write_json_atomic

    parser = argparse.ArgumentParser(prog="python -m hiere.evidence", description=main.__doc__)
    parser.add_argument("documents", help="DocRED JSON or PubTator file the predictions are about")
    parser.add_argument("pred", nargs="?", help="predictions JSON (DocRED submission records)")
    parser.add_argument("--baseline", choices=sorted(BASELINES), required=True)
    parser.add_argument("--gold-facts", action="store_true", help="use the documents' gold facts, not PRED")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    try:
        reader = read_pubtator if is_pubtator(args.documents) else read_docred
        documents = reader(args.documents)
        if args.gold_facts:
            records = [{"title": d.title, "h_idx": f.h, "t_idx": f.t, "r": f.r} for d in documents for f in d.facts]
        elif args.pred:
            records = load_json(args.pred)
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise HiereInputError(args.pred, None, None, "a predictions file must be a JSON list of records")
        else:
            raise HiereConfigError("give a predictions file or --gold-facts")
        write_json_atomic(args.output, attach_baseline_evidence(records, documents, args.baseline))
    except (HiereInputError, HiereConfigError, KeyError) as error:
        print(f"hiere.evidence: error: {error}", file=sys.stderr)
        return 2
    print(f"{len(records)} records with {args.baseline} evidence -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
