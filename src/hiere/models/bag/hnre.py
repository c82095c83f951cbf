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

Warm start (``init_from: MODEL_DIR``, the released code's recipe): the HNRE code does not train HATT from
scratch; it initialises it from a trained model (``init_vec`` / ``init_vec_pcnn``; thunlp/HNRE issues 8 and
11: "PCNN init vectors ... we applied pretrained CNN weights to initialize PCNN ... we repeat the relation
classification layer 3 times"). The paper's text says nothing of it. ``init_from`` takes any trained hiere
bag model directory with the same encoder settings (``cnn_att``, ``pcnn_att`` or ``hnre``) and copies
:func:`warm_start` describes what; ``init_from: null`` (the default) trains from GloVe alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

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

log = logging.getLogger("hiere.train.hnre")  # a child of the trainer's logger: lands in train.log


@dataclass
class HNREConfig(BagModelConfig):
    levels: int = 3  # k: relation + 2 ancestor levels (/people, /people/person) for path names
    hierarchy: str | None = None  # JSON file relation -> [coarsest, ..., finest ancestor]; None: from paths
    init_from: str | None = None  # trained bag model directory to warm-start from (released code); None: paper

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
        if config.initialization == "pytorch":  # no torch default for a bare Parameter: Xavier, as att.py's free query
            for queries in self.level_queries:
                nn.init.xavier_uniform_(queries)
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

    def init_pretrained(self) -> None:
        super().init_pretrained()  # GloVe first: words the source model lacks keep their GloVe vector
        if self.config.init_from:
            copied = warm_start(self, self.config.init_from)
            log.info("warm start from %s: %d word vectors, encoder, queries and classifier (x%d per piece, "
                     "%d levels)", self.config.init_from, copied["words"], copied["repeat"], copied["levels"])

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


def warm_start(model: HNRE, source_dir: str | Path) -> dict[str, int]:
    """Copy a trained bag model's weights into a new HNRE (``init_from``; the released HNRE code's recipe).

    * word vectors row by row, matched by word (the two vocabularies may differ); the other encoder weights
      (position embeddings, convolution) as they are — they must have the same shapes;
    * sentence vectors of the source with ``h`` features and of HNRE with ``m * h`` (a CNN source for a PCNN
      HNRE: ``m = 3``, one block per piece): queries and classifier columns are repeated ``m`` times, the
      maintainers' "repeat the relation classification layer 3 times";
    * level queries ``q_{r^i}``: from an HNRE source with the same hierarchy, level by level; from a
      ``cnn_att`` / ``pcnn_att`` source, its relation queries give level 0 and each coarser node gets the mean
      of the queries of the relations below it (hiere's reading: the released file is not readable);
    * classifier ``M`` (eq. 4) over ``[r^0; ...; r^{k-1}]``: an HNRE source's own, else the source classifier
      repeated once per level; the bias as it is.

    Relations are matched by name and must be the same set. Returns counts of what was copied (for the log).
    """
    from hiere.models.directory import load_model_dir  # imported late: the registry imports this module

    source_path = Path(source_dir)
    if model.config.encoder == "transformer":
        raise HiereConfigError("model.init_from: the warm start copies CNN/PCNN weights; this HNRE has "
                               "model.encoder=transformer (its transformer starts from the pretrained weights)")
    if not source_path.is_dir():
        raise HiereConfigError(f"model.init_from: {source_dir} is not a directory (a trained hiere bag model)")
    source, _, _ = load_model_dir(source_path)
    where = f"model.init_from ({source_dir})"
    if getattr(source, "task", None) != "bag" or not hasattr(source, "encoder") or not hasattr(
        source.encoder, "word_embedding"
    ):
        raise HiereConfigError(f"{where}: {source.name} is not a CNN/PCNN bag model (cnn_att, pcnn_att or hnre)")
    if source.relations.relations != model.relations.relations:
        raise HiereConfigError(f"{where}: its relations differ from this run's ({len(source.relations)} vs "
                               f"{len(model.relations)}); warm start needs the same relation list")
    copied = {"words": _copy_words(model, source)}
    target_state = model.encoder.state_dict()
    for name, value in source.encoder.state_dict().items():
        if name.startswith("word_embedding"):
            continue
        if target_state[name].shape != value.shape:
            raise HiereConfigError(f"{where}: encoder weight {name} has shape {tuple(value.shape)}, this model "
                                   f"{tuple(target_state[name].shape)} (window, hidden, position_dim or "
                                   f"max_length differ)")
        target_state[name] = value
    model.encoder.load_state_dict(target_state)
    h_source, h_target = source.encoder.output_size, model.encoder.output_size
    if h_target % h_source:
        raise HiereConfigError(f"{where}: sentence vectors of {h_source} features cannot seed {h_target}")
    repeat = h_target // h_source  # 3 for CNN -> PCNN, else 1
    k = model.hierarchy.n_levels
    with torch.no_grad():
        source_levels = _source_level_queries(model, source)  # one (n_nodes, h_source) per level
        for queries, seeds in zip(model.level_queries, source_levels, strict=True):
            queries.copy_(seeds.repeat(1, repeat))
        if isinstance(source, HNRE):
            weight = source.classifier.weight.reshape(len(model.relations), k, h_source).repeat(1, 1, repeat)
        else:
            weight = source.classifier.weight.repeat(1, repeat).unsqueeze(1).expand(-1, k, -1)
        model.classifier.weight.copy_(weight.reshape(len(model.relations), k * h_target))
        model.classifier.bias.copy_(source.classifier.bias)
    copied.update(levels=k, repeat=repeat)
    return copied


def _copy_words(model: HNRE, source: nn.Module) -> int:
    """Word vectors of the source for every word both vocabularies share; returns how many."""
    target_vocab, source_vocab = model.resources.vocabs["words"], source.resources.vocabs["words"]
    target_rows, source_rows = [], []
    for index, word in enumerate(target_vocab.itos):
        if word in source_vocab.stoi:
            target_rows.append(index)
            source_rows.append(source_vocab.stoi[word])
    with torch.no_grad():
        target = model.encoder.word_embedding.embedding.weight
        source_weight = source.encoder.word_embedding.embedding.weight
        if target.shape[1] != source_weight.shape[1]:
            raise HiereConfigError(f"model.init_from: word vectors of {source_weight.shape[1]} dimensions, "
                                   f"this model {target.shape[1]}")
        target[torch.tensor(target_rows)] = source_weight[torch.tensor(source_rows)]
    return len(target_rows)


def _source_level_queries(model: HNRE, source: nn.Module) -> list[torch.Tensor]:
    """Per level of ``model``'s hierarchy, the source's queries for its nodes ``(n_nodes, h_source)``."""
    if isinstance(source, HNRE):
        if source.hierarchy.to_json() != model.hierarchy.to_json():
            raise HiereConfigError("model.init_from: the source HNRE has another relation hierarchy")
        return [queries.detach() for queries in source.level_queries]
    relation_queries = getattr(source, "relation_queries", None)
    if relation_queries is None:
        raise HiereConfigError(f"model.init_from: {source.name} has no attention queries (aggregation att needed)")
    relation_queries = relation_queries.detach()  # (R, h_source)
    levels = []
    for level, size in enumerate(model.hierarchy.level_sizes()):
        nodes = model.chains[:, level]  # (R,) node of each relation on this level
        sums = torch.zeros(size, relation_queries.shape[1]).index_add_(0, nodes, relation_queries)
        counts = torch.zeros(size).index_add_(0, nodes, torch.ones(len(nodes))).clamp_min(1)
        levels.append(sums / counts.unsqueeze(1))
    return levels
