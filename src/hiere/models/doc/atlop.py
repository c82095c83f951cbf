"""ATLOP: Adaptive Thresholding and Localized cOntext Pooling (Zhou et al., AAAI 2021).

Entity markers ``*`` around every mention -> transformer (long documents in overlapping windows)
-> mention embedding = start-marker state -> entity embedding by logsumexp over mentions (eq. 2)
-> localized context c(s,o) from the encoder's own attention (eq. 6-7) -> head/tail extractors
z_s = tanh(W_s [h_s; c]), z_o = tanh(W_o [h_o; c]) (eq. 8-9) -> grouped bilinear classifier (eq. 5)
-> adaptive-threshold loss (eq. 10-11, :func:`hiere.losses.adaptive_threshold_loss`): a learned
threshold class TH (column 0) replaces the global threshold, so scores are ``logit_r - logit_TH``
and the decision threshold is 0. ``top_k`` keeps at most k relations per pair (ATLOP ``num_labels``).

:class:`~hiere.models.doc.transformer_doc.TransformerDocModel` holds what ATLOP and KMGRE share: the encoder,
featurization with markers, batching, mention/entity gathering and the localized-context pooling.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hiere.errors import HiereConfigError
from hiere.losses import adaptive_threshold_loss, adaptive_threshold_scores
from hiere.models.base import Resources
from hiere.models.doc.transformer_doc import (
    TransformerDocConfig,
    TransformerDocModel,
    block_problems,
    classify_in_chunks,
    grouped_bilinear,
    in_pair_chunks,
    logsumexp_entities,
    mean_entities,
)


@dataclass
class ATLOPConfig(TransformerDocConfig):
    emb_size: int = 768  # head/tail extractor size (ATLOP)
    block_size: int = 64  # group size of the grouped bilinear classifier (ATLOP)

    def range_problems(self) -> list[str]:
        return super().range_problems() + block_problems(self)


class ATLOP(TransformerDocModel):
    name = "atlop"
    Config = ATLOPConfig

    def __init__(self, config: ATLOPConfig, resources: Resources):
        super().__init__(config, resources)
        if block_problems(config):
            raise HiereConfigError(block_problems(config)[0])
        self.head_extractor = nn.Linear(2 * self.hidden_size, config.emb_size)  # W_s, eq. 8
        self.tail_extractor = nn.Linear(2 * self.hidden_size, config.emb_size)  # W_o, eq. 9
        self.bilinear = nn.Linear(config.emb_size * config.block_size, len(resources.relations))  # W_r, eq. 5

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        hidden, mention_states, mention_attention = self.encode_mentions(batch)
        entity_mentions = batch["entity_mentions"]
        entity_states = logsumexp_entities(mention_states, entity_mentions)  # (n_entities, H), eq. 2
        entity_attention = mean_entities(mention_attention, entity_mentions)  # (n_entities, heads, L)
        head, tail, pair_doc = batch["pair_head"], batch["pair_tail"], batch["pair_doc"]
        pair_logits = functools.partial(self.pair_logits, hidden, entity_states, entity_attention)
        if torch.is_grad_enabled():
            logits = pair_logits(head, tail, pair_doc)  # (n_pairs, R)
        else:  # prediction: a document of 2,000 tokens has 35,000 pairs, whose (pair, H) states need not coexist
            logits = in_pair_chunks(pair_logits, head, tail, pair_doc)
        output: dict[str, Any] = {"scores": adaptive_threshold_scores(logits, self.config.top_k)}
        labels = batch.get("labels")
        if labels is not None:
            output["loss"] = adaptive_threshold_loss(logits, labels) if len(logits) else logits.sum() * 0.0
            if self.config.evidence_loss_weight > 0 and len(logits):
                evidence = self.evidence_loss(batch, entity_attention, head, tail, pair_doc)
                output["loss_terms"] = {"adaptive_threshold": output["loss"].detach(), "evidence": evidence.detach()}
                output["loss"] = output["loss"] + self.config.evidence_loss_weight * evidence
        if not self.training:
            output["explanations"] = self.explain_sentences(batch, entity_attention, head, tail, pair_doc)
        return output

    def pair_logits(
        self, hidden: torch.Tensor, entity_states: torch.Tensor, entity_attention: torch.Tensor,
        head: torch.Tensor, tail: torch.Tensor, pair_doc: torch.Tensor,
    ) -> torch.Tensor:
        """Entity pairs -> logits (n_pairs, R): localized context (eqs. 6-7), extractors (eqs. 8-9), eq. 5."""
        context = self.localized_context(hidden, entity_attention, head, tail, pair_doc)  # (n_pairs, H)
        context = context.to(entity_states.dtype)
        z_head = torch.tanh(self.head_extractor(torch.cat([entity_states[head], context], dim=-1)))  # eq. 8
        z_tail = torch.tanh(self.tail_extractor(torch.cat([entity_states[tail], context], dim=-1)))  # eq. 9
        # (n_pairs, R), eq. 5; the (n_pairs, emb_size * block_size) products, the largest activation of the
        # model, are made a chunk of pairs at a time and recomputed in the backward pass instead of being stored
        return classify_in_chunks(self.classify, z_head, z_tail)

    def classify(self, z_head: torch.Tensor, z_tail: torch.Tensor) -> torch.Tensor:
        """Grouped bilinear classifier (eq. 5) -> logits (n_pairs, R), column 0 = TH."""
        return self.bilinear(grouped_bilinear(z_head, z_tail, self.config.block_size)).float()
