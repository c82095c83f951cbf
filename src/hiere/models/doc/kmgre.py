"""KMGRE: Key Mention pairs Guided document-level Relation Extraction (Jiang et al., COLING 2022).

An entity pair is a bag (multiple-instance learning) whose instances are its mention pairs (m_i, m_j).
Both modules read the same single encoder pass (ATLOP encoder with ``*`` markers, long documents in
windows; see :class:`~hiere.models.doc.atlop.TransformerDocModel`):

* relation extractor θ: x(i,j) = [h_mi; h_mj; c(i,j)] with c(i,j) the localized context of the two
  mentions' attention (ATLOP eq. 6-7 at mention level); p_θ(y_c | m_i, m_j) = σ(w_c x(i,j) + b_c).
  Column 0 of w is the threshold class TH of the adaptive-threshold loss.
* key-instance classifier ω: its own projection x'(i,j) = tanh(W'[h_mi; h_mj; c(i,j)] + b') and
  p_ω(z(i,j) = 1 | m_i, m_j) = σ(w_k x'(i,j) + b_k). ω reads the encoder states through a stop-gradient,
  so the E-step loss updates ω only and the M-step loss updates θ (encoder + extractor) only.

Training: ``warmup_epochs`` epochs pre-train both modules (θ on the mean of all mention pairs, ω on the
E-step targets), then EM. Each batch runs both steps from one forward pass:

* E-step (eq. 9): pseudo label ẑ(i,j) = 1 iff, for some gold relation c of the entity pair,
  p_θ(y_c | m_i, m_j) >= p̄_θ(y_c | e_h, e_t), the mean over the entity pair's mention pairs; L_ω is the
  binary focal loss between p_ω and ẑ.
* M-step (eq. 15-16): key pairs K(h,t) = {(i,j): p_ω(z | m_i, m_j) >= mean over the entity pair's mention
  pairs}; entity-pair logits l(h,t) = mean over K of (w x(i,j) + b) (for the linear extractor this is the
  classifier applied to the fused representation); L_θ = adaptive-threshold loss on l(h,t).

Inference always uses the key-pair fusion; ``explanations`` list each row's key mention pairs.

Ablations (config switches): ``em: false`` — no EM: no pseudo labels or focal loss, the fusion weights
are p_ω normalised over the entity pair and ω learns end to end from the adaptive-threshold loss;
``key_instance_classifier: false`` — no ω: the key pairs are chosen by the extractor's own confidence
(max_c p_θ >= the pair's mean); ``fusion: mean`` — entity logits are the mean over all mention pairs.

Memory: an entity pair contributes at most ``max_mention_pairs`` mention pairs (the closest ones by
sentence distance, then by mention order); the localized context is computed in chunks of
``pair_chunk`` mention pairs with activation checkpointing. Prediction (no gradient) runs everything after
the encoder over chunks of whole entity-pair rows with at most :data:`PREDICT_MENTION_PAIR_CHUNK` mention
pairs (:func:`row_chunks`), so only one chunk's (mention pair, ...) tensors exist at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from hiere.errors import HiereConfigError
from hiere.losses import adaptive_threshold_loss, adaptive_threshold_scores, binary_focal_loss
from hiere.models.base import Resources
from hiere.models.doc.transformer_doc import (
    CLASSIFY_CHUNK,
    TransformerDocConfig,
    TransformerDocModel,
    block_problems,
    classify_in_chunks,
    grouped_bilinear,
)

FUSIONS = ("key", "mean")
EXTRACTORS = ("linear", "bilinear")
PREDICT_MENTION_PAIR_CHUNK = 16384  # mention pairs whose context, extractor and key tensors exist at once in prediction


@dataclass(frozen=True)
class RowChunk:
    """Entity-pair rows ``row_start:row_stop`` of a batch and their mention pairs ``start:stop``."""

    row_start: int
    row_stop: int
    start: int
    stop: int


class FusedRows(NamedTuple):
    """A chunk's mention pairs (p of them) fused into its rows (n of them)."""

    pair_logits: torch.Tensor  # (p, R): w_c x(i,j) + b_c
    key_logits: torch.Tensor | None  # (p,): logit of p_ω(z | m_i, m_j); None without ω
    pair_row: torch.Tensor  # (p,): row within the chunk
    pair_doc: torch.Tensor  # (p,): document in the batch
    weights: torch.Tensor  # (p,): fusion weights, sum 1 per row
    entity_logits: torch.Tensor  # (n, R): l(h,t), eq. 16
    scores: torch.Tensor  # (n, R): adaptive-threshold scores


@dataclass
class KMGREConfig(TransformerDocConfig):
    zero_allowed: ClassVar[frozenset[str]] = frozenset({"window_overlap", "warmup_epochs", "explain_pairs"})
    warmup_epochs: int = 2  # "pre-train both modules for several epochs", then EM
    em: bool = True  # ablation "w/o EM"
    key_instance_classifier: bool = True  # ablation "w/o key instance classifier"
    fusion: str = "key"  # key (paper) | mean (ablation: mean over all mention pairs)
    extractor: str = "linear"  # linear: σ(w_c x + b_c) (paper) | bilinear: ATLOP's grouped bilinear on x
    key_size: int = 384  # size of ω's own projection x'
    focal_gamma: float = 2.0
    focal_alpha: float | None = None
    key_loss_weight: float = 1.0
    max_mention_pairs: int = 64  # per entity pair (closest by sentence distance kept)
    pair_chunk: int = 1024  # mention pairs per chunk of the localized-context computation
    explain_pairs: int = 3  # key mention pairs listed per predicted fact
    emb_size: int = 768  # bilinear extractor only
    block_size: int = 64  # bilinear extractor only

    def range_problems(self) -> list[str]:
        problems = super().range_problems()
        if self.fusion not in FUSIONS:
            problems.append(f"model.fusion={self.fusion!r}: must be one of {', '.join(FUSIONS)}")
        if self.extractor not in EXTRACTORS:
            problems.append(f"model.extractor={self.extractor!r}: must be one of {', '.join(EXTRACTORS)}")
        return problems + (block_problems(self) if self.extractor == "bilinear" else [])


class KMGRE(TransformerDocModel):
    name = "kmgre"
    Config = KMGREConfig

    def __init__(self, config: KMGREConfig, resources: Resources):
        super().__init__(config, resources)
        problems = config.range_problems()
        if problems:
            raise HiereConfigError("; ".join(problems))
        n_relations, hidden = len(resources.relations), self.hidden_size
        if config.extractor == "linear":
            self.relation_classifier = nn.Linear(3 * hidden, n_relations)  # w_c, b_c: p_θ(y_c | m_i, m_j)
        else:
            self.head_extractor = nn.Linear(2 * hidden, config.emb_size)
            self.tail_extractor = nn.Linear(2 * hidden, config.emb_size)
            self.relation_classifier = nn.Linear(config.emb_size * config.block_size, n_relations)
        if config.key_instance_classifier:
            self.key_projection = nn.Linear(3 * hidden, config.key_size)  # W': ω's own x'(i,j)
            self.key_classifier = nn.Linear(config.key_size, 1)  # w_k, b_k: p_ω(z | m_i, m_j)
        self.epoch = 0

    def on_epoch_start(self, epoch: int, total_epochs: int | None = None) -> None:
        """``epoch`` counts from 1 (as the trainer does): epochs 1..warmup_epochs are the warm-up."""
        self.epoch = epoch

    @property
    def warming_up(self) -> bool:
        return self.training and self.config.em and self.epoch <= self.config.warmup_epochs

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Adds every entity pair's mention pairs: ``mention_pairs`` (P, 2) flat mention ids,
        ``mention_pair_row`` (P,) score row; ``mention_pair_local``: (i, j) within h and t."""
        batch = super().collate(features)
        entity_mentions = batch["entity_mentions"].tolist()
        sents = batch["mention_sent"]
        pairs, rows, local = [], [], []
        for row, (head, tail) in enumerate(
            zip(batch["pair_head"].tolist(), batch["pair_tail"].tolist(), strict=True)
        ):
            heads = [m for m in entity_mentions[head] if m >= 0]
            tails = [m for m in entity_mentions[tail] if m >= 0]
            candidates = [
                (abs(sents[a] - sents[b]), i, j, a, b)
                for i, a in enumerate(heads)
                for j, b in enumerate(tails)
            ]
            if len(candidates) > self.config.max_mention_pairs:
                candidates = sorted(candidates)[: self.config.max_mention_pairs]
            for _, i, j, a, b in candidates:
                pairs.append((a, b))
                rows.append(row)
                local.append((i, j))
        batch["mention_pairs"] = torch.tensor(pairs, dtype=torch.long).view(-1, 2)
        batch["mention_pair_row"] = torch.tensor(rows, dtype=torch.long)
        batch["mention_pair_local"] = local
        return batch

    def mention_pair_logits(
        self, mention_states: torch.Tensor, context: torch.Tensor, first: torch.Tensor, second: torch.Tensor
    ) -> torch.Tensor:
        """w_c x(i,j) + b_c for every relation c -> (n_mention_pairs, R)."""
        if self.config.extractor == "linear":
            x = torch.cat([mention_states[first], mention_states[second], context], dim=-1)  # (P, 3H)
            return self.relation_classifier(x).float()
        z_head = torch.tanh(self.head_extractor(torch.cat([mention_states[first], context], dim=-1)))
        z_tail = torch.tanh(self.tail_extractor(torch.cat([mention_states[second], context], dim=-1)))
        # the (P, emb_size * block_size) products CLASSIFY_CHUNK mention pairs at a time (training: recomputed in
        # the backward pass), as ATLOP's entity pairs
        return classify_in_chunks(self.classify, z_head, z_tail, chunk=CLASSIFY_CHUNK)

    def classify(self, z_head: torch.Tensor, z_tail: torch.Tensor) -> torch.Tensor:
        """Bilinear extractor: ATLOP's grouped bilinear on the mention pairs -> logits (P, R)."""
        return self.relation_classifier(grouped_bilinear(z_head, z_tail, self.config.block_size)).float()

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        config = self.config
        # hidden (B, L, H), mention states (M, H), mention attention (M, heads, L)
        hidden, mention_states, mention_attention = self.encode_mentions(batch)
        encoded = (hidden, mention_states.float(), mention_attention)
        if not torch.is_grad_enabled():  # prediction: one chunk of rows' (mention pair, ...) tensors at a time
            return self.predict_in_row_chunks(batch, encoded)
        n_rows = len(batch["pairs"])
        whole = RowChunk(0, n_rows, 0, len(batch["mention_pair_row"]))
        fused = self.fuse_rows(batch, encoded, whole)
        pair_logits, key_logits, pair_row, weights = fused.pair_logits, fused.key_logits, fused.pair_row, fused.weights
        output: dict[str, Any] = {"scores": fused.scores}
        labels = batch.get("labels")
        if labels is not None and n_rows:
            loss = adaptive_threshold_loss(fused.entity_logits, labels)  # M-step: updates θ
            output["loss_terms"] = {"adaptive_threshold": loss.detach()}
            if key_logits is not None and config.em:
                targets = self.pseudo_labels(pair_logits.detach(), labels, pair_row, n_rows)  # E-step, eq. 9
                focal = binary_focal_loss(key_logits, targets, config.focal_gamma, config.focal_alpha)
                output["loss_terms"]["key_focal"] = focal.detach()
                loss = loss + config.key_loss_weight * focal
            if config.evidence_loss_weight > 0:  # DREEAM's guidance on the fused mention-pair attention
                evidence = self.evidence_loss(
                    batch, mention_attention, batch["mention_pairs"][:, 0], batch["mention_pairs"][:, 1],
                    fused.pair_doc, weights.detach(), pair_row,
                )
                output["loss_terms"]["evidence"] = evidence.detach()
                loss = loss + config.evidence_loss_weight * evidence
            output["loss"] = loss
        elif labels is not None:
            output["loss"] = self.empty_loss(pair_logits)
        if not self.training:
            output["explanations"] = self.explain(batch, whole, fused)
        return output

    def predict_in_row_chunks(self, batch: dict[str, Any], encoded: tuple) -> dict[str, Any]:
        """Prediction (no gradient): scores, and in eval mode explanations, of whole entity-pair rows whose mention
        pairs stay within :data:`PREDICT_MENTION_PAIR_CHUNK` at a time (fusion is per row, so this is exact).
        A document of 2,000 tokens has ~35,000 entity pairs and a few hundred thousand mention pairs, whose
        (mention pair, 3H) tensors need not coexist. No loss: nothing is learned from it."""
        scores, explanations = [], []
        for chunk in row_chunks(batch["mention_pair_row"], len(batch["pairs"]), PREDICT_MENTION_PAIR_CHUNK):
            fused = self.fuse_rows(batch, encoded, chunk)
            scores.append(fused.scores)
            if not self.training:
                explanations.extend(self.explain(batch, chunk, fused))
        output: dict[str, Any] = {"scores": torch.cat(scores)}
        if not self.training:
            output["explanations"] = explanations
        return output

    def fuse_rows(self, batch: dict[str, Any], encoded: tuple, chunk: RowChunk) -> FusedRows:
        """The rows of ``chunk`` from their mention pairs: extractor and key logits, fusion weights, the rows'
        entity logits l(h,t) (eq. 16) and scores. ``encoded``: hidden, mention states, mention attention."""
        first, second = batch["mention_pairs"][chunk.start : chunk.stop].unbind(dim=-1)  # (p,) each
        pair_row = batch["mention_pair_row"][chunk.start : chunk.stop] - chunk.row_start  # (p,), rows of the chunk
        n_rows = chunk.row_stop - chunk.row_start
        pair_doc = batch["pair_doc"][chunk.row_start : chunk.row_stop][pair_row]  # (p,)
        pair_logits, key_logits = self.pair_logits_and_keys(encoded, first, second, pair_doc)
        weights = self.fusion_weights(pair_logits, key_logits, pair_row, n_rows)  # (p,), sum 1 per row
        entity_logits = torch.zeros(n_rows, pair_logits.shape[1], device=pair_logits.device).index_add(
            0, pair_row, pair_logits * weights[:, None]
        )  # (n_rows, R), eq. 16
        scores = adaptive_threshold_scores(entity_logits, self.config.top_k)
        return FusedRows(pair_logits, key_logits, pair_row, pair_doc, weights, entity_logits, scores)

    def mention_pair_logits_and_keys(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One encoder pass -> every mention pair's extractor logits (P, R) and key-instance logits (P,)
        (None without ω)."""
        hidden, mention_states, mention_attention = self.encode_mentions(batch)
        first, second = batch["mention_pairs"].unbind(dim=-1)
        pair_doc = batch["pair_doc"][batch["mention_pair_row"]]  # (P,)
        return self.pair_logits_and_keys((hidden, mention_states.float(), mention_attention), first, second, pair_doc)

    def pair_logits_and_keys(
        self, encoded: tuple, first: torch.Tensor, second: torch.Tensor, pair_doc: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mention pairs (first, second, their document) -> extractor logits (p, R), key logits (p,) or None."""
        config = self.config
        hidden, mention_states, mention_attention = encoded
        context = self.localized_context(
            hidden, mention_attention, first, second, pair_doc, config.pair_chunk
        ).float()  # c(i,j): (p, H)
        pair_logits = self.mention_pair_logits(mention_states, context, first, second)  # (p, R)

        key_logits = None
        if config.key_instance_classifier:
            # (p, 3H), stop-gradient: the E-step loss reaches ω only
            x_key = torch.cat([mention_states[first], mention_states[second], context], dim=-1).detach()
            x_key = torch.tanh(self.key_projection(x_key))  # x'(i,j)
            key_logits = self.key_classifier(x_key).squeeze(-1).float()  # (p,): logit of p_ω(z | m_i, m_j)
        return pair_logits, key_logits

    def fusion_weights(
        self, pair_logits: torch.Tensor, key_logits: torch.Tensor | None, pair_row: torch.Tensor, n_rows: int
    ) -> torch.Tensor:
        """Weight of each mention pair in its entity pair's logits (rows sum to 1)."""
        config = self.config
        if config.fusion == "mean" or self.warming_up:
            selected = torch.ones_like(pair_row, dtype=torch.float)
        elif key_logits is None:  # w/o key-instance classifier: the extractor's own confidence
            confidence = torch.sigmoid(pair_logits.detach()[:, 1:]).max(dim=-1).values  # (P,)
            selected = (confidence >= segment_mean(confidence, pair_row, n_rows)[pair_row]).float()
        elif not config.em:  # w/o EM: soft p_ω weights learned end to end
            selected = torch.sigmoid(key_logits)
        else:  # key pairs: p_ω >= the entity pair's mean p_ω
            p_key = torch.sigmoid(key_logits.detach())
            selected = (p_key >= segment_mean(p_key, pair_row, n_rows)[pair_row]).float()
        totals = torch.zeros(n_rows, device=selected.device).index_add(0, pair_row, selected)
        return selected / totals[pair_row].clamp_min(1e-12)

    @staticmethod
    def pseudo_labels(
        pair_logits: torch.Tensor, labels: torch.Tensor, pair_row: torch.Tensor, n_rows: int
    ) -> torch.Tensor:
        """E-step, eq. 9: ẑ(i,j) = 1 iff p_θ(y_c|m_i,m_j) >= p̄_θ(y_c|e_h,e_t) for a gold relation c."""
        probabilities = torch.sigmoid(pair_logits[:, 1:])  # (P, R-1)
        mean = segment_mean(probabilities, pair_row, n_rows)  # (n_rows, R-1)
        gold = labels[:, 1:].to(probabilities.device)[pair_row] > 0  # (P, R-1)
        return ((probabilities >= mean[pair_row]) & gold).any(dim=-1).float()

    def explain(self, batch: dict[str, Any], chunk: RowChunk, fused: FusedRows) -> list[dict[str, Any] | None]:
        """Key mention pairs of each row of ``chunk`` predicted to hold a relation: mention indices within the
        head and tail entities, their sentence ids and p_ω (or p_θ's max without the key-instance classifier).

        ``sentence_scores``: per sentence of the document, the strongest key pair with its head or tail
        mention there (0 where none), which :mod:`hiere.evidence` turns into the fact's ``evidence``."""
        key_logits = fused.key_logits
        predicted = (fused.scores[:, 1:] >= 0).any(dim=-1).tolist()
        if key_logits is not None:
            strength = torch.sigmoid(key_logits)
        else:
            strength = torch.sigmoid(fused.pair_logits[:, 1:]).max(dim=-1).values
        strength_list, weight_list = strength.tolist(), fused.weights.tolist()
        rows = fused.pair_row.tolist()
        flat_pairs = batch["mention_pairs"][chunk.start : chunk.stop].tolist()
        sents, local = batch["mention_sent"], batch["mention_pair_local"][chunk.start : chunk.stop]
        by_row: dict[int, list[int]] = {}
        for index, row in enumerate(rows):
            if predicted[row] and weight_list[index] > 0:
                by_row.setdefault(row, []).append(index)
        explanations: list[dict[str, Any] | None] = [None] * len(predicted)
        name = "p_key" if key_logits is not None else "p_relation"
        pair_doc = batch["pair_doc"][chunk.row_start : chunk.row_stop].tolist()
        for row, indices in by_row.items():
            indices.sort(key=lambda index: -strength_list[index])
            sentence_scores = [0.0] * batch["doc_n_sents"][pair_doc[row]]
            for index in indices:
                for mention in flat_pairs[index]:
                    sent_id = sents[mention]
                    sentence_scores[sent_id] = max(sentence_scores[sent_id], round(strength_list[index], 6))
            explanations[row] = {
                "sentence_scores": sentence_scores,
                "key_mention_pairs": [
                    {
                        "h_mention": local[index][0],
                        "t_mention": local[index][1],
                        "h_sent": sents[flat_pairs[index][0]],
                        "t_sent": sents[flat_pairs[index][1]],
                        name: round(strength_list[index], 4),
                    }
                    for index in indices[: self.config.explain_pairs]
                ]
            }
        return explanations


def row_chunks(pair_row: torch.Tensor, n_rows: int, bound: int) -> list[RowChunk]:
    """Consecutive whole rows whose mention pairs (``pair_row`` (P,), nondecreasing) number at most ``bound``
    per chunk; a row with more than ``bound`` mention pairs is a chunk of its own. Always one chunk at least."""
    counts = torch.bincount(pair_row, minlength=n_rows).tolist()
    chunks, row_start, start, size = [], 0, 0, 0
    for row, count in enumerate(counts):
        if size and size + count > bound:
            chunks.append(RowChunk(row_start, row, start, start + size))
            row_start, start, size = row, start + size, 0
        size += count
    chunks.append(RowChunk(row_start, n_rows, start, start + size))
    return chunks


def segment_mean(values: torch.Tensor, segment: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Mean of ``values`` (n, ...) per segment id (n,) -> (n_segments, ...)."""
    totals = torch.zeros((n_segments, *values.shape[1:]), device=values.device, dtype=values.dtype)
    totals = totals.index_add(0, segment, values)
    counts = torch.zeros(n_segments, device=values.device, dtype=values.dtype).index_add(
        0, segment, torch.ones_like(segment, dtype=values.dtype)
    )
    return totals / counts.clamp_min(1).view(-1, *([1] * (values.dim() - 1)))
