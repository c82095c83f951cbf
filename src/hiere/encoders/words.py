"""Word encoders of the document models that read a document word by word (HIN; Tang et al. 2020, §3.1).

A document head reads one vector per word and never looks inside the encoder (``model.words``):

* ``glove`` -> :class:`GloVeWords`: a GloVe vector per word (fixed or fine-tuned);
* ``transformer`` -> :class:`TransformerWords`: a Hugging Face encoder over the whole document (overlapping
  windows for long ones), each word the mean of its subword states, projected to ``projection_dim`` (HIN's
  768 -> 100); with ``fine_tune: false`` (the paper) the encoder is fixed and its word features are computed
  once per document, at featurization.

The interface (:class:`WordEncoder`) mirrors the sentence encoders' (:mod:`hiere.encoders.sentence`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from hiere.data.docred import Document
from hiere.data.vocab import Vocab
from hiere.encoders.glove import DEFAULT as GLOVE_DEFAULT
from hiere.encoders.glove import WordEmbedding
from hiere.encoders.transformer import DEFAULT as TRANSFORMER_DEFAULT
from hiere.encoders.transformer import TransformerEncoder, word_features


@runtime_checkable
class WordEncoder(Protocol):
    """What a word-level document head needs of its encoder."""

    output_size: int  # size of each word vector

    def featurize_words(self, document: Document) -> dict[str, Any]:
        """Extra features of one document besides the word ids (computed once per example)."""

    def collate_words(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """The extra batch entries of those features."""

    def encode_words(self, batch: dict[str, Any]) -> torch.Tensor:
        """A batch -> word vectors ``(batch, seq, output_size)``, ``seq`` = ``batch["word_ids"].shape[1]``."""

    def init_pretrained(self) -> None:
        """A new run only: copy pretrained weights in."""

    def save_assets(self, model_dir: Path) -> None:
        """Files besides the weights that loading needs."""


class GloVeWords(WordEmbedding):
    """GloVe vectors of the document's words (ids from the model's word vocabulary)."""

    def __init__(self, words: Vocab, dim: int, glove: str = GLOVE_DEFAULT, freeze: bool = True):
        super().__init__(len(words), dim, freeze)
        self.words, self.glove, self.output_size = words, glove, dim

    def featurize_words(self, document: Document) -> dict[str, Any]:
        return {}

    def collate_words(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return {}

    def encode_words(self, batch: dict[str, Any]) -> torch.Tensor:
        return self(batch["word_ids"])

    def init_pretrained(self) -> None:
        self.load_pretrained(self.words, self.glove)

    def save_assets(self, model_dir: Path) -> None:
        """Nothing: the vocabulary is one of the model's resources."""


class TransformerWords(TransformerEncoder):
    """Transformer features of each word (mean of its subwords), projected to ``projection_dim``."""

    def __init__(self, source: str | Path = TRANSFORMER_DEFAULT, model_dir: str | Path | None = None,
                 max_length: int = 512, window_overlap: int = 128, projection_dim: int = 100,
                 fine_tune: bool = False):
        super().__init__(source, model_dir, max_length, window_overlap, pretrained=False)
        self.transformer.requires_grad_(fine_tune)
        self.fine_tune, self.output_size = fine_tune, projection_dim
        self.word_projection = nn.Linear(self.hidden_size, projection_dim)  # 768 -> 100 in the paper

    def init_pretrained(self) -> None:
        self.load_pretrained()

    def featurize_words(self, document: Document) -> dict[str, Any]:
        tokenized = self.tokenize(document.tokens)
        features: dict[str, Any] = {"input_ids": tokenized.input_ids, "word_spans": tokenized.word_spans}
        if not self.fine_tune:
            features["word_features"] = self.frozen_word_features(tokenized.input_ids, tokenized.word_spans)
        return features

    @torch.no_grad()
    def frozen_word_features(self, input_ids: list[int], word_spans: list[tuple[int, int]]) -> torch.Tensor:
        """Fixed encoder features, averaged over each word's subwords -> (n_words, H) on CPU."""
        was_training = self.training
        self.eval()
        ids, mask = self.collate([input_ids])
        device = next(self.parameters()).device
        hidden, _ = self(ids.to(device), mask.to(device), attentions=False)  # windows for long documents
        self.train(was_training)
        return word_features(hidden.float(), [word_spans])[0].cpu()

    def collate_words(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if self.fine_tune:
            input_ids, attention_mask = self.collate([f["input_ids"] for f in features])
            return {"input_ids": input_ids, "attention_mask": attention_mask,
                    "word_spans": [f["word_spans"] for f in features]}
        return {"word_features": nn.utils.rnn.pad_sequence([f["word_features"] for f in features],
                                                           batch_first=True)}  # (batch, seq, H)

    def encode_words(self, batch: dict[str, Any]) -> torch.Tensor:
        if self.fine_tune:
            hidden, _ = self(batch["input_ids"], batch["attention_mask"], attentions=False)  # (batch, subwords, H)
            features = word_features(hidden, batch["word_spans"])  # (batch, seq, H)
        else:
            features = batch["word_features"]
        return self.word_projection(features[:, : batch["word_ids"].shape[1]])  # (batch, seq, projection_dim)
