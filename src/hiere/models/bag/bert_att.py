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
OpenNRE also samples ``bag_size`` sentences per bag at *test* time; hiere always scores every sentence.

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
from hiere.encoders.transformer import DEFAULT, TransformerEncoder
from hiere.errors import HiereConfigError
from hiere.models.bag.common import (
    TRAINING_BAGS,
    all_query_attention,
    attention_explanations,
    bag_membership,
    selective_attention,
    training_groups,
)
from hiere.models.base import HiereModel, ModelConfig, Resources

POOLINGS = ("paper", "entity_start")
QUERIES = ("free", "classifier")
BAG_SAMPLINGS = ("cap", "fixed")
ENTITY_START_MARKERS = ("[unused0]", "[unused1]", "[unused2]", "[unused3]")  # head start/end, tail start/end


@dataclass
class BertAttConfig(ModelConfig):
    zero_allowed: ClassVar[frozenset[str]] = frozenset({"max_bag_sentences"})  # 0 means none / off
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

    def __post_init__(self) -> None:
        for key, allowed in (("pooling", POOLINGS), ("attention_query", QUERIES), ("bag_sampling", BAG_SAMPLINGS)):
            if getattr(self, key) not in allowed:
                raise HiereConfigError(f"model.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if self.bag_sampling == "fixed" and self.max_bag_sentences < 1:
            raise HiereConfigError("model.bag_sampling=fixed needs model.max_bag_sentences >= 1")
        if self.max_bag_sentences < 0:
            raise HiereConfigError(
                f"model.max_bag_sentences must be 0 (no limit) or positive, got {self.max_bag_sentences}"
            )
        if self.training_bags not in TRAINING_BAGS:
            raise HiereConfigError(f"model.training_bags must be one of {TRAINING_BAGS}, got {self.training_bags!r}")
        if self.max_length < 16:
            raise HiereConfigError(f"model.max_length must be at least 16, got {self.max_length}")


def crop_words(
    piece_counts: list[int], head: tuple[int, int], tail: tuple[int, int], budget: int
) -> list[tuple[int, int]]:
    """Word ranges ``[start, end)`` to keep so that at most ``budget`` subwords remain, both entities kept.

    The whole sentence when it fits; else the region from the first to the last entity word, widened one
    word at a time on alternate sides; when even that region is too long, one window around each entity
    (``budget // 2`` subwords each, an over-long entity cut at its end).

    >>> crop_words([1] * 10, (1, 2), (7, 8), 4)
    [(0, 2), (6, 8)]
    """
    total = sum(piece_counts)
    if total <= budget:
        return [(0, len(piece_counts))]
    start, end = min(head[0], tail[0]), max(head[1], tail[1])
    if sum(piece_counts[start:end]) <= budget:
        return [_widen(piece_counts, start, end, budget)]
    first, second = sorted([head, tail])
    windows = [_widen(piece_counts, *span, budget // 2) for span in (first, second)]
    if windows[0][1] >= windows[1][0]:  # overlapping windows: their union fits the budget
        return [(windows[0][0], max(windows[0][1], windows[1][1]))]
    return windows


def _widen(piece_counts: list[int], start: int, end: int, budget: int) -> tuple[int, int]:
    """Grow ``[start, end)`` alternately left and right while it fits ``budget``; shrink an over-long span."""
    used = sum(piece_counts[start:end])
    while used > budget and end - start > 1:
        end -= 1
        used -= piece_counts[end]
    grow_left = True
    while True:
        can_left = start > 0 and used + piece_counts[start - 1] <= budget
        can_right = end < len(piece_counts) and used + piece_counts[end] <= budget
        if not (can_left or can_right):
            return start, end
        if can_left and (grow_left or not can_right):
            start -= 1
            used += piece_counts[start]
        else:
            used += piece_counts[end]
            end += 1
        grow_left = not grow_left


def entity_mean(hidden: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """Mean of the subword states inside each row's ``[start, end)`` span (footnote 2).

    ``hidden`` (n_sent, seq, d), ``spans`` (n_sent, 2) -> (n_sent, d).
    """
    positions = torch.arange(hidden.shape[1], device=hidden.device)  # (seq,)
    inside = (positions >= spans[:, :1]) & (positions < spans[:, 1:])  # (n_sent, seq)
    weights = inside.to(hidden.dtype) / inside.sum(1, keepdim=True).clamp_min(1).to(hidden.dtype)
    return torch.einsum("ns,nsd->nd", weights, hidden)


class BertAtt(HiereModel):
    """Transformer sentence encoder (eqs. 1-2), selective attention (eqs. 3-5), classifier (eqs. 6-8)."""

    name = "bert_att"
    task = "bag"
    decision = "ranking"
    Config = BertAttConfig

    def __init__(self, config: BertAttConfig, resources: Resources):
        super().__init__(config, resources)
        self.encoder = TransformerEncoder(config.encoder, resources.model_dir, config.max_length, pretrained=False)
        d = self.encoder.hidden_size
        n_relations = len(resources.relations)
        if config.pooling == "entity_start":
            self.start_marker_ids = self.encoder.tokenizer.convert_tokens_to_ids(list(ENTITY_START_MARKERS))
            if self.encoder.unk_id in self.start_marker_ids:
                raise HiereConfigError(f"model.pooling=entity_start needs the tokens {ENTITY_START_MARKERS} in the "
                                       f"encoder's vocabulary ({config.encoder} has none; BERT vocabularies do)")
            self.W_E = nn.Linear(2 * d, 2 * d)  # OpenNRE's BERTEntityEncoder.linear
            size = 2 * d
        else:
            self.W_S = nn.Linear(3 * d, d, bias=False)  # eq. 2
            self.b_S = nn.Parameter(torch.zeros(d))
            nn.init.xavier_uniform_(self.W_S.weight)
            size = d
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
        self.encoder.load_pretrained()

    def save_assets(self, model_dir: Path) -> None:
        self.encoder.save_assets(model_dir)

    # ---------------------------------------------------------------- features

    def featurize_sentence(self, sentence: BagSentence) -> dict[str, Any]:
        """Subword ids (cropped around the entities) and the subword spans of head and tail."""
        tokenizer = self.encoder.tokenizer
        words = list(sentence.tokens)
        pieces = tokenizer(words, add_special_tokens=False)["input_ids"]
        counts = [max(1, len(p)) for p in pieces]
        if self.config.pooling == "entity_start":
            marker_cost = 4
        else:
            marker_cost = 4 * len(self.encoder.marker_ids) if self.config.entity_markers else 0
        ranges = crop_words(counts, sentence.head, sentence.tail, self.encoder.max_length - 2 - marker_cost)
        kept = [index for start, end in ranges for index in range(start, end)]
        position = {word: new for new, word in enumerate(kept)}

        def new_span(span: tuple[int, int]) -> tuple[int, int]:
            inside = [position[w] for w in range(*span) if w in position]
            return inside[0], inside[-1] + 1

        head, tail = new_span(sentence.head), new_span(sentence.tail)
        if self.config.pooling == "entity_start":
            return self.featurize_entity_start([pieces[w] for w in kept], head, tail)
        tokenized = self.encoder.tokenize(
            [words[w] for w in kept], [head, tail] if self.config.entity_markers else None
        )
        spans = tokenized.word_spans
        return {
            "input_ids": tokenized.input_ids,
            "head": (spans[head[0]][0], spans[head[1] - 1][1]),
            "tail": (spans[tail[0]][0], spans[tail[1] - 1][1]),
        }

    def featurize_entity_start(
        self, pieces: list[list[int]], head: tuple[int, int], tail: tuple[int, int]
    ) -> dict[str, Any]:
        """OpenNRE's entity-start input: ``[CLS] .. [unused0] head [unused1] .. [unused2] tail [unused3] .. [SEP]``;
        the head and tail "spans" are the positions of their start markers (one subword each)."""
        head_start, head_end, tail_start, tail_end = self.start_marker_ids
        input_ids, positions = [self.encoder.cls_id], {}
        for index, word_pieces in enumerate(pieces):
            for name, span, marker in (("head", head, head_start), ("tail", tail, tail_start)):
                if index == span[0]:
                    positions[name] = len(input_ids)
                    input_ids.append(marker)
            input_ids.extend(word_pieces or [self.encoder.unk_id])
            if index == tail[1] - 1:
                input_ids.append(tail_end)
            if index == head[1] - 1:
                input_ids.append(head_end)
        input_ids.append(self.encoder.sep_id)
        return {"input_ids": input_ids, "head": (positions["head"], positions["head"] + 1),
                "tail": (positions["tail"], positions["tail"] + 1)}

    def featurize(self, example: Bag) -> dict[str, Any]:
        return {
            "sentences": [self.featurize_sentence(s) for s in example.sentences],
            "sentence_labels": [self.relations[s.relation] for s in example.sentences],
            "bag_labels": example.relation_indices(self.relations),
        }

    def sample_sentences(self, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """In training, bags above ``max_bag_sentences`` -> a random subset of their sentences (torch's
        generator, so seeded and restored by ``--resume``); ``sentence_index`` keeps the original positions."""
        cap = self.config.max_bag_sentences
        if not self.training or cap == 0:
            return features
        sampled = []
        fixed = self.config.bag_sampling == "fixed"
        for feature in features:
            if len(feature["sentences"]) == cap or (len(feature["sentences"]) < cap and not fixed):
                sampled.append(feature)
                continue
            keep = torch.randperm(len(feature["sentences"]))[:cap].sort().values.tolist()
            if fixed and len(keep) < cap:  # OpenNRE's bag_size: draw the bag's sentences again up to the size
                keep += torch.randint(len(feature["sentences"]), (cap - len(keep),)).tolist()
            sampled.append(
                {
                    **feature,
                    "sentences": [feature["sentences"][i] for i in keep],
                    "sentence_labels": [feature["sentence_labels"][i] for i in keep],
                    "sentence_index": keep,
                }
            )
        return sampled

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return self.collate_sampled(self.sample_sentences(features))

    def collate_sampled(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Tensors of bags whose sentences are already sampled (:meth:`sample_sentences`)."""
        flat = [sentence for f in features for sentence in f["sentences"]]
        input_ids, attention_mask = self.encoder.collate([s["input_ids"] for s in flat])
        sizes = [len(f["sentences"]) for f in features]
        bag_labels = torch.zeros(len(features), len(self.relations))
        for row, feature in enumerate(features):
            bag_labels[row, feature["bag_labels"]] = 1.0
        return {
            "input_ids": input_ids,  # (n_sent, seq)
            "attention_mask": attention_mask,  # (n_sent, seq)
            "head_span": torch.tensor([s["head"] for s in flat], dtype=torch.long),  # (n_sent, 2)
            "tail_span": torch.tensor([s["tail"] for s in flat], dtype=torch.long),  # (n_sent, 2)
            "sentence_bag": torch.repeat_interleave(torch.arange(len(features)), torch.tensor(sizes)),  # (n_sent,)
            "sentence_labels": torch.tensor([label for f in features for label in f["sentence_labels"]]),
            "bag_labels": bag_labels,  # (n_bags, n_relations) multi-hot, NA column set for NA bags
        }

    # ---------------------------------------------------------------- network

    def encode(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 1 and footnote 2 -> ``h_e1, h_e2, h_[CLS]``, each (n_sent, d)."""
        hidden, _ = self.encoder(batch["input_ids"], batch["attention_mask"])  # (n_sent, seq, d)
        hidden = hidden.float()
        return entity_mean(hidden, batch["head_span"]), entity_mean(hidden, batch["tail_span"]), hidden[:, 0]

    def sentence_representation(self, h_e1: torch.Tensor, h_e2: torch.Tensor, h_cls: torch.Tensor) -> torch.Tensor:
        """Eq. 2: ``h_S = tanh([h_e1 ‖ h_e2 ‖ h_[CLS]] W_S) + b_S`` -> (n_sent, d); ``pooling: entity_start``:
        ``[h_<head start> ‖ h_<tail start>] W_E + b_E`` -> (n_sent, 2d) (OpenNRE)."""
        if self.config.pooling == "entity_start":
            return self.W_E(torch.cat([h_e1, h_e2], dim=-1))
        return torch.tanh(self.W_S(torch.cat([h_e1, h_e2, h_cls], dim=-1))) + self.b_S

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
        explanations = attention_explanations(self.relations.relations, names, weights.unsqueeze(2), membership)
        return {"scores": scores, "explanations": explanations}


def group_scores(logits: torch.Tensor, bag_rows: torch.Tensor, n_bags: int) -> torch.Tensor:
    """Training groups' probabilities -> one row per bag (max over the bag's groups), detached."""
    probabilities = torch.softmax(logits.detach().float(), dim=-1)  # (n_groups, R)
    rows = bag_rows.unsqueeze(1).expand_as(probabilities)
    scores = torch.zeros(n_bags, probabilities.shape[1], device=logits.device)
    return scores.scatter_reduce(0, rows, probabilities, "amax", include_self=False)
