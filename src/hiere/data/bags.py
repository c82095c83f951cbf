"""OpenNRE jsonl bags (distant supervision). Reader and validation: see ``read_bags``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BagSentence:
    tokens: tuple[str, ...]
    head: tuple[int, int]  # token span of the head entity, end exclusive
    tail: tuple[int, int]  # token span of the tail entity, end exclusive
    relation: str  # the sentence's own (distant) label, "NA" for none
    text: str | None = None  # original text when the line had one


@dataclass
class Bag:
    """All sentences of one entity pair (evaluation) or of one (pair, relation) (OpenNRE training bags)."""

    head_id: str
    tail_id: str
    head_name: str
    tail_name: str
    sentences: list[BagSentence] = field(default_factory=list)
    relations: list[str] = field(default_factory=list)  # gold non-NA relations; ["NA"] when none
