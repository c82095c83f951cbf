"""DocRED JSON: reader with validation, document objects, writer.

A DocRED file is a list of documents ``{"title", "sents", "vertexSet", "labels"}``; ``pos`` is a token
span ``[start, end)`` inside sentence ``sent_id``. Every problem is reported as one
:class:`~hiere.errors.HiereInputError` naming the file, the document (index and title) and the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiere.errors import HiereInputError


@dataclass(frozen=True)
class Mention:
    name: str
    sent_id: int
    pos: tuple[int, int]  # token span inside the sentence, end exclusive
    type: str


@dataclass(frozen=True)
class Fact:
    h: int
    t: int
    r: str
    evidence: tuple[int, ...] = ()


@dataclass
class Document:
    title: str
    sents: list[list[str]]
    entities: list[list[Mention]]
    facts: list[Fact] = field(default_factory=list)
    source: str = "docred"  # "pubtator" for BC5CDR documents (no Ign F1, no evidence)

    @property
    def tokens(self) -> list[str]:
        return [token for sent in self.sents for token in sent]

    @property
    def sent_offsets(self) -> list[int]:
        """Document-level index of each sentence's first token."""
        offsets, total = [], 0
        for sent in self.sents:
            offsets.append(total)
            total += len(sent)
        return offsets

    def mention_span(self, mention: Mention) -> tuple[int, int]:
        """The mention's token span in the flattened document."""
        start = self.sent_offsets[mention.sent_id]
        return start + mention.pos[0], start + mention.pos[1]

    def candidate_pairs(self) -> list[tuple[int, int]]:
        """The ordered entity pairs a model scores: every ``h != t``; for BC5CDR (``source="pubtator"``)
        only (Chemical head, Disease tail), the pairs CID can hold (as ATLOP's CDR setup)."""
        n = len(self.entities)
        if self.source == "pubtator":
            return [(h, t) for h in range(n) for t in range(n)
                    if self.entity_type(h) == "Chemical" and self.entity_type(t) == "Disease"]
        return [(h, t) for h in range(n) for t in range(n) if h != t]

    def entity_type(self, entity_index: int) -> str:
        return self.entities[entity_index][0].type

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "sents": self.sents,
            "vertexSet": [
                [{"name": m.name, "sent_id": m.sent_id, "pos": list(m.pos), "type": m.type} for m in entity]
                for entity in self.entities
            ],
            "labels": [{"h": f.h, "t": f.t, "r": f.r, "evidence": list(f.evidence)} for f in self.facts],
        }


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing file, bad bytes or bad JSON becomes one clear error."""
    from hiere.io import read_json_file

    return read_json_file(path)


def read_docred(
    path: str | Path,
    relations: Iterable[str] | None = None,
    *,
    require_labels: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> list[Document]:
    """Read and validate a DocRED file.

    ``relations``: if given, every label's ``r`` must be one of them. ``offset``/``limit`` take a
    slice of the documents (``offset=450`` gives the documents from the 451st on).
    """
    raw = load_json(path)
    if not isinstance(raw, list):
        raise HiereInputError(str(path), None, None, "a DocRED file must hold a JSON list of documents")
    known = set(relations) if relations is not None else None
    stop = None if limit is None else offset + limit
    return [
        parse_document(record, str(path), index, known, require_labels)
        for index, record in enumerate(raw[offset:stop], start=offset)
    ]


def parse_documents(
    records: Iterable[Mapping[str, Any] | Document], source: str = "<input>", relations: Iterable[str] | None = None
) -> list[Document]:
    """Validate in-memory DocRED records (dicts) or pass :class:`Document` objects through."""
    known = set(relations) if relations is not None else None
    return [
        record if isinstance(record, Document) else parse_document(record, source, index, known, False)
        for index, record in enumerate(records)
    ]


def parse_document(
    record: Any, path: str, index: int, relations: set[str] | None = None, require_labels: bool = False
) -> Document:
    title = record.get("title") if isinstance(record, dict) else None
    where = f"document {index}" + (f" ({title!r})" if isinstance(title, str) else "")

    def fail(field_name: str, message: str) -> HiereInputError:
        return HiereInputError(path, where, field_name, message)

    if not isinstance(record, dict):
        raise fail("", "a document must be a JSON object")
    if not isinstance(title, str):
        raise fail("title", "missing or not a string")
    sents = record.get("sents")
    if not isinstance(sents, list) or not sents or not any(isinstance(s, list) and s for s in sents):
        raise fail("sents", "empty document: it needs at least one sentence with tokens")
    for sent_id, sent in enumerate(sents):
        if not isinstance(sent, list) or not all(isinstance(token, str) for token in sent):
            raise fail(f"sents[{sent_id}]", "a sentence must be a list of token strings")
    vertex_set = record.get("vertexSet")
    if not isinstance(vertex_set, list):
        raise fail("vertexSet", "missing or not a list of entities")
    entities: list[list[Mention]] = []
    for entity_index, entity in enumerate(vertex_set):
        if not isinstance(entity, list) or not entity:
            raise fail(f"vertexSet[{entity_index}]", "an entity must be a non-empty list of mentions")
        mentions = []
        for mention_index, mention in enumerate(entity):
            field_name = f"vertexSet[{entity_index}][{mention_index}]"
            if not isinstance(mention, dict):
                raise fail(field_name, "a mention must be an object with name, sent_id, pos, type")
            sent_id = mention.get("sent_id")
            if not isinstance(sent_id, int) or not 0 <= sent_id < len(sents):
                raise fail(f"{field_name}.sent_id",
                           f"{sent_id!r} is out of range (document has {len(sents)} sentences)")
            pos = mention.get("pos")
            if (
                not isinstance(pos, list | tuple)
                or len(pos) != 2
                or not all(isinstance(p, int) for p in pos)
                or not 0 <= pos[0] < pos[1] <= len(sents[sent_id])
            ):
                raise fail(
                    f"{field_name}.pos",
                    f"span {pos!r} is outside sentence {sent_id} "
                    f"({len(sents[sent_id])} tokens; spans are [start, end))",
                )
            name = mention.get("name")
            if not isinstance(name, str):
                name = " ".join(sents[sent_id][pos[0] : pos[1]])
            mention_type = mention.get("type")
            if not isinstance(mention_type, str):
                raise fail(f"{field_name}.type", "missing or not a string")
            mentions.append(Mention(name, sent_id, (pos[0], pos[1]), mention_type))
        entities.append(mentions)
    labels = record.get("labels")
    if labels is None:
        if require_labels:
            raise fail("labels", "missing (training and evaluation files need labels)")
        labels = []
    if not isinstance(labels, list):
        raise fail("labels", "must be a list")
    facts = []
    for label_index, label in enumerate(labels):
        field_name = f"labels[{label_index}]"
        if not isinstance(label, dict):
            raise fail(field_name, "a label must be an object with h, t, r")
        for key in ("h", "t"):
            value = label.get(key)
            if not isinstance(value, int) or not 0 <= value < len(entities):
                raise fail(f"{field_name}.{key}",
                           f"entity index {value!r} is out of range ({len(entities)} entities)")
        relation = label.get("r")
        if not isinstance(relation, str):
            raise fail(f"{field_name}.r", "missing or not a string")
        if relations is not None and relation not in relations:
            raise fail(f"{field_name}.r", f"unknown relation {relation!r} (not in the relation map)")
        evidence = label.get("evidence") or []
        if not isinstance(evidence, list) or not all(isinstance(e, int) and 0 <= e < len(sents) for e in evidence):
            raise fail(f"{field_name}.evidence", "evidence must be a list of sentence ids of this document")
        facts.append(Fact(label["h"], label["t"], relation, tuple(evidence)))
    return Document(title, sents, entities, facts)

