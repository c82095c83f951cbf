"""Mention encoders of the document models that read a document through its marked mentions (ATLOP, KMGRE).

A document head of this kind reads, per batch, the encoder's token states, one state per mention and each
mention's attention over the document, and never looks inside the encoder (``model.encoder`` names the
pretrained weights):

* :class:`MarkedMentions`: a Hugging Face encoder over the whole document with the entity marker (``*``)
  around every mention (Zhou et al. 2021, ATLOP §2.1); documents longer than ``max_length`` subwords are read
  in overlapping windows (:class:`~hiere.encoders.transformer.TransformerEncoder`); a mention is the state of
  its start marker, its attention that marker's last-layer attention (ATLOP eq. 6's ``A``).

The interface (:class:`MentionEncoder`) mirrors the word encoders' (:mod:`hiere.encoders.words`) and the
sentence encoders' (:mod:`hiere.encoders.sentence`): featurize once per example, collate a batch, encode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from hiere.data.docred import Document
from hiere.encoders.transformer import DEFAULT as TRANSFORMER_DEFAULT
from hiere.encoders.transformer import TransformerEncoder
from hiere.evidence import sentence_one_hot, token_sentences


@runtime_checkable
class MentionEncoder(Protocol):
    """What a mention-level document head needs of its encoder."""

    hidden_size: int  # size of each token and mention state

    def featurize_mentions(self, document: Document) -> dict[str, Any]:
        """Encoder input of one document and where its mentions and sentences are in it."""

    def collate_mentions(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """A batch of those features: encoder input, mention rows, entity -> mention table, token sentences."""

    def encode_mentions(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One pass -> hidden (batch, seq, H), mention states (n_mentions, H), mention attention
        (n_mentions, heads, seq)."""

    def init_pretrained(self) -> None:
        """A new run only: copy pretrained weights in."""

    def save_assets(self, model_dir: Path) -> None:
        """Files besides the weights that loading needs (the tokenizer)."""


class MarkedMentions(TransformerEncoder):
    """A transformer over the whole document, ``*`` around every mention, mentions read at their start marker."""

    def __init__(self, source: str | Path = TRANSFORMER_DEFAULT, model_dir: str | Path | None = None,
                 max_length: int = 512, window_overlap: int = 128):
        super().__init__(source, model_dir, max_length, window_overlap, pretrained=False)

    def init_pretrained(self) -> None:
        self.load_pretrained()

    def featurize_mentions(self, document: Document) -> dict[str, Any]:
        """Token ids with markers; per entity its mentions' start-marker positions and sentence ids; the
        sentence of every token (DREEAM's evidence targets and the explanations are per sentence)."""
        spans = [document.mention_span(m) for entity in document.entities for m in entity]
        tokenized = self.tokenize(document.tokens, spans)
        mention_positions: list[list[int]] = []
        mention_sents: list[list[int]] = []
        cursor = 0
        for entity in document.entities:
            mention_positions.append(tokenized.marker_positions[cursor : cursor + len(entity)])
            mention_sents.append([m.sent_id for m in entity])
            cursor += len(entity)
        token_sents = token_sentences(
            tokenized.word_spans, [len(sent) for sent in document.sents], {start for start, _ in spans},
            len(self.marker_ids), len(tokenized.input_ids),
        )
        return {
            "input_ids": tokenized.input_ids,
            "token_sents": token_sents,
            "n_sents": len(document.sents),
            "mention_positions": mention_positions,
            "mention_sents": mention_sents,
        }

    def collate_mentions(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """``input_ids``/``attention_mask`` (batch, seq); ``mention_doc``/``mention_position`` (n_mentions,)
        flat over the batch; ``entity_mentions`` (n_entities, max_mentions) flat mention ids (-1 = pad);
        ``entity_offsets``: each document's first row in the flat entity list."""
        input_ids, attention_mask = self.collate([f["input_ids"] for f in features])
        mention_doc, mention_position, mention_sent, entity_lists = [], [], [], []
        entity_offset, entity_offsets = 0, []
        for b, feature in enumerate(features):
            entity_offsets.append(entity_offset)
            for positions, sents in zip(feature["mention_positions"], feature["mention_sents"], strict=True):
                entity_lists.append(list(range(len(mention_doc), len(mention_doc) + len(positions))))
                mention_doc.extend([b] * len(positions))
                mention_position.extend(positions)
                mention_sent.extend(sents)
            entity_offset += len(feature["mention_positions"])
        width = max((len(m) for m in entity_lists), default=1)
        entity_mentions = torch.full((max(len(entity_lists), 1), width), -1, dtype=torch.long)
        for row, mentions in enumerate(entity_lists):
            entity_mentions[row, : len(mentions)] = torch.as_tensor(mentions)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "mention_doc": torch.tensor(mention_doc, dtype=torch.long),
            "mention_position": torch.tensor(mention_position, dtype=torch.long),
            "mention_sent": mention_sent,
            "entity_mentions": entity_mentions,
            "entity_offsets": entity_offsets,
            "doc_n_sents": [f["n_sents"] for f in features],
            "token_sentence": sentence_one_hot([f["token_sents"] for f in features], input_ids.shape[1]),
        }

    def encode_mentions(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        doc, position = batch["mention_doc"], batch["mention_position"]
        # (B, L, H), (n_mentions, heads, L): only the mentions' rows of the last layer's attention
        hidden, attention = self(batch["input_ids"], batch["attention_mask"], attention_rows=(doc, position))
        return hidden, hidden[doc, position], attention
