"""HNRE: hierarchical relation extraction with coarse-to-fine grained attention (Han et al., EMNLP 2018).

Names follow Sec. 3.2 of the paper (equation numbers in the order they appear in
shared/papers/000_3e06282ee9389416.txt):

* hierarchical chain ``(r^0, ..., r^{k-1})`` of a relation ``r = r^0`` (eq. 1): :class:`RelationHierarchy`,
  level 0 = the relation itself, level ``k-1`` = its coarsest ancestor (``/people``);
* per level a query vector ``q_{r^i}`` for every node, ``r^i_{h,t} = ATT(q_{r^i}, {s_1..s_m})`` (eq. 2) with
  ``ATT`` the selective attention ``alpha_j = softmax_j(q · s_j)``, ``sum_j alpha_j s_j``;
* ``r_{h,t} = [r^0_{h,t}; ...; r^{k-1}_{h,t}]`` (eq. 3), fed to ``P(r | h, t, S) = softmax(M r_{h,t} + d)``
  (eq. 4), trained with cross-entropy (plus the L2 weight decay of the trainer).

Training uses the chain of the bag's gold relation; at test time every candidate relation is scored through
its own chain, ``p(r | S, chain(r))`` (the HNRE code's ``test_output``). ``levels: 1`` removes the hierarchy
(plain selective attention); ``hierarchy: FILE.json`` reads chains for relation names that are not paths.
Explanations: for every relation, the attention weight of each sentence on each level of its chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hiere.data.bags import Bag
from hiere.data.hierarchy import RelationHierarchy
from hiere.data.relations import RelationMap
from hiere.errors import HiereConfigError
from hiere.models.bag.common import (
    BagModel,
    BagModelConfig,
    all_query_attention,
    attention_explanations,
    selective_attention,
)
from hiere.models.base import Resources


@dataclass
class HNREConfig(BagModelConfig):
    levels: int = 3  # k: relation + 2 ancestor levels (/people, /people/person) for path names
    hierarchy: str | None = None  # JSON file relation -> [coarsest, ..., finest ancestor]; None: from paths

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.levels < 1:
            raise HiereConfigError(f"model.levels must be at least 1, got {self.levels}")


class HNRE(BagModel):
    name = "hnre"
    Config = HNREConfig

    def __init__(self, config: HNREConfig, resources: Resources):
        super().__init__(config, resources)
        self.hierarchy = RelationHierarchy.from_json(resources.extra["hierarchy"])
        missing = [r for r in resources.relations.relations if r not in self.hierarchy.chains]
        if missing:
            raise HiereConfigError(f"relations without a hierarchy chain: {missing[:5]}")
        hidden = self.encoder.output_size
        # q_{r^i}: one query vector per node of each level
        self.level_queries = nn.ParameterList(
            nn.Parameter(torch.empty(size, hidden)) for size in self.hierarchy.level_sizes()
        )
        chains = [self.hierarchy.chain(r) for r in resources.relations.relations]
        self.register_buffer("chains", torch.tensor(chains, dtype=torch.long), persistent=False)  # (R, k)
        self.classifier = nn.Linear(
            hidden * self.hierarchy.n_levels, len(resources.relations)
        )  # M, d of eq. 4
        self.reset_parameters()

    @classmethod
    def build_resources(
        cls, config: HNREConfig, train_examples: list[Bag], relations: RelationMap
    ) -> Resources:
        resources = super().build_resources(config, train_examples, relations)
        if config.hierarchy:
            hierarchy = RelationHierarchy.from_file(config.hierarchy, relations.relations)
        else:
            hierarchy = RelationHierarchy.from_paths(relations.relations, config.levels)
        resources.extra["hierarchy"] = hierarchy.to_json()
        return resources

    def aggregate(
        self, sentences: torch.Tensor, membership: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """Training: attention with the gold relation's chain on every level (eqs. 2-4)."""
        chains = self.chains[labels]  # (n_groups, k)
        level_representations = [
            selective_attention(queries[chains[:, level]], sentences, membership)[0]  # (n_groups, hidden)
            for level, queries in enumerate(self.level_queries)
        ]
        r_ht = torch.cat(level_representations, dim=-1)  # (n_groups, k * hidden), eq. 3
        return self.classifier(self.dropout(r_ht))  # (n_groups, R), eq. 4 before the softmax

    def score(self, sentences: torch.Tensor, membership: torch.Tensor) -> tuple[torch.Tensor, list[dict]]:
        """Inference: each relation ``r`` scored with its own chain, ``p(r | S, chain(r))``."""
        level_representations, level_weights = [], []
        for level, queries in enumerate(self.level_queries):
            nodes, weights = all_query_attention(queries, sentences, membership)  # (n_bags, n_nodes, hidden)
            level_representations.append(nodes[:, self.chains[:, level]])  # (n_bags, R, hidden)
            level_weights.append(weights)  # (n_bags, n_nodes, n_sent)
        r_ht = torch.cat(level_representations, dim=-1)  # (n_bags, R, k * hidden)
        probabilities = torch.softmax(self.classifier(r_ht), dim=-1)  # (n_bags, R, R)
        scores = probabilities.diagonal(dim1=1, dim2=2)  # (n_bags, R)
        own_weights = torch.stack(
            [weights[:, self.chains[:, level]] for level, weights in enumerate(level_weights)], dim=2
        )  # (n_bags, R, k, n_sent): each relation's weights along its own chain
        names = [self.hierarchy.chain_names(r) for r in self.relations.relations]
        return scores, attention_explanations(self.relations.relations, names, own_weights, membership)
