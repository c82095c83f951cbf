"""CNN and PCNN sentence encoders with position embeddings (Zeng et al. 2014, 2015; HNRE Sec. 3.1).

Input: word embedding (GloVe) + two position embeddings (relative distance of each token to the head
and to the tail entity). A convolution with window ``window`` and ``hidden`` filters, then

* ``cnn``: max pooling over the sentence, ``[x]_j = max_i [h_i]_j`` (HNRE eq. 2), ReLU;
* ``pcnn``: piecewise max pooling over the three segments cut by the two entities (HNRE eq. 3,
  Zeng et al. 2015), ``[x]_{j,p} = max_{i in segment p} [h_i]_j``, concatenated, ReLU.

Defaults are the HNRE / OpenNRE settings: window 3, 230 filters, position dimension 5, word dimension 50,
sentences cut at 120 tokens.

Padding (``padding``): ``masked`` pads a batch to its longest sentence with a zero word vector and keeps the
padding out of the max pooling (the equations above). ``opennre`` is the OpenNRE code: every sentence is
padded to ``max_length`` with a ``[PAD]`` word whose vector starts at zero and is trained, and the ``cnn``
max pooling runs over the padded positions too, so a short sentence's features are at least the padding's
(``pcnn`` still masks the padding out of its segments, as OpenNRE's PCNN does; only the convolution window at
the sentence end sees the trained ``[PAD]``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hiere.data.bags import BagSentence
from hiere.data.padding import pad_sequences
from hiere.data.vocab import Vocab
from hiere.encoders.glove import WordEmbedding
from hiere.errors import HiereConfigError

POOLINGS = ("cnn", "pcnn")
PADDINGS = ("masked", "opennre")


def sentence_features(sentence: BagSentence, words: Vocab, max_length: int) -> dict[str, list[int]]:
    """Word ids, relative positions and PCNN segment ids of one sentence, cut to ``max_length`` tokens.

    Positions are ``clip(i - entity_start, -(max_length - 1), max_length - 1) + max_length``, so they lie in
    ``1 .. 2 * max_length - 1`` (0 = padding). An entity that starts beyond the cut is placed on the last
    kept token. Segment ids: 1 up to and including the first entity's start, 2 up to and including the
    second entity's start, 3 after it (OpenNRE's PCNN mask); 0 is padding.
    """
    tokens = sentence.tokens[:max_length]
    length = max(1, len(tokens))
    head = min(sentence.head[0], length - 1)
    tail = min(sentence.tail[0], length - 1)
    limit = max_length - 1

    def relative(anchor: int) -> list[int]:
        return [max(-limit, min(limit, i - anchor)) + max_length for i in range(length)]

    first, second = min(head, tail), max(head, tail)
    segments = [1 if i <= first else 2 if i <= second else 3 for i in range(length)]
    word_ids = words.encode(tokens) if tokens else [1]
    return {
        "word_ids": word_ids,
        "pos_head": relative(head),
        "pos_tail": relative(tail),
        "segments": segments,
    }


def collate_sentences(features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    """Pad a flat list of sentence features: each value becomes ``(n_sentences, max_len)``."""
    return {
        key: pad_sequences([f[key] for f in features])
        for key in ("word_ids", "pos_head", "pos_tail", "segments")
    }


class CNNEncoder(nn.Module):
    """Sentences -> vectors: ``(n_sentences, seq)`` ids -> ``(n_sentences, output_size)``."""

    def __init__(
        self,
        vocab_size: int,
        word_dim: int = 50,
        position_dim: int = 5,
        hidden: int = 230,
        window: int = 3,
        max_length: int = 120,
        pooling: str = "pcnn",
        freeze_words: bool = False,
        padding: str = "masked",
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise HiereConfigError(f"model.pooling={pooling!r}: must be one of {', '.join(POOLINGS)}")
        if padding not in PADDINGS:
            raise HiereConfigError(f"model.padding={padding!r}: must be one of {', '.join(PADDINGS)}")
        self.pooling, self.padding, self.max_length = pooling, padding, max_length
        self.hidden = hidden
        self.word_embedding = WordEmbedding(vocab_size, word_dim, freeze=freeze_words,
                                            train_padding=padding == "opennre")
        self.pos_head_embedding = nn.Embedding(2 * max_length, position_dim, padding_idx=0)
        self.pos_tail_embedding = nn.Embedding(2 * max_length, position_dim, padding_idx=0)
        self.conv = nn.Conv1d(word_dim + 2 * position_dim, hidden, window, padding=window // 2)
        self.output_size = hidden * (3 if pooling == "pcnn" else 1)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        keys = ("word_ids", "pos_head", "pos_tail", "segments")
        inputs = {key: batch[key] for key in keys}
        if self.padding == "opennre":  # every sentence padded to max_length (id 0: [PAD] word, no position)
            extra = self.max_length - inputs["word_ids"].shape[1]
            if extra > 0:
                inputs = {key: nn.functional.pad(value, (0, extra)) for key, value in inputs.items()}
        embedded = torch.cat(
            [
                self.word_embedding(inputs["word_ids"]),
                self.pos_head_embedding(inputs["pos_head"]),
                self.pos_tail_embedding(inputs["pos_tail"]),
            ],
            dim=-1,
        )  # (n_sent, seq, word_dim + 2 * position_dim)
        conv = self.conv(embedded.transpose(1, 2))  # (n_sent, hidden, seq)
        segments = inputs["segments"]  # (n_sent, seq), 0 = padding
        if self.pooling == "cnn" and self.padding == "opennre":
            pooled = conv.max(dim=-1).values  # over the padding too (OpenNRE's CNN encoder)
        elif self.pooling == "cnn":
            pooled = _masked_max(conv, segments > 0)  # (n_sent, hidden)
        else:
            pooled = torch.cat([_masked_max(conv, segments == piece) for piece in (1, 2, 3)], dim=-1)
        return torch.relu(pooled)  # (n_sent, output_size)


def _masked_max(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the last dimension of ``values`` (n, hidden, seq) where ``mask`` (n, seq) is true.

    An empty segment gives a large negative value, i.e. 0 after the ReLU.
    """
    filled = values.masked_fill(~mask.unsqueeze(1), -1e4)
    return filled.max(dim=-1).values
