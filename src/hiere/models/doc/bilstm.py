"""BiLSTM-RE, the DocRED baseline (Yao et al., ACL 2019).

word + entity-type + coreference embeddings -> BiLSTM -> entity = mean over mentions of the mean over
each mention's tokens -> [entity; relative-distance embedding] for head and tail -> bilinear ->
sigmoid over relations (BCE, NA included as column 0); a global threshold is tuned on dev.

The word vectors come from a word encoder (:mod:`hiere.encoders.words`): ``words: glove`` is the baseline
of the paper, ``words: transformer`` reads fixed (or, with ``fine_tune``, trained) transformer features of
each word instead, as HIN's transformer variant does.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from hiere.data.docred import Document
from hiere.data.relations import RelationMap
from hiere.data.vocab import Vocab
from hiere.encoders.glove import DEFAULT, glove_dim
from hiere.encoders.lstm import BiLSTM
from hiere.encoders.transformer import DEFAULT as ENCODER_DEFAULT
from hiere.encoders.words import GloVeWords, TransformerWords
from hiere.errors import HiereConfigError
from hiere.evidence import closest_rule_scores
from hiere.models.base import HiereModel, ModelConfig, Resources
from hiere.models.doc.common import (
    DISTANCE_BUCKETS,
    build_type_vocab,
    collate_documents,
    featurize_document,
)
from hiere.models.layers import EntityPairBilinear


@dataclass
class BiLSTMConfig(ModelConfig):
    zero_allowed: ClassVar[frozenset[str]] = frozenset({"window_overlap"})  # 0 means none / off
    words: str = "glove"  # glove (the DocRED baseline) | transformer (fixed transformer features per word)
    glove: str = DEFAULT  # "default" (GloVe 6B 50d package) or a GloVe text file of any dimension
    freeze_embeddings: bool = True  # the DocRED baseline keeps GloVe fixed
    lowercase: bool = True
    min_count: int = 1
    type_dim: int = 20
    coref_dim: int = 20
    distance_dim: int = 20
    hidden: int = 128
    dropout: float = 0.2  # keep_prob 0.8 in the DocRED code
    max_entities: int = 128  # coreference ids 1..max_entities
    evidence_top_k: int | None = 3  # evidence sentences per fact at most (hiere.evidence.EvidenceRule)
    evidence_min_score: float | None = None
    # words: transformer only
    encoder: str = ENCODER_DEFAULT  # "default" (all-MiniLM-L6-v2) or a local Hugging Face folder
    fine_tune: bool = False  # train the transformer too
    projection_dim: int = 100  # transformer features -> this size by a linear layer
    max_length: int = 512  # encoder window; longer documents use overlapping windows
    window_overlap: int = 128

    def __post_init__(self) -> None:
        if self.words not in ("glove", "transformer"):
            raise HiereConfigError(f"model.words must be glove or transformer, got {self.words!r}")


class BiLSTMRE(HiereModel):
    name = "bilstm"
    task = "doc"
    decision = "global"
    Config = BiLSTMConfig
    # before the word encoders (hiere.encoders.words) owned the word vectors
    renamed_weights: ClassVar[dict[str, str]] = {"word_embedding.": "encoder."}

    def __init__(self, config: BiLSTMConfig, resources: Resources):
        super().__init__(config, resources)
        words, types = resources.vocabs["words"], resources.vocabs["types"]
        self.encoder: GloVeWords | TransformerWords
        if config.words == "glove":
            self.encoder = GloVeWords(words, resources.extra["word_dim"], config.glove, config.freeze_embeddings)
        else:
            self.encoder = TransformerWords(config.encoder, resources.model_dir, config.max_length,
                                            config.window_overlap, config.projection_dim, config.fine_tune)
        word_dim = self.encoder.output_size
        self.type_embedding = nn.Embedding(len(types), config.type_dim, padding_idx=0)
        self.coref_embedding = nn.Embedding(config.max_entities + 1, config.coref_dim, padding_idx=0)
        self.distance_embedding = nn.Embedding(2 * DISTANCE_BUCKETS, config.distance_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = BiLSTM(word_dim + config.type_dim + config.coref_dim, config.hidden)
        self.bilinear = EntityPairBilinear(self.lstm.output_size, config.distance_dim, len(resources.relations))

    @classmethod
    def build_resources(cls, config: BiLSTMConfig, train_examples: list[Document], relations: RelationMap) -> Resources:
        if config.words == "transformer":  # word ids only count the words; the tokenizer travels in encoder/
            return Resources(relations, {"words": Vocab([]), "types": build_type_vocab(train_examples)}, {})
        words = Vocab.build((doc.tokens for doc in train_examples), config.lowercase, config.min_count)
        return Resources(
            relations,
            {"words": words, "types": build_type_vocab(train_examples)},
            {"word_dim": glove_dim(config.glove)},
        )

    def init_pretrained(self) -> None:
        self.encoder.init_pretrained()

    def save_assets(self, model_dir: Path) -> None:
        self.encoder.save_assets(model_dir)

    def featurize(self, example: Document) -> dict[str, Any]:
        if len(example.entities) > self.config.max_entities:
            raise ValueError(f"document {example.title!r} has more than max_entities={self.config.max_entities}")
        vocabs = self.resources.vocabs
        features = featurize_document(example, vocabs["words"], vocabs["types"], self.relations)
        features.update(self.encoder.featurize_words(example))
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate_documents(features)
        batch.update(self.encoder.collate_words(features))
        return batch

    def entity_pair_logits(self, batch: dict[str, Any]) -> torch.Tensor:
        embedded = torch.cat(
            [
                self.encoder.encode_words(batch),
                self.type_embedding(batch["type_ids"]),
                self.coref_embedding(batch["coref_ids"]),
            ],
            dim=-1,
        )  # (batch, seq, word + type + coref)
        context = self.lstm(self.dropout(embedded), batch["lengths"])  # (batch, seq, 2 * hidden)
        context = self.dropout(context)
        entities = torch.bmm(batch["entity_map"], context)  # (batch, n_entities, 2 * hidden)
        # bilinear over [entity; relative-distance embedding] of head and tail, for every candidate pair
        return self.bilinear(
            entities, self.distance_embedding.weight, batch["pair_doc"], batch["pair_h"], batch["pair_t"],
            batch["distance_ht"], batch["distance_th"],
        )  # (n_pairs, n_relations)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        logits = self.entity_pair_logits(batch)
        output: dict[str, Any] = {"scores": torch.sigmoid(logits.float())}
        if self.training and batch.get("labels") is not None:
            output["loss"] = nn.functional.binary_cross_entropy_with_logits(logits.float(), batch["labels"])
        if not self.training:
            output["explanations"] = self.explain(batch)
        return output

    @staticmethod
    def explain(batch: dict[str, Any]) -> list[dict[str, Any]]:
        """The model has no attention to read: each row's ``sentence_scores`` are the documented rule
        :func:`hiere.evidence.closest_rule_scores` (1 on the sentences of the closest head/tail mentions)."""
        located = []  # per document, per entity: (sentence id, token start) of each mention
        for sent_spans, entities in zip(batch["sent_spans"], batch["mention_spans"], strict=True):
            begins = [begin for begin, _ in sent_spans]
            located.append([[(bisect_right(begins, start) - 1, start) for start, _ in spans] for spans in entities])
        return [
            {"sentence_scores": closest_rule_scores(len(batch["sent_spans"][b]), located[b][h], located[b][t])}
            for b, h, t in batch["pairs"]
        ]
