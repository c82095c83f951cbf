"""What the transformer document models (ATLOP, KMGRE) share: the document encoder and its pair machinery.

:class:`TransformerDocModel` holds a mention encoder (:mod:`hiere.encoders.mentions`: ``*`` markers around every
mention, long documents in overlapping windows), the candidate pairs and their labels, mention -> entity gathering
(ATLOP eq. 2 logsumexp) and the localized-context pooling from the encoder's own attention (ATLOP eqs. 6-7);
each head subclasses it (:mod:`hiere.models.doc.atlop`, :mod:`hiere.models.doc.kmgre`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from hiere.data.docred import Document
from hiere.encoders.mentions import MarkedMentions, MentionEncoder
from hiere.encoders.transformer import DEFAULT
from hiere.evidence import rows_of_scores
from hiere.losses import evidence_kl_loss
from hiere.models.base import HiereModel, ModelConfig, Resources


@dataclass
class TransformerDocConfig(ModelConfig):
    zero_allowed: ClassVar[frozenset[str]] = frozenset({"window_overlap"})  # 0 means none / off
    encoder: str = DEFAULT  # "default" (all-MiniLM-L6-v2 package) or a local Hugging Face folder
    max_length: int = 512  # encoder window; longer documents use overlapping windows
    window_overlap: int = 128  # minimum overlap of consecutive windows
    top_k: int | None = 4  # at most k relations per pair at inference (ATLOP num_labels); None: all above TH
    evidence_top_k: int | None = 3  # evidence sentences per fact at most (hiere.evidence.EvidenceRule)
    evidence_min_score: float | None = None  # and only sentences with at least this score (chosen on dev)
    evidence_loss_weight: float = 0.0  # DREEAM's evidence guidance: loss += weight * KL (0: off; DREEAM 0.1)


def block_problems(config: Any) -> list[str]:
    """The grouped bilinear splits ``emb_size`` into groups of ``block_size``."""
    if config.block_size and config.emb_size % config.block_size:
        return [f"model.emb_size={config.emb_size}: must be a multiple of model.block_size={config.block_size}"]
    return []


class TransformerDocModel(HiereModel):
    """Shared base of ATLOP and KMGRE: a mention encoder (:class:`~hiere.encoders.mentions.MarkedMentions`),
    the candidate pairs and their labels, and the localized-context pooling."""

    task = "doc"
    decision = "adaptive"
    # prediction batches hold at most this many subwords (hiere.training.inference.run_model): the mentions'
    # attention rows and the entity pairs of a batch grow with its documents' length, so documents of 2,000
    # words are read one at a time, while a batch of ordinary Re-DocRED documents stays whole
    predict_batch_tokens: ClassVar[int | None] = 4096

    def __init__(self, config: TransformerDocConfig, resources: Resources):
        super().__init__(config, resources)
        self.encoder: MentionEncoder = MarkedMentions(
            config.encoder, resources.model_dir, config.max_length, config.window_overlap
        )
        self.hidden_size = self.encoder.hidden_size

    def init_pretrained(self) -> None:
        self.encoder.init_pretrained()

    def save_assets(self, model_dir: Path) -> None:
        self.encoder.save_assets(model_dir)

    def featurize(self, example: Document) -> dict[str, Any]:
        """The encoder's features (:meth:`MarkedMentions.featurize_mentions`), the candidate pairs, their
        multi-hot labels and evidence sentences.

        Pairs are :meth:`Document.candidate_pairs` (all ordered pairs ``h != t``; chemical -> disease for
        BC5CDR); ``labels[:, 0] = 1`` iff the pair has no relation.
        """
        pairs = example.candidate_pairs()
        row_of = {pair: row for row, pair in enumerate(pairs)}
        labels = torch.zeros(len(pairs), len(self.relations))
        for fact in example.facts:
            if fact.r in self.relations and (fact.h, fact.t) in row_of:
                labels[row_of[(fact.h, fact.t)], self.relations[fact.r]] = 1.0
        labels[:, 0] = (labels[:, 1:].sum(dim=1) == 0).float()
        evidence = torch.zeros(len(pairs), len(example.sents))  # (n_pairs, n_sents): DREEAM's targets
        for fact in example.facts:
            if fact.evidence and (fact.h, fact.t) in row_of:
                evidence[row_of[(fact.h, fact.t)], list(fact.evidence)] = 1.0
        return {**self.encoder.featurize_mentions(example), "pairs": pairs, "labels": labels, "evidence": evidence}

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """The encoder's batch (:meth:`MarkedMentions.collate_mentions`) and the pairs:
        ``pair_doc``/``pair_head``/``pair_tail`` (n_pairs,), head and tail as flat entity ids;
        ``pairs`` = (position_in_batch, h, t)."""
        batch = self.encoder.collate_mentions(features)
        offsets = batch["entity_offsets"]
        pairs = [(b, h, t) for b, feature in enumerate(features) for h, t in feature["pairs"]]
        return {
            **batch,
            "pair_doc": torch.tensor([b for b, _, _ in pairs], dtype=torch.long),
            "pair_head": torch.tensor([offsets[b] + h for b, h, _ in pairs], dtype=torch.long),
            "pair_tail": torch.tensor([offsets[b] + t for b, _, t in pairs], dtype=torch.long),
            "pairs": pairs,
            "labels": torch.cat([f["labels"] for f in features]),
            "evidence": _pad_columns([f["evidence"] for f in features]),
        }

    def encode_mentions(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One encoder pass -> hidden (batch, seq, H), mention states (n_mentions, H) at the start markers,
        mention attention (n_mentions, heads, seq)."""
        return self.encoder.encode_mentions(batch)

    @staticmethod
    def localized_context(
        hidden: torch.Tensor,
        attention: torch.Tensor,
        first: torch.Tensor,
        second: torch.Tensor,
        pair_doc: torch.Tensor,
        chunk: int = 1024,
    ) -> torch.Tensor:
        """Localized context pooling (ATLOP eqs. 6-7): a = sum_heads(A_s * A_o) / 1^T(...), c = H^T a.

        ``hidden`` (batch, seq, H); ``attention`` (n_items, heads, seq) of entities or mentions;
        ``first``/``second`` (n_pairs,) item ids of the two arguments; ``pair_doc`` (n_pairs,) sorted by
        document. Pairs are processed in chunks and, when training, each chunk is recomputed in the
        backward pass (activation checkpointing), so memory stays ~ ``chunk * heads * seq``, not
        ``n_pairs * heads * seq``. Returns (n_pairs, H).
        """
        contexts = []
        for start in range(0, first.shape[0], chunk):
            stop = min(start + chunk, first.shape[0])
            arguments = (hidden, attention, first[start:stop], second[start:stop], pair_doc[start:stop])
            if torch.is_grad_enabled() and (hidden.requires_grad or attention.requires_grad):
                contexts.append(checkpoint(_context_chunk, *arguments, use_reentrant=False))
            else:
                contexts.append(_context_chunk(*arguments))
        if not contexts:
            return hidden.new_zeros((0, hidden.shape[-1]))
        return torch.cat(contexts)

    @staticmethod
    def sentence_mass(
        attention: torch.Tensor,
        first: torch.Tensor,
        second: torch.Tensor,
        pair_doc: torch.Tensor,
        token_sentence: torch.Tensor,
        chunk: int = 1024,
    ) -> torch.Tensor:
        """The localized-context weights a (eq. 7) summed over each sentence's tokens -> (n_pairs, max_sents):
        the evidence score of every sentence (as DREEAM reads evidence off ATLOP's attention)."""
        parts = []
        for start in range(0, first.shape[0], chunk):
            stop = min(start + chunk, first.shape[0])
            arguments = (attention, first[start:stop], second[start:stop], token_sentence, pair_doc[start:stop])
            if torch.is_grad_enabled() and attention.requires_grad:  # the evidence loss: recompute in backward
                parts.append(checkpoint(_sentence_chunk, *arguments, use_reentrant=False))
            else:
                parts.append(_sentence_chunk(*arguments))
        return torch.cat(parts) if parts else token_sentence.new_zeros((0, token_sentence.shape[-1]))

    def explain_sentences(
        self, batch: dict[str, Any], attention: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
        pair_doc: torch.Tensor,
    ) -> list[dict[str, Any]]:
        """Per row: ``sentence_scores``, the localized-context attention of each sentence of its document."""
        mass = self.sentence_mass(attention.float(), first, second, pair_doc, batch["token_sentence"].float())
        n_sents = [batch["doc_n_sents"][doc] for doc in pair_doc.tolist()]
        return rows_of_scores(mass, n_sents)

    def evidence_loss(
        self, batch: dict[str, Any], attention: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
        pair_doc: torch.Tensor, row_weights: torch.Tensor | None = None, rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """DREEAM's evidence loss on the pairs' localized-context attention (:func:`evidence_kl_loss`).

        ``first``/``second`` index ``attention`` (entities for ATLOP, mentions for KMGRE); with
        ``rows``/``row_weights`` (KMGRE) the mention pairs' sentence attention is fused into their entity
        pair's row by the fusion weights before the KL."""
        mass = self.sentence_mass(attention.float(), first, second, pair_doc, batch["token_sentence"].float())
        if rows is not None:  # in fp32: under bf16 autocast the mass comes out of its matmul in bf16
            fused = mass.new_zeros((len(batch["pairs"]), mass.shape[1]), dtype=torch.float)
            mass = fused.index_add(0, rows, mass.float() * row_weights.float()[:, None])  # (n_rows, max_sents)
        return evidence_kl_loss(mass, batch["evidence"].to(mass.device))

    @staticmethod
    def empty_loss(reference: torch.Tensor) -> torch.Tensor:
        return reference.sum() * 0.0


def _context_chunk(
    hidden: torch.Tensor,
    attention: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    docs: torch.Tensor,
) -> torch.Tensor:
    return _pool_by_document(_context_weights(attention, first, second), hidden, docs)  # c = H^T a


def _sentence_chunk(
    attention: torch.Tensor, first: torch.Tensor, second: torch.Tensor, token_sentence: torch.Tensor, docs: torch.Tensor
) -> torch.Tensor:
    return _pool_by_document(_context_weights(attention, first, second), token_sentence, docs)  # (chunk, max_sents)


def _context_weights(attention: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """ATLOP eqs. 6-7 -> a (chunk, seq): the arguments' attention multiplied, heads averaged, normalised."""
    weights = (attention[first] * attention[second]).mean(dim=1)  # (chunk, seq): eq. 6, heads averaged
    return weights / (weights.sum(dim=-1, keepdim=True) + 1e-5)  # eq. 7: a = q / 1^T q


def _pad_columns(rows: list[torch.Tensor]) -> torch.Tensor:
    """(n_i, s_i) tensors -> one (sum n_i, max s_i) tensor, zero-padded on the right."""
    width = max((row.shape[1] for row in rows), default=1)
    return torch.cat([nn.functional.pad(row, (0, width - row.shape[1])) for row in rows]) if rows else torch.zeros(0, 1)


def _pool_by_document(weights: torch.Tensor, hidden: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
    """``weights`` (n, seq) of pairs sorted by document -> (n, H): each row times its document's hidden."""
    out = []
    boundaries = torch.unique_consecutive(docs, return_counts=True)
    start = 0
    for doc, count in zip(boundaries[0].tolist(), boundaries[1].tolist(), strict=True):
        out.append(weights[start : start + count] @ hidden[doc].to(weights.dtype))  # (count, H)
        start += count
    return torch.cat(out) if out else weights.new_zeros((0, hidden.shape[-1]))


CLASSIFY_CHUNK = 256  # entity pairs per grouped-bilinear call: (256, emb_size * block_size) at most at a time


def classify_in_chunks(classify: Any, first: torch.Tensor, second: torch.Tensor, chunk: int = CLASSIFY_CHUNK
                       ) -> torch.Tensor:
    """``classify(first, second)`` over the rows ``chunk`` at a time -> the same logits as one call.

    The grouped bilinear's input (n, emb_size * block_size) is the largest tensor of ATLOP: 196 KB a pair in
    fp32, so a batch of four documents with 3,000 entity pairs would hold 0.6 GB of it, more with its bf16
    copy and, in the backward pass, its gradient. In chunks, and when training recomputed chunk by chunk in
    the backward pass (activation checkpointing), at most ``chunk`` rows of it exist at once.
    """
    if len(first) <= chunk:
        grad = torch.is_grad_enabled() and (first.requires_grad or second.requires_grad)
        return checkpoint(classify, first, second, use_reentrant=False) if grad else classify(first, second)
    parts = [classify_in_chunks(classify, first[start : start + chunk], second[start : start + chunk], chunk)
             for start in range(0, len(first), chunk)]
    return torch.cat(parts)


PREDICT_PAIR_CHUNK = 4096  # pairs whose context and extractor states exist at once in prediction
MEAN_ENTITY_CHUNK = 64  # entities whose mentions' attention rows are gathered at once in prediction


def in_pair_chunks(function: Any, *pair_tensors: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """``function(*pair_tensors)`` over the pairs ``chunk`` (default :data:`PREDICT_PAIR_CHUNK`) at a time,
    results concatenated (prediction: no gradient, so nothing of a chunk outlives it but its result)."""
    chunk = chunk or PREDICT_PAIR_CHUNK
    count = len(pair_tensors[0])
    if count <= chunk:
        return function(*pair_tensors)
    return torch.cat([function(*(tensor[start : start + chunk] for tensor in pair_tensors))
                      for start in range(0, count, chunk)])


def grouped_bilinear(first: torch.Tensor, second: torch.Tensor, block_size: int) -> torch.Tensor:
    """ATLOP eq. 5 input: split into k = d / block groups, outer product per group -> (n, d * block)."""
    n, size = first.shape
    groups_first = first.view(n, size // block_size, block_size, 1)
    groups_second = second.view(n, size // block_size, 1, block_size)
    return (groups_first * groups_second).reshape(n, size * block_size)


def logsumexp_entities(mention_states: torch.Tensor, entity_mentions: torch.Tensor) -> torch.Tensor:
    """ATLOP eq. 2: h_e = log sum_j exp(h_{m_j}) over the entity's mentions -> (n_entities, H)."""
    mask = entity_mentions >= 0  # (n_entities, max_mentions)
    gathered = mention_states[entity_mentions.clamp(min=0)]  # (n_entities, max_mentions, H)
    gathered = gathered.masked_fill(~mask[..., None], float("-inf"))
    return torch.logsumexp(gathered.float(), dim=1)


def mean_entities(mention_values: torch.Tensor, entity_mentions: torch.Tensor, chunk: int | None = None
                  ) -> torch.Tensor:
    """Mean over each entity's mentions (ATLOP's entity-level attention A^E): (n_entities, ...).

    The gathered (n_entities, max_mentions, heads, seq) tensor of a batch of long documents, with an entity of
    many mentions among them, can take gigabytes; without gradients it is made ``chunk`` (default
    :data:`MEAN_ENTITY_CHUNK`) entities at a time (each entity's mean is the same either way)."""
    chunk = chunk or MEAN_ENTITY_CHUNK
    if not torch.is_grad_enabled() and len(entity_mentions) > chunk:
        return torch.cat([mean_entities(mention_values, entity_mentions[start : start + chunk], chunk)
                          for start in range(0, len(entity_mentions), chunk)])
    mask = (entity_mentions >= 0).to(mention_values.dtype)  # (n_entities, max_mentions)
    gathered = mention_values[entity_mentions.clamp(min=0)]  # (n_entities, max_mentions, ...)
    shape = mask.shape + (1,) * (gathered.dim() - 2)
    return (gathered * mask.view(shape)).sum(dim=1) / mask.sum(dim=1).clamp(min=1).view(-1, *shape[2:])
