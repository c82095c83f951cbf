"""HIN: Hierarchical Inference Network for document-level RE (Tang et al., PAKDD 2020).

Input layer (§3.1): word vectors (GloVe, or transformer features mapped to words and projected to
100 d) + entity-type (20 d) + coreference (20 d) embeddings.

* Entity level (eqs. 1-5): ``BiLSTM_E`` over the document; mention = mean of its words, entity = mean
  of its mentions; ``K`` projections ``E^k = W1_k ReLU(W0_k E)``; per subspace
  ``I_e^k = [E_a^k R^k E_b^k; E_b^k - E_a^k; E_a^k; E_b^k]``;
  ``I_e = G_e([I_e^1..I_e^K; M(d_ba) - M(d_ab)])``.
* Sentence level (eqs. 6-10): ``BiLSTM_S`` per sentence, word attention -> ``S_j``;
  ``I_sj = G_s([S_j; I_e; S_j - I_e; S_j ∘ I_e])`` for every (pair, sentence), batched over all pairs.
* Document level (eqs. 11-14): ``BiLSTM_D`` over each pair's ``I_s1..I_sL``, sentence attention -> ``I_d``.
* Prediction (eqs. 15-16): ``sigmoid(W_r [I_e; I_d] + b_r)``, BCE; the global threshold δ is tuned on dev.

Ablations (Table 2) are switches: ``use_translation``, ``use_bilinear``, ``multispace`` (False: K = 1
and no projection), ``sentence_inference`` (False: ``BiLSTM_D`` reads ``S_j`` instead of ``I_sj``),
``hierarchical_aggregation`` (False: ``I_d`` = mean pooling of a BiLSTM over the document's words).
In eval mode each row's ``explanations`` entry holds the document-level attention ``a_j`` of every
sentence (eq. 13) as ``sentence_scores``; predictions turn them into ``evidence`` (:mod:`hiere.evidence`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from hiere.data.docred import Document
from hiere.data.padding import pad_sequences
from hiere.data.relations import RelationMap
from hiere.data.vocab import Vocab
from hiere.encoders.glove import DEFAULT as GLOVE_DEFAULT
from hiere.encoders.glove import glove_dim
from hiere.encoders.lstm import BiLSTM
from hiere.encoders.transformer import DEFAULT as ENCODER_DEFAULT
from hiere.encoders.words import GloVeWords, TransformerWords
from hiere.errors import HiereConfigError
from hiere.evidence import rows_of_scores
from hiere.models.base import HiereModel, ModelConfig, Resources
from hiere.models.doc.common import DISTANCE_BUCKETS, build_type_vocab, collate_documents, featurize_document
from hiere.models.layers import Bilinear, masked_softmax


@dataclass
class HINConfig(ModelConfig):
    zero_allowed: ClassVar[frozenset[str]] = frozenset({"window_overlap", "evidence_top_k"})  # 0 means none / off
    words: str = "glove"  # "glove" (HIN-GloVe) | "transformer" (HIN-BERT style features)
    glove: str = GLOVE_DEFAULT  # "default" (GloVe 6B 50d) or any GloVe text file
    freeze_embeddings: bool = True
    lowercase: bool = True
    min_count: int = 1
    encoder: str = ENCODER_DEFAULT  # "default" (all-MiniLM-L6-v2) or a local Hugging Face folder
    fine_tune: bool = False  # paper: transformer features are fixed; True trains the encoder too
    projection_dim: int = 100  # transformer features -> 100 d by a linear layer (§4.3)
    max_length: int = 512  # encoder window; longer documents use overlapping windows
    window_overlap: int = 128
    type_dim: int = 20
    coref_dim: int = 20
    distance_dim: int = 20
    hidden: int = 128  # LSTM hidden size; d = 2 * hidden
    dropout: float = 0.2
    num_subspaces: int = 2  # K (eq. 3)
    subspace_dim: int = 64  # size k of E_a^k; not given in the paper
    bilinear_dim: int | None = None  # output size of R^k (None: k, so R^k is k x k x k as in eq. 4)
    use_translation: bool = True  # E_b^k - E_a^k (eq. 4)
    use_bilinear: bool = True  # E_a^k R^k E_b^k (eq. 4)
    multispace: bool = True  # False: K = 1 without projection (E^1 = E)
    sentence_inference: bool = True  # False: BiLSTM_D reads the sentence vectors S_j
    hierarchical_aggregation: bool = True  # False: I_d = mean pooling of a BiLSTM over the document
    evidence_top_k: int | None = 3  # evidence sentences per fact at most (hiere.evidence.EvidenceRule)
    evidence_min_score: float | None = None  # and only sentences with attention at least this (chosen on dev)
    max_entities: int = 128  # coreference ids 1..max_entities


def sentence_layout(sent_spans: list[list[tuple[int, int]]], seq_len: int) -> dict[str, torch.Tensor]:
    """Index tensors that cut a padded ``(batch, seq)`` document batch into its sentences.

    ``sent_token_index`` (n_sents, max_sent_len): flat positions ``b * seq_len + t`` (0 on padding);
    ``sent_lengths`` (n_sents,); ``doc_sent_offset``/``doc_n_sents`` (batch,): each document's first
    global sentence id and its number of sentences.
    """
    rows, offsets, counts = [], [], []
    for b, spans in enumerate(sent_spans):
        offsets.append(len(rows))
        counts.append(len(spans))
        rows.extend([b * seq_len + t for t in range(start, end)] for start, end in spans)
    return {
        "sent_token_index": pad_sequences(rows),
        "sent_lengths": torch.tensor([len(r) for r in rows], dtype=torch.long),
        "doc_sent_offset": torch.tensor(offsets, dtype=torch.long),
        "doc_n_sents": torch.tensor(counts, dtype=torch.long),
    }


def equal_length_bilstm(bilstm: BiLSTM, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``bilstm`` over padded ``inputs`` (n, L, in), run once per distinct length.

    Rows of one length form a dense batch without padding: no step is computed for padding, which matters
    for BiLSTM_D, whose thousands of rows (pairs) share a few lengths (their documents' sentence counts).
    Returns (n, L, 2 * hidden), zeros on padding.
    """
    if lengths.numel() == 0:
        return inputs.new_zeros((*inputs.shape[:2], bilstm.output_size))
    groups, parts = [], []
    for length in torch.unique(lengths).tolist():
        rows = (lengths == length).nonzero().squeeze(1)
        states = bilstm(inputs[rows, : max(length, 1)], lengths[rows])  # (n_rows, length, 2 * hidden)
        groups.append(rows)
        parts.append(nn.functional.pad(states, (0, 0, 0, inputs.shape[1] - states.shape[1])))
    order = torch.cat(groups)  # row of each stacked output
    inverse = torch.empty_like(order).scatter_(0, order, torch.arange(len(order), device=order.device))
    return torch.cat(parts)[inverse]


class VanillaAttention(nn.Module):
    """``α = u^T tanh(W h + b)``, ``a = softmax(α)``, ``v = Σ a h`` (eqs. 7-9 and 12-14)."""

    def __init__(self, size: int):
        super().__init__()
        self.projection = nn.Linear(size, size)  # W, b
        self.context = nn.Linear(size, 1, bias=False)  # u

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """states (n, L, size), mask (n, L) -> pooled (n, size), weights (n, L)."""
        alpha = self.context(torch.tanh(self.projection(states))).squeeze(-1)  # (n, L), eq. 7 / 12
        weights = masked_softmax(alpha, mask)  # (n, L), eq. 8 / 13
        return torch.bmm(weights.unsqueeze(1), states).squeeze(1), weights  # (n, size), eq. 9 / 14


class EntityInference(nn.Module):
    """Entity-level inference, eqs. 3-5: subspace projections, bilinear and translation terms, G_e."""

    def __init__(self, config: HINConfig, entity_dim: int):
        super().__init__()
        self.config = config
        self.num_subspaces = config.num_subspaces if config.multispace else 1
        if self.num_subspaces < 1:
            raise HiereConfigError(f"model.num_subspaces must be >= 1, got {config.num_subspaces}")
        size = config.subspace_dim if config.multispace else entity_dim
        if config.multispace:  # eq. 3: W0_k (d x d), W1_k (d x k)
            self.project_in = nn.ModuleList(
                nn.Linear(entity_dim, entity_dim) for _ in range(self.num_subspaces)
            )
            self.project_out = nn.ModuleList(nn.Linear(entity_dim, size) for _ in range(self.num_subspaces))
        bilinear_dim = config.bilinear_dim or size
        if config.use_bilinear:  # R^k (eq. 4)
            self.bilinears = nn.ModuleList(
                Bilinear(size, size, bilinear_dim) for _ in range(self.num_subspaces)
            )
        per_space = (
            2 * size + (size if config.use_translation else 0) + (bilinear_dim if config.use_bilinear else 0)
        )
        self.distance_embedding = nn.Embedding(2 * DISTANCE_BUCKETS, config.distance_dim)  # M (eq. 5)
        self.G_e = nn.Sequential(
            nn.Linear(self.num_subspaces * per_space + config.distance_dim, entity_dim), nn.ReLU()
        )
        self.output_dim = entity_dim

    def subspace(self, entity: torch.Tensor, k: int) -> torch.Tensor:
        """Eq. 3: E^k = W1_k ReLU(W0_k E), (n_pairs, d) -> (n_pairs, k); identity without multispace."""
        if not self.config.multispace:
            return entity
        return self.project_out[k](torch.relu(self.project_in[k](entity)))

    def inference_vectors(
        self, head: torch.Tensor, tail: torch.Tensor,
        head_index: torch.Tensor | None = None, tail_index: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Eq. 4 for every subspace: [E_a^k R^k E_b^k; E_b^k - E_a^k; E_a^k; E_b^k] pieces.

        ``head``/``tail`` are per pair (n_pairs, d); or, with ``head_index``/``tail_index`` (n_pairs,), both the
        table of entities (n_entities, d): eq. 3 then projects each entity once, and the pairs gather E^k.
        """
        pieces = []
        for k in range(self.num_subspaces):
            if head_index is not None and tail_index is not None:
                space = self.subspace(head, k)  # (n_entities, k): E^k of every entity once
                head_k, tail_k = space[head_index], (space if tail is head else self.subspace(tail, k))[tail_index]
            else:
                head_k, tail_k = self.subspace(head, k), self.subspace(tail, k)  # (n_pairs, k)
            if self.config.use_bilinear:
                pieces.append(self.bilinears[k](head_k, tail_k))  # E_a^k R^k E_b^k
            if self.config.use_translation:
                pieces.append(tail_k - head_k)  # translation E_b^k - E_a^k
            pieces.extend([head_k, tail_k])
        return pieces

    def forward(
        self, head: torch.Tensor, tail: torch.Tensor, distance_ab: torch.Tensor, distance_ba: torch.Tensor,
        head_index: torch.Tensor | None = None, tail_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """head/tail (n_pairs, d) — or an entity table with indices, see :meth:`inference_vectors` —, distance
        buckets (n_pairs,) -> I_e (n_pairs, d), eq. 5."""
        distance = self.distance_embedding(distance_ba) - self.distance_embedding(
            distance_ab
        )  # M(d_ba) - M(d_ab)
        pieces = self.inference_vectors(head, tail, head_index, tail_index)
        return self.G_e(torch.cat([*pieces, distance], dim=-1))


class HIN(HiereModel):
    name = "hin"
    task = "doc"
    decision = "global"
    Config = HINConfig
    # before the word encoders (hiere.encoders.words) owned these weights
    renamed_weights: ClassVar[dict[str, str]] = {"word_embedding.": "encoder.",
                                                 "word_projection.": "encoder.word_projection."}

    def __init__(self, config: HINConfig, resources: Resources):
        super().__init__(config, resources)
        if config.words not in ("glove", "transformer"):
            raise HiereConfigError(f"model.words must be glove or transformer, got {config.words!r}")
        types = resources.vocabs["types"]
        self.encoder: GloVeWords | TransformerWords  # the input layer's word vectors (§3.1)
        if config.words == "glove":
            self.encoder = GloVeWords(resources.vocabs["words"], resources.extra["word_dim"], config.glove,
                                      config.freeze_embeddings)
        else:
            self.encoder = TransformerWords(config.encoder, resources.model_dir, config.max_length,
                                            config.window_overlap, config.projection_dim, config.fine_tune)
        word_dim = self.encoder.output_size
        self.type_embedding = nn.Embedding(len(types), config.type_dim, padding_idx=0)
        self.coref_embedding = nn.Embedding(config.max_entities + 1, config.coref_dim, padding_idx=0)
        self.dropout = nn.Dropout(config.dropout)
        input_dim = word_dim + config.type_dim + config.coref_dim
        d = 2 * config.hidden

        self.BiLSTM_E = BiLSTM(input_dim, config.hidden)  # eq. 1
        self.entity_inference = EntityInference(config, d)  # eqs. 3-5
        if config.hierarchical_aggregation:
            self.BiLSTM_S = BiLSTM(input_dim, config.hidden)  # eq. 6
            self.word_attention = VanillaAttention(d)  # eqs. 7-9
            if config.sentence_inference:
                self.G_s = nn.Sequential(nn.Linear(4 * d, d), nn.ReLU())  # eq. 10
            self.BiLSTM_D = BiLSTM(d, config.hidden)  # eq. 11
            self.sentence_attention = VanillaAttention(d)  # eqs. 12-14
        else:
            self.document_lstm = BiLSTM(input_dim, config.hidden)  # ablation: BiLSTM + mean pooling
        self.W_r = nn.Linear(2 * d, len(resources.relations))  # eq. 15

    # ---------------------------------------------------------------- resources and features

    @classmethod
    def build_resources(
        cls, config: HINConfig, train_examples: list[Document], relations: RelationMap
    ) -> Resources:
        types = build_type_vocab(train_examples)
        if config.words == "transformer":
            return Resources(relations, {"words": Vocab([]), "types": types}, {})
        words = Vocab.build((doc.tokens for doc in train_examples), config.lowercase, config.min_count)
        return Resources(relations, {"words": words, "types": types}, {"word_dim": glove_dim(config.glove)})

    def init_pretrained(self) -> None:
        self.encoder.init_pretrained()

    def save_assets(self, model_dir: Path) -> None:
        self.encoder.save_assets(model_dir)

    def featurize(self, example: Document) -> dict[str, Any]:
        """DocRED baseline inputs (:func:`featurize_document`); transformer words: subword ids and word
        spans, and with a frozen encoder the word features themselves (computed once, cached)."""
        if len(example.entities) > self.config.max_entities:
            raise ValueError(
                f"document {example.title!r} has more than max_entities={self.config.max_entities}"
            )
        vocabs = self.resources.vocabs
        features = featurize_document(example, vocabs["words"], vocabs["types"], self.relations)
        features.update(self.encoder.featurize_words(example))
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate_documents(features)
        batch.update(sentence_layout(batch["sent_spans"], batch["word_ids"].shape[1]))
        batch.update(self.encoder.collate_words(features))
        return batch

    # ---------------------------------------------------------------- forward

    def word_vectors(self, batch: dict[str, Any]) -> torch.Tensor:
        """Input layer (§3.1): [word; entity type; coreference] -> (batch, seq, input_dim)."""
        words = self.encoder.encode_words(batch)  # (batch, seq, word_dim)
        return torch.cat(
            [words, self.type_embedding(batch["type_ids"]), self.coref_embedding(batch["coref_ids"])], -1
        )

    def sentence_vectors(self, inputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Eqs. 6-9: BiLSTM_S per sentence, word attention -> S_j (n_sents, d) for all sentences."""
        flat = inputs.reshape(-1, inputs.shape[-1])  # (batch * seq, input_dim)
        index, lengths = batch["sent_token_index"], batch["sent_lengths"]
        words = flat[index]  # (n_sents, max_sent_len, input_dim)
        states = self.dropout(
            equal_length_bilstm(self.BiLSTM_S, words, lengths)
        )  # (n_sents, max_sent_len, d), eq. 6
        mask = torch.arange(index.shape[1], device=index.device)[None, :] < lengths[:, None]
        sentences, _ = self.word_attention(states, mask)  # (n_sents, d), eqs. 7-9
        return sentences

    def sentence_inference(
        self, sentences: torch.Tensor, entity: torch.Tensor, rows: torch.Tensor, row_sent: torch.Tensor
    ) -> torch.Tensor:
        """Eq. 10 for each (pair, sentence) row: I_sj = G_s([S_j; I_e; S_j - I_e; S_j ∘ I_e]).

        The first layer of G_s is linear, so W [S; I; S - I; S ∘ I] = (W1 + W3) S + (W2 - W3) I + W4 (S ∘ I):
        the S and I terms are computed once per sentence and once per pair, only the product per row.
        """
        linear = self.G_s[0]
        w_s, w_i, w_diff, w_prod = linear.weight.split(sentences.shape[-1], dim=1)  # (d, d) each
        per_sentence = sentences @ (w_s + w_diff).T  # (n_sents, d)
        per_pair = entity @ (w_i - w_diff).T + linear.bias  # (n_pairs, d)
        product = (sentences[row_sent] * entity[rows]) @ w_prod.T  # (n_rows, d)
        return self.G_s[1](per_sentence[row_sent] + per_pair[rows] + product)  # (n_rows, d)

    def document_inference(
        self, inputs: torch.Tensor, entity: torch.Tensor, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Eqs. 6-14 -> I_d (n_pairs, d), sentence attention a_j (n_pairs, L) and its mask (or None)."""
        pair_doc = batch["pair_doc"]
        if not self.config.hierarchical_aggregation:
            states = equal_length_bilstm(self.document_lstm, inputs, batch["lengths"])  # (batch, seq, d)
            mean = states.sum(dim=1) / batch["lengths"].clamp(min=1)[:, None].to(states.dtype)
            return mean[pair_doc], None, None
        sentences = self.sentence_vectors(inputs, batch)  # (n_sents, d)
        n_sents, offsets = batch["doc_n_sents"], batch["doc_sent_offset"]
        width = int(n_sents.max())
        position = torch.arange(width, device=n_sents.device)
        if not self.config.sentence_inference:  # ablation: BiLSTM_D reads S_j, once per document
            doc_mask = position[None, :] < n_sents[:, None]  # (batch, L)
            index = (offsets[:, None] + position[None, :]).clamp(max=sentences.shape[0] - 1)
            context = equal_length_bilstm(self.BiLSTM_D, sentences[index], n_sents)  # (batch, L, d), eq. 11
            document, weights = self.sentence_attention(context, doc_mask)  # eqs. 12-14
            return document[pair_doc], weights[pair_doc], doc_mask[pair_doc]
        counts = n_sents[pair_doc]  # (n_pairs,) sentences per pair
        rows = torch.repeat_interleave(
            torch.arange(len(pair_doc), device=pair_doc.device), counts
        )  # (n_rows,)
        row_j = torch.arange(len(rows), device=rows.device) - torch.repeat_interleave(
            counts.cumsum(0) - counts, counts
        )
        row_sent = offsets[pair_doc][rows] + row_j  # global sentence id of each (pair, sentence) row
        inference = self.dropout(self.sentence_inference(sentences, entity, rows, row_sent))  # (n_rows, d)
        padded = inference.new_zeros((len(pair_doc), width, inference.shape[-1]))
        padded = padded.index_put((rows, row_j), inference)  # (n_pairs, L, d)
        context = equal_length_bilstm(self.BiLSTM_D, padded, counts)  # (n_pairs, L, d), eq. 11
        mask = position[None, :] < counts[:, None]  # (n_pairs, L)
        document, weights = self.sentence_attention(context, mask)  # (n_pairs, d), eqs. 12-14
        return document, weights, mask

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        inputs = self.dropout(self.word_vectors(batch))  # (batch, seq, input_dim)
        states = self.dropout(
            equal_length_bilstm(self.BiLSTM_E, inputs, batch["lengths"])
        )  # (batch, seq, d), eq. 1
        entities = torch.bmm(batch["entity_map"], states)  # (batch, n_entities, d), eq. 2
        table = entities.reshape(-1, entities.shape[-1])  # (batch * n_entities, d)
        head = batch["pair_doc"] * entities.shape[1] + batch["pair_h"]  # row of E_a in the table (n_pairs,)
        tail = batch["pair_doc"] * entities.shape[1] + batch["pair_t"]  # row of E_b
        entity = self.entity_inference(
            table, table, batch["distance_ht"], batch["distance_th"], head, tail
        )  # I_e (n_pairs, d), eq. 5: eq. 3's projections once per entity, not once per pair side
        document, weights, mask = self.document_inference(inputs, self.dropout(entity), batch)  # I_d, eq. 14
        logits = self.W_r(self.dropout(torch.cat([entity, document], dim=-1))).float()  # (n_pairs, R), eq. 15
        output: dict[str, Any] = {"scores": torch.sigmoid(logits)}
        if self.training and batch.get("labels") is not None:
            output["loss"] = nn.functional.binary_cross_entropy_with_logits(logits, batch["labels"])  # eq. 16
        elif weights is not None:
            output["explanations"] = self.explain(weights, mask)
        return output

    def explain(self, weights: torch.Tensor, mask: torch.Tensor) -> list[dict[str, Any]]:
        """Per row: ``sentence_scores``, the document-level attention a_j of every sentence (eq. 13);
        :mod:`hiere.evidence` turns them into the fact's ``evidence``."""
        return rows_of_scores(weights.float().masked_fill(~mask, 0.0), mask.sum(dim=1).tolist())
