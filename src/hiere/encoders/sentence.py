"""Sentence encoders of the bag models: one bag sentence (tokens + head and tail spans) -> one vector.

A bag head (selective attention, HNRE's hierarchical attention, HiCLRE) reads sentence vectors and never
looks inside the encoder, so every head takes every encoder (``model.encoder`` in a bag config):

* ``cnn`` / ``pcnn`` -> :class:`CNNSentenceEncoder` (GloVe words + position embeddings, a convolution and
  max / piecewise max pooling; :mod:`hiere.encoders.cnn`);
* ``transformer`` -> :class:`TransformerSentenceEncoder` (any local Hugging Face encoder; the sentence
  vector of Li et al. 2022 eq. 2, or OpenNRE's entity-start pooling).

The interface (:class:`SentenceEncoder`) is four methods and a size; the methods have their own names
(``featurize_sentence``, ``collate_sentences``, ``encode_sentences``) so that an encoder can also keep the
methods of the module it extends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from hiere.data.bags import BagSentence
from hiere.data.vocab import Vocab
from hiere.encoders.cnn import CNNEncoder, collate_sentences, sentence_features
from hiere.encoders.glove import DEFAULT as GLOVE_DEFAULT
from hiere.encoders.transformer import DEFAULT as TRANSFORMER_DEFAULT
from hiere.encoders.transformer import FUSED_ATTENTION, TransformerEncoder
from hiere.errors import HiereConfigError

SENTENCE_POOLINGS = ("paper", "entity_start")
ENTITY_START_MARKERS = ("[unused0]", "[unused1]", "[unused2]", "[unused3]")  # head start/end, tail start/end
INFERENCE_CHUNK = 256  # sentences per encoder call when no gradient is needed (TransformerSentenceEncoder)
TRAINING_GROUP = 16  # sentences per encoder call in training, grouped by length (TransformerSentenceEncoder)
KEPT_SUBWORDS = 2048  # default subwords of a training step whose encoder activations stay in memory until
# backward (about 180 KB each for MiniLM under bf16); the groups past it are recomputed in backward
# (TransformerSentenceEncoder, ``model.kept_subwords``)


@runtime_checkable
class SentenceEncoder(Protocol):
    """What a bag head needs of a sentence encoder."""

    output_size: int  # size of each sentence vector

    def featurize_sentence(self, sentence: BagSentence) -> dict[str, Any]:
        """One sentence -> plain Python features (lists of ids and spans), computed once per example."""

    def collate_sentences(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """The features of ``n_sent`` sentences -> batch tensors."""

    def encode_sentences(self, batch: dict[str, Any]) -> torch.Tensor:
        """Batch tensors -> sentence vectors ``(n_sent, output_size)``."""

    def init_pretrained(self) -> None:
        """A new run only: copy pretrained weights in (GloVe vectors, Hugging Face weights)."""

    def save_assets(self, model_dir: Path) -> None:
        """Files besides the weights that loading needs (a tokenizer and model config)."""


class CNNSentenceEncoder(CNNEncoder):
    """The CNN / PCNN encoder of :mod:`hiere.encoders.cnn` bound to its word vocabulary."""

    def __init__(self, words: Vocab, glove: str = GLOVE_DEFAULT, **options: Any):
        super().__init__(len(words), **options)
        self.words, self.glove = words, glove

    def featurize_sentence(self, sentence: BagSentence) -> dict[str, Any]:
        return sentence_features(sentence, self.words, self.max_length)

    def collate_sentences(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return collate_sentences(features)

    def encode_sentences(self, batch: dict[str, Any]) -> torch.Tensor:
        return self(batch)

    def init_pretrained(self) -> None:
        self.word_embedding.load_pretrained(self.words, self.glove)

    def save_assets(self, model_dir: Path) -> None:
        """Nothing: the vocabulary is one of the model's resources."""


class TransformerSentenceEncoder(TransformerEncoder):
    """A Hugging Face encoder read one sentence per row (Li et al., ACL 2022, Sec. 3.2).

    * ``H = F(t_1..t_k)`` (eq. 1); a sentence longer than ``max_length`` subwords is cropped *around the two
      entities* (:func:`crop_words`);
    * ``pooling: paper``: ``h_e`` = mean of the entity's subword states (footnote 2) and
      ``h_S = tanh([h_e1 ‖ h_e2 ‖ h_[CLS]] W_S) + b_S`` (eq. 2), vectors of size ``d``;
    * ``pooling: entity_start`` (OpenNRE's ``BERTEntityEncoder``): ``[unused0]``/``[unused1]`` around the
      head, ``[unused2]``/``[unused3]`` around the tail, ``[h_<head start> ‖ h_<tail start>] W_E + b_E``,
      vectors of size ``2d``.

    ``entity_markers`` (paper pooling only) adds the encoder's ``*`` marker around both entities. No head reads
    the attention maps, so the encoder runs :func:`~hiere.encoders.transformer.fused_attention` (Hugging Face's
    fused ``sdpa``; hiere's unfused attention in CPU training, where it is faster).
    """

    attention_implementation = FUSED_ATTENTION

    def __init__(self, source: str | Path = TRANSFORMER_DEFAULT, model_dir: str | Path | None = None,
                 max_length: int = 128, pooling: str = "paper", entity_markers: bool = False,
                 kept_subwords: int = KEPT_SUBWORDS):
        if pooling not in SENTENCE_POOLINGS:
            raise HiereConfigError(f"model.pooling={pooling!r}: must be one of {', '.join(SENTENCE_POOLINGS)}")
        super().__init__(source, model_dir, max_length, pretrained=False)
        self.pooling, self.entity_markers = pooling, entity_markers
        self.kept_subwords = kept_subwords  # 0: keep every group's activations (no recomputation)
        d = self.hidden_size
        if pooling == "entity_start":
            self.start_marker_ids = self.tokenizer.convert_tokens_to_ids(list(ENTITY_START_MARKERS))
            if self.unk_id in self.start_marker_ids:
                raise HiereConfigError(f"model.pooling=entity_start needs the tokens {ENTITY_START_MARKERS} in the "
                                       f"encoder's vocabulary ({source} has none; BERT vocabularies do)")
            self.W_E = nn.Linear(2 * d, 2 * d)  # OpenNRE's BERTEntityEncoder.linear
            self.output_size = 2 * d
        else:
            self.W_S = nn.Linear(3 * d, d, bias=False)  # eq. 2
            self.b_S = nn.Parameter(torch.zeros(d))
            nn.init.xavier_uniform_(self.W_S.weight)
            self.output_size = d

    def init_pretrained(self) -> None:
        self.load_pretrained()

    # ---------------------------------------------------------------- features

    def featurize_sentence(self, sentence: BagSentence) -> dict[str, Any]:
        """Subword ids (cropped around the entities) and the subword spans of head and tail."""
        words = list(sentence.tokens)
        pieces = self.tokenizer(words, add_special_tokens=False)["input_ids"]
        counts = [max(1, len(p)) for p in pieces]
        if self.pooling == "entity_start":
            marker_cost = 4
        else:
            marker_cost = 4 * len(self.marker_ids) if self.entity_markers else 0
        ranges = crop_words(counts, sentence.head, sentence.tail, self.max_length - 2 - marker_cost)
        kept = [index for start, end in ranges for index in range(start, end)]
        position = {word: new for new, word in enumerate(kept)}

        def new_span(span: tuple[int, int]) -> tuple[int, int]:
            inside = [position[w] for w in range(*span) if w in position]
            return inside[0], inside[-1] + 1

        head, tail = new_span(sentence.head), new_span(sentence.tail)
        if self.pooling == "entity_start":
            return self._entity_start_features([pieces[w] for w in kept], head, tail)
        tokenized = self.tokenize([words[w] for w in kept], [head, tail] if self.entity_markers else None)
        spans = tokenized.word_spans
        return {
            "input_ids": tokenized.input_ids,
            "head": (spans[head[0]][0], spans[head[1] - 1][1]),
            "tail": (spans[tail[0]][0], spans[tail[1] - 1][1]),
        }

    def _entity_start_features(
        self, pieces: list[list[int]], head: tuple[int, int], tail: tuple[int, int]
    ) -> dict[str, Any]:
        """OpenNRE's entity-start input: ``[CLS] .. [unused0] head [unused1] .. [unused2] tail [unused3] .. [SEP]``;
        the head and tail "spans" are the positions of their start markers (one subword each)."""
        head_start, head_end, tail_start, tail_end = self.start_marker_ids
        input_ids, positions = [self.cls_id], {}
        for index, word_pieces in enumerate(pieces):
            for name, span, marker in (("head", head, head_start), ("tail", tail, tail_start)):
                if index == span[0]:
                    positions[name] = len(input_ids)
                    input_ids.append(marker)
            input_ids.extend(word_pieces or [self.unk_id])
            if index == tail[1] - 1:
                input_ids.append(tail_end)
            if index == head[1] - 1:
                input_ids.append(head_end)
        input_ids.append(self.sep_id)
        return {"input_ids": input_ids, "head": (positions["head"], positions["head"] + 1),
                "tail": (positions["tail"], positions["tail"] + 1)}

    def collate_sentences(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = self.collate([f["input_ids"] for f in features])
        return {
            "input_ids": input_ids,  # (n_sent, seq)
            "attention_mask": attention_mask,  # (n_sent, seq)
            "head_span": torch.tensor([f["head"] for f in features], dtype=torch.long),  # (n_sent, 2)
            "tail_span": torch.tensor([f["tail"] for f in features], dtype=torch.long),  # (n_sent, 2)
        }

    # ---------------------------------------------------------------- network

    def sentence_states(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 1 and footnote 2 -> ``h_e1, h_e2, h_[CLS]``, each (n_sent, d).

        Each sentence is read alone (attention never crosses rows), so the sentences go through the encoder
        sorted by length in groups, each group cut to its own longest sentence: :data:`TRAINING_GROUP` at a
        time in training (NYT10-subset sentences cropped at 64 subwords average 47: a random step pads them to
        about 1.35x their length, sorted groups to 1.1-1.2x), :data:`INFERENCE_CHUNK` without gradients (dev,
        test, ``hiere predict``: an evaluation batch of bags can hold thousands of sentences, one NYT10 bag has
        1,010, and the encoder's activations grow with their number). The states are those of one call over the padded
        batch up to float rounding (``tests/test_hiclre.py``); in training the dropout masks are drawn per
        group, so a seed draws other masks than one call would.

        Memory in training: the groups are read shortest first, and once the step's groups hold
        ``kept_subwords`` subwords (rows x width; ``model.kept_subwords``, default :data:`KEPT_SUBWORDS`, 0: no
        limit) the later ones go through
        :func:`torch.utils.checkpoint.checkpoint`: backward reads them again (same dropout masks, the random
        state is replayed) instead of keeping their activations. On the NYT10 subset a step of 16 bags averages
        about 2,200 subwords and the largest reach 5,500 (1 GB of MiniLM activations under bf16); at 2,048 kept
        about 17 % of the training subwords are read twice.
        """
        input_ids, mask = batch["input_ids"], batch["attention_mask"]
        group = TRAINING_GROUP if torch.is_grad_enabled() else INFERENCE_CHUNK
        if input_ids.shape[0] <= group:
            return self._states(input_ids, mask, batch["head_span"], batch["tail_span"])
        lengths = mask.sum(1)
        order = torch.argsort(lengths, stable=True)
        parts, kept = [], 0
        for start in range(0, input_ids.shape[0], group):
            rows = order[start:start + group]
            width = int(lengths[rows].max())
            inputs = (input_ids[rows, :width], mask[rows, :width], batch["head_span"][rows], batch["tail_span"][rows])
            kept += len(rows) * width
            if torch.is_grad_enabled() and self.kept_subwords and kept > self.kept_subwords:  # recomputed in backward
                parts.append(checkpoint(self._states, *inputs, use_reentrant=False))
            else:
                parts.append(self._states(*inputs))
        back = torch.argsort(order)  # sorted position of each original row
        return tuple(torch.cat(level)[back] for level in zip(*parts, strict=True))  # type: ignore[return-value]

    def _states(self, input_ids: torch.Tensor, mask: torch.Tensor, head_span: torch.Tensor,
                tail_span: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden, _ = self(input_ids, mask, attentions=False)  # (n_sent, seq, d)
        hidden = hidden.float()
        return entity_mean(hidden, head_span), entity_mean(hidden, tail_span), hidden[:, 0]

    def represent(self, h_e1: torch.Tensor, h_e2: torch.Tensor, h_cls: torch.Tensor) -> torch.Tensor:
        """Eq. 2: ``h_S = tanh([h_e1 ‖ h_e2 ‖ h_[CLS]] W_S) + b_S`` -> (n_sent, d); ``pooling: entity_start``:
        ``[h_<head start> ‖ h_<tail start>] W_E + b_E`` -> (n_sent, 2d) (OpenNRE)."""
        if self.pooling == "entity_start":
            return self.W_E(torch.cat([h_e1, h_e2], dim=-1))
        return torch.tanh(self.W_S(torch.cat([h_e1, h_e2, h_cls], dim=-1))) + self.b_S

    def encode_sentences(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.represent(*self.sentence_states(batch))


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
