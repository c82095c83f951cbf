"""PubTator files (BC5CDR ``CDR_*.PubTator.txt``) -> hiere documents, with validation.

A file holds records separated by blank lines; each record is

* ``PMID|t|title`` and ``PMID|a|abstract``: the text is ``title + " " + abstract`` (PubTator's offsets);
* mention lines ``PMID<TAB>start<TAB>end<TAB>text<TAB>type<TAB>ids[<TAB>texts]``: a character span
  ``[start, end)`` of the text, type ``Chemical`` or ``Disease``, ``ids`` one MeSH id or several
  joined by ``|`` (a composite mention such as "pulmonary and renal insufficiency"), ``-1`` when the
  annotators gave none;
* relation lines ``PMID<TAB>CID<TAB>chemical id<TAB>disease id``: the document-level
  chemical-induced-disease relation (the only relation BC5CDR annotates).

Conversion rules:

* entities: one per (type, MeSH id), in order of first mention; a mention with several ids is a
  mention of each of those entities (the same span in each); a mention with id ``-1`` belongs to no
  entity and is left out (no CID relation can name it);
* facts: ``Fact(chemical entity, disease entity, "CID")``; no evidence (BC5CDR annotates none);
* tokens: runs of letters/digits/underscore, and every other non-space character alone, further cut
  at every mention boundary, so every mention is a whole number of tokens;
* sentences: the title is sentence 0; the abstract is split after a ``.``, ``?`` or ``!`` token that is
  followed by white space and then an upper-case letter or a digit ("0.2 mg" and "i.v. dose" stay
  whole), never inside a mention span. Ids and offsets are kept as annotated (a typo such as
  ``D003000f`` in PMID 227508 makes its own entity).

Any problem raises one :class:`~hiere.errors.HiereInputError` naming the file, the PMID and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hiere.data.docred import Document, Fact, Mention
from hiere.errors import HiereInputError

RELATION = "CID"
ENTITY_TYPES = ("Chemical", "Disease")
TOKEN = re.compile(r"\w+|[^\w\s]")
SENTENCE_END = {".", "?", "!"}
SUFFIXES = (".pubtator", ".pubtator.txt")


def is_pubtator(path: str | Path) -> bool:
    """Whether ``path`` names a PubTator file by its extension (``*.PubTator.txt``, ``*.pubtator``)."""
    return str(path).lower().endswith(SUFFIXES)


@dataclass
class _Record:
    pmid: str
    first_line: int
    title: str | None = None
    abstract: str | None = None
    mentions: list[tuple[int, list[str]]] = field(default_factory=list)  # (line number, columns)
    relations: list[tuple[int, list[str]]] = field(default_factory=list)


def read_pubtator(
    path: str | Path, relations: set[str] | list[str] | None = None, *, require_labels: bool = False,
    limit: int | None = None, offset: int = 0,
) -> list[Document]:
    """Read and validate a PubTator file into :class:`Document` objects (see the module docstring).

    ``relations``: if given, it must contain ``"CID"`` when the file has relation lines.
    ``offset``/``limit`` take a slice of the records, as :func:`hiere.data.docred.read_docred`.
    """
    path = Path(path)
    if not path.exists():
        raise HiereInputError(str(path), None, None, "file does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise HiereInputError(str(path), None, None, "not UTF-8 text (binary file?)") from None
    records = _split_records(lines, str(path))
    if not records:
        raise HiereInputError(str(path), None, None, "no PubTator record (PMID|t|title lines) found")
    first_line: dict[str, int] = {}
    for record in records:
        if record.pmid in first_line:
            raise HiereInputError(str(path), f"PMID {record.pmid}, line {record.first_line}", "PMID",
                                  f"a second record of this PMID (the first starts at line {first_line[record.pmid]})")
        first_line[record.pmid] = record.first_line
    stop = None if limit is None else offset + limit
    documents = [_to_document(record, str(path)) for record in records[offset:stop]]
    if relations is not None and RELATION not in set(relations) and any(doc.facts for doc in documents):
        raise HiereInputError(str(path), None, None, f"relation {RELATION!r} is not in the relation map")
    return documents


def _split_records(lines: list[str], path: str) -> list[_Record]:
    records: list[_Record] = []
    current: _Record | None = None
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            current = None
            continue
        if "|" in line.split("\t", 1)[0] and line.split("|", 2)[1:2] in (["t"], ["a"]):
            pmid, kind, text = line.split("|", 2)
            if current is None or current.pmid != pmid:
                current = _Record(pmid, number)
                records.append(current)
            where = f"PMID {pmid}, line {number}"
            if kind == "t":
                if current.title is not None:
                    raise HiereInputError(path, where, "title", "a second title line for this PMID")
                current.title = text
            else:
                if current.abstract is not None:
                    raise HiereInputError(path, where, "abstract", "a second abstract line for this PMID")
                current.abstract = text
            continue
        columns = line.split("\t")
        if current is None:
            raise HiereInputError(path, f"line {number}", None,
                                  "annotation line before any PMID|t|title line of its record")
        where = f"PMID {current.pmid}, line {number}"
        if columns[0] != current.pmid:
            raise HiereInputError(path, where, "PMID",
                                  f"{columns[0]!r} differs from the record's PMID (a blank line missing?)")
        if len(columns) >= 2 and columns[1] == RELATION:
            if len(columns) != 4:
                raise HiereInputError(path, where, "CID", "a relation line needs PMID, CID, chemical id, disease id")
            current.relations.append((number, columns))
        elif len(columns) in (6, 7):
            current.mentions.append((number, columns))
        else:
            raise HiereInputError(path, where, None,
                                  f"{len(columns)} tab-separated columns: a mention line has 6 or 7, "
                                  "a relation line 4 (PMID, CID, chemical, disease)")
    return records


def _to_document(record: _Record, path: str) -> Document:
    where = f"PMID {record.pmid}, line {record.first_line}"
    if record.title is None:
        raise HiereInputError(path, where, "title", "no PMID|t| line")
    if record.abstract is None:
        raise HiereInputError(path, where, "abstract", "no PMID|a| line")
    text = record.title + " " + record.abstract
    spans = []  # (line, start, end, type, ids)
    for number, columns in record.mentions:
        _, start_text, end_text, mention_text, mention_type, ids = columns[:6]
        at = f"PMID {record.pmid}, line {number}"
        if not (start_text.isdigit() and end_text.isdigit()):
            raise HiereInputError(path, at, "offsets", f"start/end must be integers, got {start_text!r}, {end_text!r}")
        start, end = int(start_text), int(end_text)
        if not 0 <= start < end <= len(text):
            raise HiereInputError(path, at, "offsets",
                                  f"span [{start}, {end}) is outside the text ({len(text)} characters)")
        if text[start:end] != mention_text:
            raise HiereInputError(path, at, "text",
                                  f"{mention_text!r} differs from the text at [{start}, {end}): {text[start:end]!r}")
        if mention_type not in ENTITY_TYPES:
            raise HiereInputError(path, at, "type", f"{mention_type!r} is not one of {', '.join(ENTITY_TYPES)}")
        spans.append((number, start, end, mention_type, [i.strip() for i in ids.split("|")]))

    tokens = _tokenize(text, {offset for _, start, end, _, _ in spans for offset in (start, end)})
    sentence_of = _sentences(text, tokens, len(record.title), [(start, end) for _, start, end, _, _ in spans])
    sents: list[list[str]] = []
    token_place = []  # (sentence, index in sentence) per token
    for (token_start, token_end), sent_id in zip(tokens, sentence_of, strict=True):
        while len(sents) <= sent_id:
            sents.append([])
        token_place.append((sent_id, len(sents[sent_id])))
        sents[sent_id].append(text[token_start:token_end])
    token_at_start = {start: index for index, (start, _) in enumerate(tokens)}
    token_at_end = {end: index for index, (_, end) in enumerate(tokens)}

    entity_index: dict[tuple[str, str], int] = {}
    entities: list[list[Mention]] = []
    for _number, start, end, mention_type, ids in spans:
        first, last = token_at_start[start], token_at_end[end]
        sent_id, position = token_place[first]
        mention = Mention(text[start:end], sent_id, (position, token_place[last][1] + 1), mention_type)
        for mesh_id in ids:
            if mesh_id in ("-1", ""):
                continue
            key = (mention_type, mesh_id)
            if key not in entity_index:
                entity_index[key] = len(entities)
                entities.append([])
            entities[entity_index[key]].append(mention)

    facts = []
    for number, columns in record.relations:
        chemical, disease = columns[2], columns[3]
        at = f"PMID {record.pmid}, line {number}"
        for role, key in (("chemical", ("Chemical", chemical)), ("disease", ("Disease", disease))):
            if key not in entity_index:
                raise HiereInputError(path, at, role, f"{key[1]!r} names no {key[0]} mention of this document")
        fact = Fact(entity_index[("Chemical", chemical)], entity_index[("Disease", disease)], RELATION)
        if fact not in facts:
            facts.append(fact)
    return Document(record.pmid, sents, entities, facts, source="pubtator")


def _tokenize(text: str, cuts: set[int]) -> list[tuple[int, int]]:
    """Character spans of the tokens (module docstring), cut at every offset in ``cuts``."""
    tokens = []
    for match in TOKEN.finditer(text):
        start, end = match.span()
        inner = sorted(c for c in cuts if start < c < end)
        for left, right in zip([start, *inner], [*inner, end], strict=True):
            tokens.append((left, right))
    return tokens


def _sentences(text: str, tokens: list[tuple[int, int]], title_length: int,
               mention_spans: list[tuple[int, int]]) -> list[int]:
    """Sentence id of every token: the title is sentence 0, the abstract is split as the module says."""
    inside = {offset for start, end in mention_spans for offset in range(start + 1, end)}
    sentence_of: list[int] = []
    sent_id = 0
    for index, (start, end) in enumerate(tokens):
        if start >= title_length and sentence_of and sentence_of[-1] == 0 and sent_id == 0:
            sent_id = 1  # the first abstract token opens sentence 1
        sentence_of.append(sent_id)
        if start < title_length or index + 1 == len(tokens):
            continue
        next_start = tokens[index + 1][0]
        follower = text[next_start]
        if (text[start:end] in SENTENCE_END and next_start > end and (follower.isupper() or follower.isdigit())
                and end not in inside and next_start not in inside):
            sent_id += 1
    return sentence_of
