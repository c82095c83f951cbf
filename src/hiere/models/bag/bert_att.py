"""BERT+ATT: a transformer sentence encoder with selective attention over a bag (HiCLRE's backbone).

Names follow Sec. 3.2 of Li et al., ACL 2022 (shared/papers/003_aefe03437d9dfad5.txt):

* ``H = F(t_1..t_k)`` (eq. 1): any local Hugging Face encoder (default all-MiniLM-L6-v2), a sentence per row;
  long sentences are cropped to ``max_length`` subwords *around the two entities* (:func:`crop_words`);
* entity representation ``h_e`` = mean of the entity's subword states (footnote 2);
* sentence representation ``h_S = σ([h_e1 ‖ h_e2 ‖ h_[CLS]] W_S) + b_S`` (eq. 2, ``σ = tanh``);
* bag ``h_B = Σ_i α_i h_Si`` (eq. 3), ``α = softmax_i(f_i)`` (eq. 4), ``f_i = h_Si A r`` (eq. 5):
  with a diagonal ``A`` the product ``A r`` is one free query vector per relation (Lin et al. 2016), the
  shared :func:`~hiere.models.bag.common.selective_attention`;
* ``p(r | h_B) = softmax(O)``, ``O = W_r h_B + b_r`` (eqs. 6-7; the outer σ of eq. 7 is left out, as in the
  authors' OpenNRE-based code: squashed logits cannot separate classes) and cross-entropy ``L_task`` (eq. 8).

OpenNRE's BERT+ATT (``example/train_bag_bert.py``, thunlp/OpenNRE) reads the baseline differently; each
difference is a switch (paper default first): ``pooling: paper | entity_start`` (OpenNRE's
``BERTEntityEncoder``: ``[unused0]``/``[unused1]`` around the head, ``[unused2]``/``[unused3]`` around the tail,
the states of the two start markers concatenated and passed through one linear layer, sentence vectors of
``2d``), ``attention_query: free | classifier`` (OpenNRE: the query of ``r`` is the classifier's row ``W_r``
times a learned diagonal) and ``bag_sampling: cap | fixed`` (OpenNRE's ``bag_size``: every training bag is
read as exactly ``max_bag_sentences`` sentences, small bags padded by drawing their sentences again).
OpenNRE also reads ``bag_size`` sampled sentences per bag at dev and *test* time; hiere scores every sentence
unless ``inference_sampling: true`` (then each bag is read as exactly ``max_bag_sentences`` sentences, drawn
with a generator seeded by its entity pair, so evaluation stays deterministic and batch-independent).

Training uses the gold relation's query (OpenNRE training bags); at test time every relation ``r`` builds its
own bag representation and is scored by ``p(r | S, q_r)``. Explanations: each relation's sentence attention.
:class:`BertAtt` is also the base of :class:`~hiere.models.bag.hiclre.HiCLRE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from hiere.data.bags import Bag, BagSentence
from hiere.encoders.sentence import KEPT_SUBWORDS, SENTENCE_POOLINGS, TransformerSentenceEncoder
from hiere.encoders.transformer import DEFAULT
from hiere.errors import HiereConfigError
from hiere.models.bag.common import (
    TRAINING_BAGS,
    all_query_attention,
    attention_explanations,
    bag_membership,
    collate_bags,
    featurize_bag,
    sample_bag_sentences,
    selective_attention,
    training_groups,
)
from hiere.models.base import HiereModel, ModelConfig, Resources

POOLINGS = SENTENCE_POOLINGS
QUERIES = ("free", "classifier")
BAG_SAMPLINGS = ("cap", "fixed")


@dataclass
class BertAttConfig(ModelConfig):
    zero_allowed: ClassVar[frozenset[str]] = frozenset({"max_bag_sentences", "kept_subwords"})  # 0: none / off
    encoder: str = DEFAULT  # "default" (all-MiniLM-L6-v2 package) or a local Hugging Face folder
    max_length: int = 128  # subwords per sentence, [CLS]/[SEP] included; longer sentences are cropped
    entity_markers: bool = False  # the paper encodes plain text; True adds "*" around both entities
    dropout: float = 0.5  # on the bag representation (OpenNRE / HiCLRE code)
    training_bags: str = "relation"  # relation (OpenNRE (pair, relation) bags) | pair (pair multi-label)
    # Training bags with more sentences are read through a fresh random sample of this many sentences
    # each time they are batched (OpenNRE's bag_size); 0 keeps every sentence. Bounds the memory of a
    # training step: one NYT10 bag has 1,010 sentences. Inference always reads every sentence.
    max_bag_sentences: int = 16
    pooling: str = "paper"  # paper (eq. 2) | entity_start (OpenNRE's BERTEntityEncoder)
    attention_query: str = "free"  # free (paper: A r) | classifier (OpenNRE: W_r * learned diagonal)
    bag_sampling: str = "cap"  # cap: at most max_bag_sentences | fixed: exactly that many (OpenNRE bag_size)
    # dev/test/predict read every sentence (false), or exactly max_bag_sentences drawn per bag, seeded by the
    # entity pair (true: OpenNRE's bag_size at test time); attention explanations still name whole-bag sentences
    inference_sampling: bool = False
    # memory of a training step: the encoder keeps the activations of this many subwords for backward and reads
    # the rest of the step's sentences again in backward (activation checkpointing; the same values and
    # gradients, more time); 0 keeps them all (the fastest, when memory is no concern, e.g. on a GPU)
    kept_subwords: int = KEPT_SUBWORDS

    def __post_init__(self) -> None:
        for key, allowed in (("pooling", POOLINGS), ("attention_query", QUERIES), ("bag_sampling", BAG_SAMPLINGS)):
            if getattr(self, key) not in allowed:
                raise HiereConfigError(f"model.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if self.bag_sampling == "fixed" and self.max_bag_sentences < 1:
            raise HiereConfigError("model.bag_sampling=fixed needs model.max_bag_sentences >= 1")
        if self.inference_sampling and self.max_bag_sentences < 1:
            raise HiereConfigError("model.inference_sampling=true needs model.max_bag_sentences >= 1")
        if self.max_bag_sentences < 0:
            raise HiereConfigError(
                f"model.max_bag_sentences must be 0 (no limit) or positive, got {self.max_bag_sentences}"
            )
        if self.training_bags not in TRAINING_BAGS:
            raise HiereConfigError(f"model.training_bags must be one of {TRAINING_BAGS}, got {self.training_bags!r}")
        if self.max_length < 16:
            raise HiereConfigError(f"model.max_length must be at least 16, got {self.max_length}")


class BertAtt(HiereModel):
    """Transformer sentence encoder (eqs. 1-2), selective attention (eqs. 3-5), classifier (eqs. 6-8)."""

    name = "bert_att"
    task = "bag"
    decision = "ranking"
    Config = BertAttConfig
    # before the sentence encoder owned eq. 2's weights (hiere 0.1 model directories)
    renamed_weights: ClassVar[dict[str, str]] = {"W_S.": "encoder.W_S.", "b_S": "encoder.b_S", "W_E.": "encoder.W_E."}

    def __init__(self, config: BertAttConfig, resources: Resources):
        super().__init__(config, resources)
        self.encoder = TransformerSentenceEncoder(  # eqs. 1-2
            config.encoder, resources.model_dir, config.max_length, config.pooling, config.entity_markers,
            config.kept_subwords)
        n_relations = len(resources.relations)
        size = self.encoder.output_size
        self.sentence_size = size
        if config.attention_query == "free":
            self.relation_queries = nn.Parameter(torch.empty(n_relations, size))  # A r of eq. 5, one per relation
            nn.init.xavier_uniform_(self.relation_queries)
        else:
            self.query_diagonal = nn.Parameter(torch.ones(size))  # OpenNRE's `diag`
        self.classifier = nn.Linear(size, n_relations)  # W_r, b_r of eq. 7
        self.dropout = nn.Dropout(config.dropout)
        nn.init.xavier_uniform_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def queries(self) -> torch.Tensor:
        """One attention query per relation (n_relations, sentence_size), eq. 5's ``A r``."""
        if self.config.attention_query == "free":
            return self.relation_queries
        return self.classifier.weight * self.query_diagonal

    @property
    def hidden_size(self) -> int:
        return self.encoder.hidden_size

    @classmethod
    def training_read_options(cls, config: BertAttConfig) -> dict[str, Any]:
        return {"mode": "pair_relation" if config.training_bags == "relation" else "pair"}

    def init_pretrained(self) -> None:
        self.encoder.init_pretrained()

    def save_assets(self, model_dir: Path) -> None:
        self.encoder.save_assets(model_dir)

    # ---------------------------------------------------------------- features

    def featurize_sentence(self, sentence: BagSentence) -> dict[str, Any]:
        return self.encoder.featurize_sentence(sentence)

    def featurize(self, example: Bag) -> dict[str, Any]:
        return featurize_bag(self.encoder, example, self.relations)

    def sample_sentences(self, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """In training, bags above ``max_bag_sentences`` -> a random subset of their sentences
        (:func:`~hiere.models.bag.common.sample_bag_sentences`; ``bag_sampling: fixed`` fills smaller bags up).
        At inference every sentence, or with ``inference_sampling`` exactly ``max_bag_sentences`` drawn per bag
        from a generator seeded by the entity pair."""
        cap = self.config.max_bag_sentences
        if not self.training:
            if not self.config.inference_sampling:
                return features
            return sample_bag_sentences(features, cap, fixed=True, by_pair=True)
        if cap == 0:
            return features
        return sample_bag_sentences(features, cap, fixed=self.config.bag_sampling == "fixed")

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return self.collate_sampled(self.sample_sentences(features))

    def collate_sampled(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Tensors of bags whose sentences are already sampled (:meth:`sample_sentences`)."""
        return collate_bags(self.encoder, features, len(self.relations))

    # ---------------------------------------------------------------- network

    def encode(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 1 and footnote 2 -> ``h_e1, h_e2, h_[CLS]``, each (n_sent, d)."""
        return self.encoder.sentence_states(batch)

    def sentence_representation(self, h_e1: torch.Tensor, h_e2: torch.Tensor, h_cls: torch.Tensor) -> torch.Tensor:
        """Eq. 2 (or OpenNRE's entity-start pooling): :meth:`TransformerSentenceEncoder.represent`."""
        return self.encoder.represent(h_e1, h_e2, h_cls)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        h_e1, h_e2, h_cls = self.encode(batch)
        h_S = self.sentence_representation(h_e1, h_e2, h_cls)  # (n_sent, d)
        n_bags = batch["bag_labels"].shape[0]
        if self.training:
            membership, labels, bag_rows = training_groups(batch, self.config.training_bags)
            h_B, _ = selective_attention(self.queries()[labels], h_S, membership)  # (n_groups, d), eqs. 3-5
            logits = self.classifier(self.dropout(h_B))  # (n_groups, R), eq. 7
            loss = nn.functional.cross_entropy(logits, labels)  # eq. 8
            return {"scores": group_scores(logits, bag_rows, n_bags), "loss": loss}
        membership = bag_membership(batch["sentence_bag"], n_bags)  # (n_bags, n_sent)
        bags, weights = all_query_attention(self.queries(), h_S, membership)  # (n_bags, R, d)
        probabilities = torch.softmax(self.classifier(bags), dim=-1)  # (n_bags, R, R)
        scores = probabilities.diagonal(dim1=1, dim2=2)  # (n_bags, R): p(r | S, q_r)
        names = [["sentence_attention"] for _ in self.relations.relations]
        explanations = attention_explanations(
            self.relations.relations, names, weights.unsqueeze(2), membership, batch
        )
        return {"scores": scores, "explanations": explanations}


def group_scores(logits: torch.Tensor, bag_rows: torch.Tensor, n_bags: int) -> torch.Tensor:
    """Training groups' probabilities -> one row per bag (max over the bag's groups), detached."""
    probabilities = torch.softmax(logits.detach().float(), dim=-1)  # (n_groups, R)
    rows = bag_rows.unsqueeze(1).expand_as(probabilities)
    scores = torch.zeros(n_bags, probabilities.shape[1], device=logits.device)
    return scores.scatter_reduce(0, rows, probabilities, "amax", include_self=False)
