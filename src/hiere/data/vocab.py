"""Token vocabularies (index 0 = padding, 1 = unknown), saved as JSON in the model directory."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

PAD, UNK = "<pad>", "<unk>"


class Vocab:
    def __init__(self, tokens: Iterable[str], lowercase: bool = True):
        self.lowercase = lowercase
        self.itos: list[str] = [PAD, UNK] + [t for t in dict.fromkeys(tokens) if t not in (PAD, UNK)]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def normalize(self, token: str) -> str:
        return token.lower() if self.lowercase else token

    def __getitem__(self, token: str) -> int:
        return self.stoi.get(self.normalize(token), 1)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self[t] for t in tokens]

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Iterable[str]],
        lowercase: bool = True,
        min_count: int = 1,
        extra: Iterable[str] = (),
    ) -> Vocab:
        """Vocabulary of the training tokens (``min_count`` or more), plus ``extra`` (e.g. GloVe words)."""
        counts = Counter(t.lower() if lowercase else t for tokens in token_lists for t in tokens)
        kept = [t for t, c in counts.most_common() if c >= min_count]
        return cls([*kept, *extra], lowercase)

    def to_json(self) -> dict:
        return {"lowercase": self.lowercase, "tokens": self.itos}

    def save(self, path: str | Path) -> None:
        from hiere.io import write_json_atomic

        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(raw["tokens"], raw["lowercase"])
