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
        segments = inputs["segments"]  # (n_sent, seq), 0 = padding
        if self.pooling == "cnn" and self.padding == "opennre":
            pieces = torch.ones_like(segments, dtype=torch.bool).unsqueeze(1)  # over the padding too (OpenNRE's CNN)
        elif self.pooling == "cnn":
            pieces = (segments > 0).unsqueeze(1)  # (n_sent, 1, seq)
        else:
            pieces = torch.stack([segments == piece for piece in (1, 2, 3)], dim=1)  # (n_sent, 3, seq)
        pooled = conv_max_pool(embedded.transpose(1, 2), self.conv.weight, self.conv.bias, pieces)
        return torch.relu(pooled)  # (n_sent, output_size)


# sentences per chunk of the convolution's (sentences, hidden, seq) output: 64 MB of fp32 at 230 filters and 128 tokens
CONV_CHUNK_ELEMENTS = 16 * 2**20
# sentences are convolved over their own width rounded up to a multiple of this (fewer distinct shapes)
CONV_WIDTH_STEP = 8


def conv_max_pool(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, pieces: torch.Tensor,
                  chunk_elements: int = CONV_CHUNK_ELEMENTS) -> torch.Tensor:
    """The convolution and the (piecewise) max pooling of HNRE eqs. 2-3: ``(n, channels, seq)`` ->
    ``(n, pieces * hidden)``, ``[x]_{j,p} = max_{i in piece p} [W * q_i + b]_j``.

    ``pieces`` (n, P, seq) is true where a position belongs to piece ``p``; an empty piece gives -1e4 (0 after
    the ReLU) and no gradient. The values and gradients are those of ``conv1d`` followed by a masked max, with
    two savings:

    * **No work on padding.** A sentence's pooling reads the convolution only up to its last position in a
      piece, and that output reads the inputs only ``window // 2`` positions further, so each sentence is
      convolved over that width (rounded up to ``CONV_WIDTH_STEP``), not the batch's: sentences are grouped
      by width. NYT10 sentences average 39 words in batches padded to 128, so this skips two thirds of the
      convolution. Where a piece covers every position (OpenNRE's CNN pooling over its padding) the width is
      the whole sequence, as before.
    * **Bounded memory.** The ``(n, hidden, seq)`` convolution output, the largest tensor of a CNN bag model,
      is never held for the whole batch: the forward pass keeps only each filter's arg-max positions, and both
      passes work a chunk of sentences at a time (``chunk_elements`` values of that output), so a step's memory
      no longer grows with the sentences of its batch (NYT10 bags reach 1,010 sentences).

    When every sentence needs the full width and the batch fits in one chunk, these are the same operations as
    the plain pooling, bitwise; otherwise the per-group convolutions and the weight gradient's sum over groups
    agree with it up to float rounding (``tests/test_cnn_pooling.py``).
    """
    flat = _ConvMaxPool.apply(inputs, weight, bias, pieces, chunk_elements)  # (n, P, hidden)
    return flat.reshape(flat.shape[0], pieces.shape[1] * weight.shape[0])


def conv_groups(pieces: torch.Tensor, hidden: int, padding: int, chunk_elements: int,
                step: int = CONV_WIDTH_STEP) -> list[tuple[torch.Tensor, int]]:
    """The sentences of a batch grouped for :func:`conv_max_pool`: ``(rows, width)`` pairs that cover every row
    once, each row in a group whose width reaches ``padding`` positions past the row's last position in any
    piece (or the whole sequence), at most ``chunk_elements // (hidden * width)`` rows a group."""
    n, seq = pieces.shape[0], pieces.shape[-1]
    used = pieces.any(1)  # (n, seq)
    extent = (used * torch.arange(1, seq + 1, device=pieces.device)).amax(-1) if seq else used.new_zeros(n)
    width = ((extent + padding + step - 1) // step * step).clamp(min=1, max=max(seq, 1)).cpu()
    order = torch.argsort(width, stable=True)
    widths, counts = torch.unique_consecutive(width[order], return_counts=True)
    groups, start = [], 0
    for value, count in zip(widths.tolist(), counts.tolist(), strict=True):
        chunk = max(1, chunk_elements // max(1, hidden * value))
        for offset in range(0, count, chunk):
            rows = order[start + offset:start + min(count, offset + chunk)].to(pieces.device)
            groups.append((rows, value))
        start += count
    return groups


class _ConvMaxPool(torch.autograd.Function):
    """See :func:`conv_max_pool`. Autocast is honoured by hand: the convolution runs in the autocast dtype,
    as ``nn.Conv1d`` would, and the gradients are handed back in the inputs' own dtypes."""

    @staticmethod
    def forward(ctx, inputs, weight, bias, pieces, chunk_elements):  # noqa: ANN001, ANN205 (autograd's signature)
        device = inputs.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else inputs.dtype
        hidden, padding = weight.shape[0], weight.shape[-1] // 2
        n, n_pieces = inputs.shape[0], pieces.shape[1]
        groups = conv_groups(pieces, hidden, padding, chunk_elements)
        # one group over the whole sequence: the batch as it is, no copies (bitwise the plain pooling)
        whole = len(groups) == 1 and groups[0][1] == inputs.shape[-1]
        values = inputs.new_empty((n, n_pieces, hidden), dtype=dtype)
        indices = inputs.new_empty((n, n_pieces, hidden), dtype=torch.long)
        with torch.autocast(device, enabled=False):
            w, b = weight.to(dtype), bias.to(dtype)
            for rows, width in groups:
                part = inputs if whole else inputs[rows, :, :width]
                conv = nn.functional.conv1d(part.to(dtype), w, b, padding=padding)
                mask = pieces if whole else pieces[rows, :, :width]
                found = [conv.masked_fill(~mask[:, p].unsqueeze(1), -1e4).max(dim=-1) for p in range(n_pieces)]
                values[rows] = torch.stack([f.values for f in found], dim=1)  # (rows, P, hidden)
                indices[rows] = torch.stack([f.indices for f in found], dim=1)
        ctx.save_for_backward(inputs, weight, bias, indices, pieces.any(-1))
        ctx.dtype, ctx.groups, ctx.whole, ctx.padding = dtype, groups, whole, padding
        return values

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        inputs, weight, bias, indices, nonempty = ctx.saved_tensors
        dtype, groups, whole, padding = ctx.dtype, ctx.groups, ctx.whole, ctx.padding
        grad = (grad * nonempty.unsqueeze(-1)).to(dtype)  # an empty piece's -1e4 passes no gradient
        w = weight.to(dtype)
        need_input = ctx.needs_input_grad[0]
        hidden = weight.shape[0]
        # positions past a group's width pass no gradient: they reach only outputs outside every piece
        grad_inputs = (torch.empty_like(inputs) if whole else torch.zeros_like(inputs)) if need_input else None
        grad_weight = grad_bias = None
        for rows, width in groups:
            part = grad if whole else grad[rows]  # (rows, P, hidden)
            spread = part.new_zeros((part.shape[0], hidden, width))
            spread.scatter_add_(2, (indices if whole else indices[rows]).transpose(1, 2), part.transpose(1, 2))
            inputs_part = inputs if whole else inputs[rows, :, :width]
            d_input, d_weight, d_bias = torch.ops.aten.convolution_backward(
                spread, inputs_part.to(dtype), w, [hidden], [1], [padding], [1], False, [0], 1,
                [need_input, True, True])
            if need_input:
                if whole:
                    grad_inputs.copy_(d_input)
                else:
                    grad_inputs[rows, :, :width] = d_input.to(grad_inputs.dtype)
            grad_weight = d_weight if grad_weight is None else grad_weight + d_weight
            grad_bias = d_bias if grad_bias is None else grad_bias + d_bias
        if grad_weight is None:  # no sentences
            grad_weight, grad_bias = torch.zeros_like(weight), torch.zeros_like(bias)
        return grad_inputs, grad_weight.to(weight.dtype), grad_bias.to(bias.dtype), None, None
