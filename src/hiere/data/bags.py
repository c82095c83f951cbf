"""OpenNRE jsonl bags (distant supervision): line reader with validation, bags, flat batching.

A file holds one sentence a line (a JSON list of the same objects is accepted too)::

    {"text": "...", "h": {"id", "name", "pos": [start, end)}, "t": {...}, "relation": "..."}

``pos`` is a character span of ``text``; the other variant gives ``"token": [...]`` with token spans.
``text`` lines are whitespace tokenised (NYT10 and GIDS are pre-tokenised), and a token that an
entity span cuts (``"London,"``, ``"Andrew_of_Perugia"`` when the tail is ``Perugia``) is split at the
span boundary, as OpenNRE's tokenizers do by tokenising the text around the entities separately.

Bags group sentences by entity pair (``mode="pair"``: the evaluation bags, and multi-label training
bags) or by (head, tail, relation) (``mode="pair_relation"``: OpenNRE's training bags). Bags come in
order of first appearance, each holding its sentences in file order, so evaluation is deterministic.
A bag's ``relations`` is the sorted set of its sentences' non-NA labels, or ``["NA"]``.

Every problem is one :class:`~hiere.errors.HiereInputError` naming the file, the line and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiere.data.relations import NA, RelationMap
from hiere.errors import HiereInputError

BAG_MODES = ("pair", "pair_relation")
_NON_SPACE = re.compile(r"\S+")


@dataclass(frozen=True)
class BagSentence:
    tokens: tuple[str, ...]
    head: tuple[int, int]  # token span of the head entity, end exclusive
    tail: tuple[int, int]  # token span of the tail entity, end exclusive
    relation: str  # the sentence's own (distant) label, "NA" for none
    text: str | None = None  # original text when the line had one
    line: int | None = None  # 1-based line (or record) number in its file


@dataclass
class Bag:
    """All sentences of one entity pair (evaluation) or of one (pair, relation) (OpenNRE training bags)."""

    head_id: str
    tail_id: str
    head_name: str
    tail_name: str
    sentences: list[BagSentence] = field(default_factory=list)
    relations: list[str] = field(default_factory=list)  # gold non-NA relations; ["NA"] when none

    @property
    def pair(self) -> tuple[str, str]:
        return self.head_id, self.tail_id

    @property
    def size(self) -> int:
        return len(self.sentences)

    @property
    def is_na(self) -> bool:
        return self.relations == [NA]

    def relation_indices(self, relations: RelationMap) -> list[int]:
        """Indices of the bag's gold relations in ``relations`` (``[0]`` for NA; unknown ones left out)."""
        return [relations[r] for r in self.relations if r in relations]


def bag_scope(sizes: Iterable[int]) -> list[tuple[int, int]]:
    """``(start, end)`` of each bag in a flat batch of sentences.

    >>> bag_scope([2, 1, 3])
    [(0, 2), (2, 3), (3, 6)]
    """
    scope, start = [], 0
    for size in sizes:
        scope.append((start, start + size))
        start += size
    return scope


def flatten_bags(bags: Iterable[Bag]) -> tuple[list[BagSentence], list[tuple[int, int]]]:
    """All sentences of ``bags`` in one flat list plus each bag's ``(start, end)`` scope in it."""
    bags = list(bags)
    return [s for bag in bags for s in bag.sentences], bag_scope(bag.size for bag in bags)


def read_relation_map(path: str | Path) -> RelationMap:
    """An OpenNRE ``rel2id.json`` (relation -> index) as a :class:`RelationMap`; NA is index 0."""
    return RelationMap.from_rel_info(path)


def read_long_tail(path: str | Path) -> list[str]:
    """HNRE's long-tail relation list (``rel100.txt``): one relation name a line."""
    from hiere.io import read_text_file

    text = read_text_file(path, "long-tail relation file")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise HiereInputError(str(path), None, None, "long-tail relation file is empty (one relation a line)")
    return names


def iter_json_records(path: str | Path) -> Iterator[tuple[str, Any]]:
    """``(where, record)`` per JSON line (``"line N"``), or per item of a JSON list (``"record N"``)."""
    from hiere.io import parse_json, read_text_file

    text = read_text_file(path)
    if text.lstrip().startswith("["):
        items = parse_json(text, str(path))
        for number, item in enumerate(items, start=1):
            yield f"record {number}", item
        return
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: JSON strings may hold U+2028
        if line.strip():
            yield f"line {number}", parse_json(line, str(path), f"line {number}")


def read_bags(
    path: str | Path,
    relations: Iterable[str] | RelationMap | None = None,
    mode: str = "pair",
    require_labels: bool = False,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> list[Bag]:
    """Read and validate an OpenNRE jsonl file into bags (see the module docstring).

    ``relations``: if given, every label must be one of them. ``require_labels``: every line needs a
    ``relation`` (training and evaluation files); without it, an unlabeled line counts as NA.
    ``offset``/``limit`` take a slice of the *bags* (in order of first appearance).
    """
    sentences = (
        parse_sentence(record, str(path), where, _known(relations), require_labels)
        for where, record in iter_json_records(path)
    )
    bags = group_bags(sentences, mode)
    stop = None if limit is None else offset + limit
    return bags[offset:stop]


def parse_bags(
    records: Iterable[Mapping[str, Any] | Bag],
    source: str = "<input>",
    relations: Iterable[str] | RelationMap | None = None,
    mode: str = "pair",
) -> list[Bag]:
    """In-memory input: :class:`Bag` objects pass through; OpenNRE sentence dicts are validated, grouped."""
    known = _known(relations)
    bags: list[Bag] = []
    pending: list[tuple[str, str, str, BagSentence]] = []
    for number, record in enumerate(records, start=1):
        if isinstance(record, Bag):
            bags.append(record)
        else:
            pending.append(parse_sentence(record, source, f"record {number}", known, False))
    if pending and bags:
        raise HiereInputError(source, None, None, "give either Bag objects or sentence dicts, not both")
    return bags or group_bags(pending, mode)


def group_bags(sentences: Iterable[tuple[str, str, str, str, BagSentence]], mode: str = "pair") -> list[Bag]:
    """Group ``(head_id, tail_id, head_name, tail_name, sentence)`` into bags, by first appearance."""
    if mode not in BAG_MODES:
        raise ValueError(f"unknown bag mode {mode!r}; use one of {BAG_MODES}")
    bags: dict[tuple[str, ...], Bag] = {}
    for head_id, tail_id, head_name, tail_name, sentence in sentences:
        key = (head_id, tail_id) if mode == "pair" else (head_id, tail_id, sentence.relation)
        bag = bags.get(key)
        if bag is None:
            bag = bags[key] = Bag(head_id, tail_id, head_name, tail_name)
        bag.sentences.append(sentence)
    for bag in bags.values():
        bag.relations = sorted({s.relation for s in bag.sentences} - {NA}) or [NA]
    return list(bags.values())


def parse_sentence(
    record: Any, path: str, where: str, relations: set[str] | None = None, require_labels: bool = False
) -> tuple[str, str, str, str, BagSentence]:
    """Validate one OpenNRE line -> ``(head_id, tail_id, head_name, tail_name, sentence)``."""

    def fail(field_name: str | None, message: str) -> HiereInputError:
        return HiereInputError(path, where, field_name, message)

    if not isinstance(record, dict):
        raise fail(None, "a line must be a JSON object with text (or token), h, t, relation")
    relation = record.get("relation")
    if relation is None:
        if require_labels:
            raise fail("relation", "missing (training and evaluation files need labels; use NA for none)")
        relation = NA
    if not isinstance(relation, str) or not relation:
        raise fail("relation", f"must be a non-empty string, got {relation!r}")
    if relations is not None and relation not in relations:
        raise fail("relation", f"unknown relation {relation!r} (not in the relation map)")

    entities = {}
    for key in ("h", "t"):
        entity = record.get(key)
        if not isinstance(entity, dict):
            raise fail(key, "missing or not an object with id, name, pos")
        entity_id = entity.get("id")
        if not isinstance(entity_id, str | int) or isinstance(entity_id, bool) or str(entity_id) == "":
            raise fail(f"{key}.id", "missing or empty (bags group sentences by entity id)")
        pos = entity.get("pos")
        if (
            not isinstance(pos, list | tuple)
            or len(pos) != 2
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in pos)
        ):
            raise fail(f"{key}.pos", f"must be a [start, end) pair of integers, got {pos!r}")
        entities[key] = (str(entity_id), entity.get("name"), (pos[0], pos[1]))

    if "token" in record:
        tokens = record["token"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise fail("token", "must be a list of token strings")
        if not tokens:
            raise fail("token", "empty sentence")
        text = record.get("text") if isinstance(record.get("text"), str) else None
        spans = {}
        for key, (_, _, (start, end)) in entities.items():
            if not 0 <= start < end <= len(tokens):
                raise fail(
                    f"{key}.pos",
                    f"token span [{start}, {end}) is outside the sentence ({len(tokens)} tokens)",
                )
            spans[key] = (start, end)
    elif "text" in record:
        text = record["text"]
        if not isinstance(text, str):
            raise fail("text", "must be a string")
        if not text.strip():
            raise fail("text", "empty sentence")
        for key, (_, _, (start, end)) in entities.items():
            if not 0 <= start < end <= len(text):
                raise fail(
                    f"{key}.pos",
                    f"character span [{start}, {end}) is outside the text ({len(text)} characters)",
                )
            if not text[start:end].strip():
                raise fail(f"{key}.pos", f"character span [{start}, {end}) holds only whitespace")
        tokens, token_spans = tokenize_with_spans(text, [entities["h"][2], entities["t"][2]])
        spans = {"h": token_spans[0], "t": token_spans[1]}
    else:
        raise fail("text", "missing: a line needs text (with character spans) or token (with token spans)")

    names = {}
    for key, (_, name, _) in entities.items():
        start, end = spans[key]
        names[key] = name if isinstance(name, str) and name else " ".join(tokens[start:end])
    sentence = BagSentence(tuple(tokens), spans["h"], spans["t"], relation, text, _line_number(where))
    return entities["h"][0], entities["t"][0], names["h"], names["t"], sentence


def tokenize_with_spans(
    text: str, char_spans: list[tuple[int, int]]
) -> tuple[list[str], list[tuple[int, int]]]:
    """Whitespace tokens of ``text``, split further at every span boundary -> ``(tokens, token spans)``.

    Spans are first trimmed of surrounding whitespace; each then covers whole tokens, so
    ``" ".join(tokens[a:b])`` is the span's text with runs of whitespace collapsed.
    """
    trimmed = []
    for start, end in char_spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        trimmed.append((start, end))
    boundaries = {b for span in trimmed for b in span}
    tokens: list[str] = []
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    for match in _NON_SPACE.finditer(text):
        cuts = [match.start(), *sorted(b for b in boundaries if match.start() < b < match.end()), match.end()]
        for piece_start, piece_end in zip(cuts, cuts[1:], strict=False):
            starts[piece_start] = len(tokens)
            ends[piece_end] = len(tokens) + 1
            tokens.append(text[piece_start:piece_end])
    return tokens, [(starts[start], ends[end]) for start, end in trimmed]


def _known(relations: Iterable[str] | RelationMap | None) -> set[str] | None:
    if relations is None:
        return None
    if isinstance(relations, RelationMap):
        return set(relations.relations)
    return set(relations)


def _line_number(where: str) -> int | None:
    number = where.rsplit(" ", 1)[-1]
    return int(number) if number.isdigit() else None
