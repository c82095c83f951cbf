"""CNN+ATT and PCNN+ATT: selective attention over a bag's sentences (Lin et al., ACL 2016), with the AVE
and ONE aggregations as baselines (``aggregation: att | ave | one``).

* ``att``: training uses the query of the bag's gold relation, ``alpha_j = softmax_j(s_j · q_r)``,
  ``s = sum_j alpha_j s_j`` (Lin et al. eqs. 5-7), ``o = M s + d``, ``p(r | S) = softmax(o)`` (eqs. 8-9).
  At test time each relation ``r`` builds its own bag representation with its own query and is scored by
  ``p(r | S, q_r)`` (the diagonal of the per-query softmax, as OpenNRE).
* ``ave``: ``s = mean_j s_j`` (Lin et al.'s AVE), the same in training and test.
* ``one``: training keeps the sentence with the highest probability of the gold relation (Zeng et al.
  2015); at test time ``p(r | S) = max_j p(r | s_j)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hiere.errors import HiereConfigError
from hiere.models.bag.common import (
    BagModel,
    BagModelConfig,
    all_query_attention,
    attention_explanations,
    selective_attention,
)
from hiere.models.base import Resources

AGGREGATIONS = ("att", "ave", "one")
QUERIES = ("classifier", "free")


@dataclass
class AttConfig(BagModelConfig):
    aggregation: str = "att"  # att | ave | one
    attention_query: str = "classifier"  # classifier (OpenNRE: q_r = M_r * diag(a)) | free (a learned q_r)
    initialization: str = "pytorch"  # OpenNRE's initialisation (xavier: the HNRE code's)
    sentence_dropout: float = 0.5  # OpenNRE's encoder dropout (Lin et al.'s text: output layer only, 0)
    max_length: int = 128  # OpenNRE

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.aggregation not in AGGREGATIONS:
            raise HiereConfigError(
                f"model.aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}"
            )
        if self.attention_query not in QUERIES:
            raise HiereConfigError(f"model.attention_query must be one of {QUERIES}, got {self.attention_query!r}")


@dataclass
class CNNAttConfig(AttConfig):
    encoder: str = "cnn"


class PCNNAtt(BagModel):
    """PCNN+ATT: sentence encoder (``encoder: pcnn``, or ``cnn``) + bag aggregation + softmax classifier."""

    name = "pcnn_att"
    Config = AttConfig

    def __init__(self, config: AttConfig, resources: Resources):
        super().__init__(config, resources)
        n_relations = len(resources.relations)
        hidden = self.encoder.output_size
        attention = config.aggregation == "att"
        free_query = attention and config.attention_query == "free"
        self.free_queries = nn.Parameter(torch.empty(n_relations, hidden)) if free_query else None
        # eq. 5's diagonal A when the query is the classifier row (OpenNRE's `diag`, initialised to ones)
        self.query_diagonal = nn.Parameter(torch.ones(hidden)) if attention and not free_query else None
        self.classifier = nn.Linear(hidden, n_relations)  # M, d of eq. 8
        if free_query and config.initialization == "pytorch":
            nn.init.xavier_uniform_(self.free_queries)
        self.reset_parameters()
        if self.query_diagonal is not None:
            nn.init.ones_(self.query_diagonal)

    @property
    def relation_queries(self) -> torch.Tensor | None:
        """One attention query per relation (n_relations, hidden): e_j = s_j A r (Lin et al. eq. 5).

        ``attention_query: free`` learns r with A folded in; ``classifier`` (OpenNRE) uses the classifier's
        row M_r for r and learns the diagonal A. None for ``ave`` / ``one``."""
        if self.free_queries is not None:
            return self.free_queries
        if self.query_diagonal is None:
            return None
        return self.classifier.weight * self.query_diagonal

    def aggregate(
        self, sentences: torch.Tensor, membership: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        aggregation = self.config.aggregation
        if aggregation == "att":
            bag, _ = selective_attention(
                self.relation_queries[labels], sentences, membership
            )  # (n_groups, hidden)
            return self.classifier(self.dropout(bag))
        if aggregation == "ave":
            bag = (membership.float() / membership.sum(1, keepdim=True)) @ sentences  # (n_groups, hidden)
            return self.classifier(self.dropout(bag))
        sentence_logits = self.classifier(self.dropout(sentences))  # (n_sent, n_relations)
        with torch.no_grad():
            gold = torch.softmax(sentence_logits, dim=-1)[:, labels].T  # (n_groups, n_sent)
            chosen = gold.masked_fill(~membership, -1.0).argmax(dim=1)  # (n_groups,)
        return sentence_logits[chosen]

    def score(
        self, sentences: torch.Tensor, membership: torch.Tensor
    ) -> tuple[torch.Tensor, list[dict] | None]:
        aggregation = self.config.aggregation
        if aggregation == "att":
            bags, weights = all_query_attention(
                self.relation_queries, sentences, membership
            )  # (n_bags, R, hidden)
            probabilities = torch.softmax(self.classifier(bags), dim=-1)  # (n_bags, R, R)
            scores = probabilities.diagonal(dim1=1, dim2=2)  # (n_bags, R): p(r | S, q_r)
            names = [[r] for r in self.relations.relations]  # one level: the relation's own query
            explanations = attention_explanations(
                self.relations.relations, names, weights.unsqueeze(2), membership
            )
            return scores, explanations
        if aggregation == "ave":
            bags = (membership.float() / membership.sum(1, keepdim=True)) @ sentences
            return torch.softmax(self.classifier(bags), dim=-1), None
        probabilities = torch.softmax(self.classifier(sentences), dim=-1)  # (n_sent, R)
        per_bag = probabilities.unsqueeze(0).masked_fill(
            ~membership.unsqueeze(-1), 0.0
        )  # (n_bags, n_sent, R)
        return per_bag.max(dim=1).values, None


class CNNAtt(PCNNAtt):
    """CNN+ATT: the same model with a plain CNN encoder by default."""

    name = "cnn_att"
    Config = CNNAttConfig
