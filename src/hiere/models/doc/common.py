"""Shared featurization for GloVe-based document models (BiLSTM-RE, HIN).

Per document: word ids, entity-type ids and coreference ids per token (DocRED baseline inputs), an
entity-to-token averaging map (mean over each mention's tokens, then over mentions), the ordered
candidate pairs ``(h, t)``, the bucketed relative distance of their first mentions, and multi-hot
labels with column 0 = NA.
"""

from __future__ import annotations

from typing import Any

import torch

from hiere.data.docred import Document
from hiere.data.padding import pad_sequences
from hiere.data.relations import RelationMap
from hiere.data.vocab import Vocab

DISTANCE_BUCKETS = 10  # |distance| buckets 0, 1, 2-3, 4-7, ..., >=256; signed -> 2 * 10 ids


def distance_bucket(distance: int) -> int:
    """DocRED baseline ``dis2idx``: signed log2 bucket of a token distance, shifted to be >= 0."""
    magnitude = abs(distance)
    bucket = 0 if magnitude == 0 else min(magnitude.bit_length(), DISTANCE_BUCKETS - 1)
    return DISTANCE_BUCKETS + (bucket if distance >= 0 else -bucket)


def build_type_vocab(documents: list[Document]) -> Vocab:
    return Vocab(sorted({m.type for doc in documents for entity in doc.entities for m in entity}), lowercase=False)


def featurize_document(doc: Document, words: Vocab, types: Vocab, relations: RelationMap) -> dict[str, Any]:
    tokens = doc.tokens
    type_ids = [0] * len(tokens)
    coref_ids = [0] * len(tokens)
    mention_spans: list[list[tuple[int, int]]] = []
    for entity_index, entity in enumerate(doc.entities):
        spans = [doc.mention_span(m) for m in entity]
        mention_spans.append(spans)
        type_id = types[entity[0].type]
        for start, end in spans:
            for position in range(start, end):
                type_ids[position] = type_id
                coref_ids[position] = entity_index + 1
    first_start = [min(spans)[0] for spans in mention_spans]
    pairs = doc.candidate_pairs()
    labels = torch.zeros(len(pairs), len(relations))
    pair_row = {pair: row for row, pair in enumerate(pairs)}
    for fact in doc.facts:
        if fact.r in relations and (fact.h, fact.t) in pair_row:
            labels[pair_row[(fact.h, fact.t)], relations[fact.r]] = 1.0
    labels[:, 0] = (labels[:, 1:].sum(dim=1) == 0).float()
    return {
        "word_ids": words.encode(tokens),
        "type_ids": type_ids,
        "coref_ids": coref_ids,
        "mention_spans": mention_spans,
        "sent_spans": [(o, o + len(s)) for o, s in zip(doc.sent_offsets, doc.sents, strict=True)],
        "pairs": pairs,
        "distance_ht": [distance_bucket(first_start[t] - first_start[h]) for h, t in pairs],
        "distance_th": [distance_bucket(first_start[h] - first_start[t]) for h, t in pairs],
        "labels": labels,
    }


def collate_documents(features: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad a list of document features into one batch.

    ``entity_map``: (batch, max_entities, max_tokens), each row averages an entity's mention tokens
    (mean over a mention's tokens, then over mentions). ``pair_doc``/``pair_h``/``pair_t``: (n_pairs,)
    flat candidate pairs of the whole batch.
    """
    batch_size = len(features)
    max_tokens = max(len(f["word_ids"]) for f in features)
    max_entities = max(len(f["mention_spans"]) for f in features)
    entity_map = torch.zeros(batch_size, max(max_entities, 1), max_tokens)
    for b, feature in enumerate(features):
        for e, spans in enumerate(feature["mention_spans"]):
            for start, end in spans:
                entity_map[b, e, start:end] += 1.0 / (len(spans) * (end - start))
    pairs = [(b, h, t) for b, feature in enumerate(features) for h, t in feature["pairs"]]
    return {
        "word_ids": pad_sequences([f["word_ids"] for f in features]),
        "type_ids": pad_sequences([f["type_ids"] for f in features]),
        "coref_ids": pad_sequences([f["coref_ids"] for f in features]),
        "lengths": torch.tensor([len(f["word_ids"]) for f in features]),
        "entity_map": entity_map,
        "pair_doc": torch.tensor([p[0] for p in pairs], dtype=torch.long),
        "pair_h": torch.tensor([p[1] for p in pairs], dtype=torch.long),
        "pair_t": torch.tensor([p[2] for p in pairs], dtype=torch.long),
        "distance_ht": torch.tensor([d for f in features for d in f["distance_ht"]], dtype=torch.long),
        "distance_th": torch.tensor([d for f in features for d in f["distance_th"]], dtype=torch.long),
        "labels": torch.cat([f["labels"] for f in features]) if features[0]["labels"] is not None else None,
        "pairs": pairs,
        "sent_spans": [f["sent_spans"] for f in features],
        "mention_spans": [f["mention_spans"] for f in features],
    }
