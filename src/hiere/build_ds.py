"""Distant supervision: a corpus plus a knowledge base -> OpenNRE jsonl bags (``hiere build-ds``).

The distant-supervision assumption (Mintz et al. 2009; Riedel et al. 2010): a sentence that mentions
two entities of the knowledge base (KB) is an instance of every KB relation between them, or of
``NA`` when the KB has none. The builder runs in two passes:

1. **match** (the slow pass, spaCy): each document of the corpus is cut into sentences, KB entity
   mentions are found in each sentence (:class:`AliasIndex`, optionally restricted or extended by
   spaCy NER), and every ordered pair of distinct KB entities in a sentence becomes one candidate
   line per KB relation (or one NA line). Candidates go to a spool file ``OUT/.build-ds/instances.jsonl``
   with a checkpoint line after every document, so ``resume=True`` continues a killed run; only the
   set of entity pairs is held in memory, so corpora larger than memory work.
2. **sample and split** (seconds): NA pairs are sampled to ``na_ratio`` NA pairs per positive pair
   with ``seed``; pairs (unordered, so ``(a, b)`` and ``(b, a)`` go together) are split into
   train/dev/test, positive and NA pairs separately so each split keeps the NA share; the spool is
   then copied into ``train.jsonl``, ``dev.jsonl``, ``test.jsonl``, ``rel2id.json`` (NA = 0) and
   ``stats.json``, every file written to a temp file and renamed only when all are complete.

Matching rules (see :class:`AliasIndex`): an alias is the KB name of an entity or a line of the
aliases file; it matches whole words only (word = a run of letters/digits, or one other character),
leftmost-longest, without overlaps. Case-sensitive by default; ``ignore_case`` folds case on both
sides except for aliases of at most 3 characters written in capitals ("US", "UN", "IT"), which
would otherwise match common words. An alias of several KB entities is ambiguous: its mentions are
skipped and counted in ``stats.json``.

A pair whose KB relation goes the other way ((b, a) has a fact, (a, b) none) is not an NA instance:
only the KB direction is written. NA pairs are written with the head the entity whose id sorts first.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hiere.data.relations import NA, RelationMap
from hiere.errors import HiereInputError
from hiere.io import check_readable_file, dumps_json, write_json_atomic

MATCH_MODES = ("alias", "ner", "both")
SPLITS = ("train", "dev", "test")
SPOOL_DIR = ".build-ds"
MAX_PARAGRAPH_CHARS = 100_000  # plain text: a paragraph longer than this is cut at a line end
_WORD = re.compile(r"\w+|[^\w\s]")
_SHORT_ACRONYM = 3
_NUMERIC_NER = frozenset({"DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT"})


# ----------------------------------------------------------------------------------------------- KB


@dataclass
class KnowledgeBase:
    """Facts ``(head, tail) -> {relation}`` over KB entity names, with aliases and output ids."""

    facts: dict[tuple[str, str], set[str]]
    aliases: dict[str, set[str]]  # entity name -> its aliases (the name itself included)
    ids: dict[str, str]  # entity name -> id written to h.id / t.id (default: the name)
    source: str = "<kb>"

    @property
    def n_facts(self) -> int:
        return sum(len(relations) for relations in self.facts.values())

    def entity_id(self, name: str) -> str:
        return self.ids.get(name, name)


def _tsv_lines(path: str | Path, what: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of a UTF-8 TSV file; blank lines and ``#`` comments skipped."""
    path = check_readable_file(path, f"{what} (TSV file)")
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if not line.strip() or line.startswith("#"):
                    continue
                yield number, [part.strip() for part in line.split("\t")]
    except UnicodeDecodeError:
        raise HiereInputError(str(path), None, None, f"{what} is not UTF-8 text (binary file?)") from None
    except OSError as error:
        raise HiereInputError(str(path), None, None, f"cannot read the {what}: {error.strerror}") from None


def _fields(path: str | Path, what: str, names: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    for number, parts in _tsv_lines(path, what):
        if len(parts) != len(names):
            layout = " <tab> ".join(names)
            raise HiereInputError(
                str(path), f"line {number}", None,
                f"expected {len(names)} tab-separated fields ({layout}), got {len(parts)}",
            )
        for name, value in zip(names, parts, strict=True):
            if not value:
                raise HiereInputError(str(path), f"line {number}", name, "empty")
        yield number, parts


def read_kb(
    facts_path: str | Path, aliases_path: str | Path | None = None, ids_path: str | Path | None = None
) -> KnowledgeBase:
    """Read ``head <tab> relation <tab> tail`` facts, ``entity <tab> alias`` lines, ``entity <tab> id`` lines.

    Duplicate facts count once; a fact of an entity with itself is ignored (it never forms a pair).
    An entity of the aliases file that is in no fact is still a KB entity: its pairs are NA pairs.
    """
    facts: dict[tuple[str, str], set[str]] = defaultdict(set)
    for _, (head, relation, tail) in _fields(facts_path, "KB facts file", ("head", "relation", "tail")):
        if head != tail:
            facts[(head, tail)].add(relation)
    if not facts:
        raise HiereInputError(
            str(facts_path), None, None, "the KB has no facts (expected lines head <tab> relation <tab> tail)"
        )
    entities = {name for pair in facts for name in pair}
    aliases: dict[str, set[str]] = {name: {name} for name in entities}
    if aliases_path is not None:
        for _, (entity, alias) in _fields(aliases_path, "aliases file", ("entity", "alias")):
            aliases.setdefault(entity, {entity}).add(alias)
    ids: dict[str, str] = {}
    if ids_path is not None:
        owner: dict[str, str] = {}
        for number, (entity, entity_id) in _fields(ids_path, "entity ids file", ("entity", "id")):
            if owner.setdefault(entity_id, entity) != entity:
                raise HiereInputError(
                    str(ids_path), f"line {number}", "id",
                    f"id {entity_id!r} is given to both {owner[entity_id]!r} and {entity!r}",
                )
            ids[entity] = entity_id
    return KnowledgeBase(dict(facts), aliases, ids, str(facts_path))


# ----------------------------------------------------------------------------------------------- matching


def words(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of ``text``: runs of letters/digits, or single other characters."""
    return [match.span() for match in _WORD.finditer(text)]


def _is_short_acronym(alias: str) -> bool:
    letters = alias.replace(".", "").replace(" ", "")
    return len(letters) <= _SHORT_ACRONYM and letters.isupper()


class AliasIndex:
    """Whole-word, leftmost-longest, case-aware lookup of KB aliases in a sentence (see module docstring)."""

    def __init__(self, kb: KnowledgeBase, ignore_case: bool = False):
        self.ignore_case = ignore_case
        self.exact: dict[tuple[str, ...], set[str]] = defaultdict(set)
        self.folded: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for entity, names in kb.aliases.items():
            for alias in names:
                key = tuple(alias[a:b] for a, b in words(alias))
                if not key:
                    continue
                if ignore_case and not _is_short_acronym(alias):
                    self.folded[tuple(w.casefold() for w in key)].add(entity)
                else:
                    self.exact[key].add(entity)
        self.max_words = max(len(key) for key in [*self.exact, *self.folded])
        self.first_words = {key[0] for key in self.exact} | {key[0] for key in self.folded}

    def lookup(self, surface: Sequence[str]) -> set[str]:
        """The KB entities whose alias is exactly these words (empty set: none)."""
        found = self.exact.get(tuple(surface), set())
        if self.ignore_case:
            found = found | self.folded.get(tuple(w.casefold() for w in surface), set())
        return found

    def lookup_text(self, text: str) -> set[str]:
        return self.lookup([text[a:b] for a, b in words(text)])

    def find(self, text: str) -> list[tuple[int, int, set[str]]]:
        """``(start, end, entities)`` of every leftmost-longest alias match in ``text``, by position."""
        spans = words(text)
        tokens = [text[a:b] for a, b in spans]
        folded = [t.casefold() for t in tokens] if self.ignore_case else tokens
        matches, index = [], 0
        while index < len(tokens):
            if tokens[index] not in self.first_words and folded[index] not in self.first_words:
                index += 1
                continue
            for length in range(min(self.max_words, len(tokens) - index), 0, -1):
                entities = self.lookup(tokens[index : index + length])
                if entities:
                    matches.append((spans[index][0], spans[index + length - 1][1], entities))
                    index += length
                    break
            else:
                index += 1
        return matches


@dataclass(frozen=True)
class EntityMention:
    entity: str  # KB entity name
    start: int  # character span in the sentence text, end exclusive
    end: int


def link_mentions(
    sentence: str,
    index: AliasIndex,
    ner_spans: Sequence[tuple[int, int]] | None,
    mode: str,
    counts: Counter,
) -> list[EntityMention]:
    """KB mentions of one sentence.

    ``alias``: every alias match. ``ner``: spaCy entities whose text is exactly a KB alias.
    ``both``: the union, longest first without overlaps, minus alias matches that lie inside a longer
    spaCy entity that is not itself a KB entity ("York" inside "New York Times").
    Mentions of an ambiguous alias are dropped and counted in ``counts["ambiguous_mentions"]``.
    """
    candidates: list[tuple[int, int, set[str]]] = []
    if mode in ("alias", "both"):
        candidates += index.find(sentence)
    linked_ner: list[tuple[int, int, set[str]]] = []
    unlinked_ner: list[tuple[int, int]] = []
    for start, end in ner_spans or ():
        entities = index.lookup_text(sentence[start:end])
        (linked_ner.append((start, end, entities)) if entities else unlinked_ner.append((start, end)))
    if mode == "ner":
        candidates = linked_ner
    elif mode == "both":
        candidates = [
            (start, end, entities) for start, end, entities in candidates
            if not any(a <= start and end <= b and (a, b) != (start, end) for a, b in unlinked_ner)
        ] + linked_ner
    taken: list[tuple[int, int]] = []
    mentions = []
    for start, end, entities in sorted(candidates, key=lambda c: (-(c[1] - c[0]), c[0])):
        if any(start < b and a < end for a, b in taken):
            continue
        taken.append((start, end))
        if len(entities) > 1:
            counts["ambiguous_mentions"] += 1
            continue
        mentions.append(EntityMention(next(iter(entities)), start, end))
    return sorted(mentions, key=lambda m: (m.start, m.end))


def sentence_instances(
    sentence: str, mentions: Sequence[EntityMention], kb: KnowledgeBase
) -> list[tuple[str, str, EntityMention, EntityMention]]:
    """``(relation, pair kind, head mention, tail mention)`` for one sentence (kind: ``pos`` or ``na``).

    Each entity is represented by its first mention. Every ordered pair with KB facts gives one
    instance per relation; an unordered pair with no fact in either direction gives one NA instance.
    """
    first: dict[str, EntityMention] = {}
    for mention in mentions:
        first.setdefault(mention.entity, mention)
    names = sorted(first, key=kb.entity_id)
    instances = []
    for position, a in enumerate(names):
        for b in names[position + 1 :]:
            forward, backward = kb.facts.get((a, b), set()), kb.facts.get((b, a), set())
            for relation in sorted(forward):
                instances.append((relation, "pos", first[a], first[b]))
            for relation in sorted(backward):
                instances.append((relation, "pos", first[b], first[a]))
            if not forward and not backward:
                instances.append((NA, "na", first[a], first[b]))
    return instances


# ----------------------------------------------------------------------------------------------- corpus


@dataclass
class CorpusDocument:
    """One document: either raw ``text`` (split into sentences by spaCy) or given ``sentences``."""

    where: str  # "path, line N" etc., for messages and provenance
    text: str | None = None
    sentences: list[str] | None = None


def corpus_files(path: str | Path) -> list[Path]:
    """The files of a corpus path: the file itself, or every file under a directory (sorted, hidden skipped)."""
    path = Path(path)
    if not path.exists():
        raise HiereInputError(str(path), None, None, "corpus path does not exist")
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    if not files:
        raise HiereInputError(str(path), None, None, "corpus directory holds no files")
    for file in files:
        if not os.access(file, os.R_OK):
            raise HiereInputError(str(file), None, None, "cannot read the corpus file (permission denied)")
    return files


def iter_corpus(path: str | Path) -> Iterator[CorpusDocument]:
    """Stream the documents of a corpus (see :func:`read_corpus_file` for the formats)."""
    for file in corpus_files(path):
        yield from read_corpus_file(file)


def read_corpus_file(path: Path) -> Iterator[CorpusDocument]:
    """Documents of one file, by extension.

    ``.jsonl``: one JSON object a line, ``{"text": ...}`` or a DocRED document (``sents``: token lists).
    ``.json``: a JSON list of such objects (read whole: DocRED releases are lists). Anything else is
    plain UTF-8 text, streamed: each paragraph (lines up to a blank line) is a document.
    """
    name = str(path)
    try:
        if path.suffix == ".json":
            from hiere.data.docred import load_json

            raw = load_json(path)
            items = raw if isinstance(raw, list) else [raw]
            for number, item in enumerate(items, start=1):
                yield _record_document(item, name, f"record {number}")
        elif path.suffix == ".jsonl":
            for number, line in _text_lines(path):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as error:
                    raise HiereInputError(name, f"line {number}", None, f"malformed JSON ({error.msg})") from None
                yield _record_document(item, name, f"line {number}")
        else:
            yield from _paragraphs(path)
    except OSError as error:
        raise HiereInputError(name, None, None, f"cannot read the corpus file: {error.strerror}") from None


def _record_document(item: Any, path: str, where: str) -> CorpusDocument:
    if isinstance(item, dict) and isinstance(item.get("text"), str):
        return CorpusDocument(f"{path}, {where}", text=item["text"])
    if isinstance(item, dict) and isinstance(item.get("sents"), list):
        sentences = item["sents"]
        for number, sentence in enumerate(sentences):
            if not isinstance(sentence, list) or not all(isinstance(token, str) for token in sentence):
                raise HiereInputError(path, where, f"sents[{number}]", "must be a list of token strings")
        return CorpusDocument(f"{path}, {where}", sentences=[" ".join(tokens) for tokens in sentences])
    raise HiereInputError(path, where, "text", "expected an object with a 'text' string or DocRED 'sents'")


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 file, streamed; binary data fails naming its line."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = "\x00"
            if "\x00" in line:
                raise HiereInputError(str(path), f"line {number}", None, "not UTF-8 text (binary file?)")
            yield number, line


def _paragraphs(path: Path) -> Iterator[CorpusDocument]:
    lines: list[str] = []
    start = size = 0
    for number, line in _text_lines(path):
        if line.strip():
            if not lines:
                start = number
            lines.append(line)
            size += len(line)
        if lines and (not line.strip() or size >= MAX_PARAGRAPH_CHARS):
            yield CorpusDocument(f"{path}, line {start}", text="".join(lines))
            lines, size = [], 0
    if lines:
        yield CorpusDocument(f"{path}, line {start}", text="".join(lines))


# ----------------------------------------------------------------------------------------------- spaCy


SentenceItem = tuple[str, list[tuple[int, int]] | None, int]  # text, NER character spans, offset in the document


class SentenceSource:
    """Cuts documents into sentences and finds spaCy entities, with the model hiere extract uses."""

    def __init__(self, use_ner: bool, nlp: Any = None, batch_size: int = 32):
        self.use_ner, self._nlp, self.batch_size = use_ner, nlp, batch_size

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            from hiere.text.pipeline import TextPipeline

            self._nlp = TextPipeline().nlp
        return self._nlp

    def sentences(self, documents: Iterable[CorpusDocument]) -> Iterator[tuple[CorpusDocument, list[SentenceItem]]]:
        """``(document, [(sentence text, NER character spans or None, start offset in the document)])``."""
        from hiere.text.pipeline import DEFAULT_CHUNK_CHARS, split_windows

        unused = {"tagger", "attribute_ruler", "lemmatizer"} | (set() if self.use_ner else {"ner"})
        for document in documents:
            if document.sentences is not None:  # given sentences: NER only, sentence by sentence
                texts, offsets, offset = document.sentences, [], 0
                for text in texts:
                    offsets.append(offset)
                    offset += len(text) + 1
                if not self.use_ner:
                    yield document, [(t, None, o) for t, o in zip(texts, offsets, strict=True)]
                    continue
                disable = [p for p in self.nlp.pipe_names if p in unused or p == "parser"]
                docs = self.nlp.pipe(texts, disable=disable, batch_size=self.batch_size)
                yield document, [
                    (t, [(e.start_char, e.end_char) for e in doc.ents if e.label_ not in _NUMERIC_NER], o)
                    for t, o, doc in zip(texts, offsets, docs, strict=True)
                ]
                continue
            text = document.text or ""
            out = []
            if text.strip():
                windows = split_windows(text, DEFAULT_CHUNK_CHARS)
                disable = [p for p in self.nlp.pipe_names if p in unused]
                pieces = (text[a:b] for a, b in windows)
                for (offset, _), doc in zip(windows, self.nlp.pipe(pieces, disable=disable), strict=True):
                    for sent in doc.sents:
                        sentence = sent.text
                        if not sentence.strip():
                            continue
                        ner = None
                        if self.use_ner:
                            ner = [(e.start_char - sent.start_char, e.end_char - sent.start_char)
                                   for e in sent.ents if e.label_ not in _NUMERIC_NER]
                        out.append((sentence, ner, offset + sent.start_char))
            yield document, out


# ----------------------------------------------------------------------------------------------- builder


@dataclass
class BuildOptions:
    """Everything that decides the output (saved in the spool so ``resume`` never mixes two settings)."""

    match: str = "both"
    ignore_case: bool = False
    na_ratio: float | None = 1.0  # NA pairs kept per positive pair; None: keep every NA pair
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 42
    provenance: bool = False  # add "source": {"doc", "start", "end"} to every line
    limit: int | None = None  # read at most this many documents

    def __post_init__(self) -> None:
        if self.match not in MATCH_MODES:
            raise HiereInputError(None, None, "--match", f"must be one of {', '.join(MATCH_MODES)}, got {self.match!r}")
        if self.na_ratio is not None and self.na_ratio < 0:
            raise HiereInputError(None, None, "--na-ratio", f"must be >= 0 (or 'all'), got {self.na_ratio}")
        self.split = tuple(float(f) for f in self.split)  # type: ignore[assignment]
        if len(self.split) != 3 or any(f < 0 for f in self.split) or abs(sum(self.split) - 1) > 1e-6:
            raise HiereInputError(None, None, "--split", f"needs three fractions >= 0 summing to 1, got {self.split}")

    def matching_key(self) -> dict[str, Any]:
        """The options the spool (pass 1) depends on."""
        return {"match": self.match, "ignore_case": self.ignore_case, "provenance": self.provenance,
                "limit": self.limit}


@dataclass
class Spool:
    """Pass-1 state: the pairs seen (kind and sentence counts) and the running counts."""

    pairs: dict[tuple[str, str], str] = field(default_factory=dict)  # ordered (h_id, t_id) -> "pos" | "na"
    counts: Counter = field(default_factory=Counter)
    documents: int = 0
    complete: bool = False


def _fingerprint(paths: Sequence[Path | None]) -> list[list[Any]]:
    out = []
    for path in paths:
        if path is None:
            out.append([None])
            continue
        stat = path.stat()
        out.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return out


def _pair_key(head_id: str, tail_id: str) -> tuple[str, str]:
    return (head_id, tail_id) if head_id <= tail_id else (tail_id, head_id)


def _rank(seed: int, key: tuple[str, str]) -> str:
    return hashlib.sha1(f"{seed}\x1f{key[0]}\x1f{key[1]}".encode()).hexdigest()


def split_pairs(keys: Iterable[tuple[str, str]], fractions: Sequence[float], seed: int) -> dict[tuple[str, str], str]:
    """Unordered pair -> split name: the pairs in a seeded order, cut at the fractions (rounded)."""
    ordered = sorted(set(keys), key=lambda key: (_rank(seed, key), key))
    n = len(ordered)
    n_train = round(fractions[0] * n)
    n_dev = round((fractions[0] + fractions[1]) * n) - n_train
    assignment = {}
    for position, key in enumerate(ordered):
        assignment[key] = "train" if position < n_train else "dev" if position < n_train + n_dev else "test"
    return assignment


def sample_na_pairs(na_keys: Iterable[tuple[str, str]], n_positive: int, ratio: float | None, seed: int) -> set:
    """The NA pairs kept: ``round(ratio * n_positive)`` of them in a seeded order (all when ``ratio`` is None)."""
    keys = sorted(set(na_keys))
    if ratio is None:
        return set(keys)
    rng = random.Random(seed)
    rng.shuffle(keys)
    return set(keys[: round(ratio * n_positive)])


class DatasetBuilder:
    """``build(corpus, out_dir)``: the two passes of the module docstring. Usable from Python::

        kb = read_kb("facts.tsv", "aliases.tsv")
        stats = DatasetBuilder(kb, BuildOptions(na_ratio=2.0)).build("corpus/", "out/")
    """

    def __init__(self, kb: KnowledgeBase, options: BuildOptions | None = None, nlp: Any = None):
        self.kb, self.options = kb, options or BuildOptions()
        self.index = AliasIndex(kb, self.options.ignore_case)
        self.source = SentenceSource(self.options.match != "alias", nlp)

    # pass 1 ------------------------------------------------------------------------------------------

    def _spool_header(self, corpus: str | Path, extra: Sequence[Path | None]) -> dict[str, Any]:
        files = corpus_files(corpus)
        return {"hiere_build_ds": 1, "options": self.options.matching_key(),
                "corpus": _fingerprint(files), "kb": _fingerprint(list(extra))}

    def _load_spool(self, spool_path: Path, header: dict[str, Any]) -> Spool | None:
        """The state of a spool written with the same header (truncated to its last checkpoint), else None."""
        if not spool_path.exists():
            return None
        state, good_bytes, pending = Spool(), 0, []
        with open(spool_path, "rb") as handle:
            first = handle.readline()
            try:
                if json.loads(first) != header:
                    return None
            except json.JSONDecodeError:
                return None
            good_bytes = handle.tell()
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError:
                    break
                if "checkpoint" in record:
                    for pair, kind in pending:
                        state.pairs.setdefault(pair, kind)
                    pending = []
                    state.documents = record["checkpoint"]
                    state.counts = Counter(record["counts"])
                    state.complete = bool(record.get("complete"))
                    good_bytes = handle.tell()
                else:
                    pending.append(((record["h"]["id"], record["t"]["id"]), record["kind"]))
        with open(spool_path, "r+b") as handle:
            handle.truncate(good_bytes)
        return state

    def match(self, corpus: str | Path, spool_path: Path, header: dict[str, Any], resume: bool,
              progress: bool) -> Spool:
        """Pass 1: write every candidate line of the corpus to the spool; returns the pairs seen."""
        state = self._load_spool(spool_path, header) if resume else None
        if resume and state is None and spool_path.exists():
            print("hiere build-ds: the saved matches were made from other inputs or options; starting over",
                  file=sys.stderr)
        if state is not None and state.complete:
            return state
        if state is None:
            state = Spool()
            spool_path.parent.mkdir(parents=True, exist_ok=True)
            with open(spool_path, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(header) + "\n")
        skip = state.documents
        documents = _limited(iter_corpus(corpus), self.options.limit)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.options.limit, unit="doc", file=sys.stderr, disable=None, initial=skip,
                       desc="build-ds")
        with open(spool_path, "a", encoding="utf-8") as handle:
            for _ in range(skip):
                next(documents, None)
            counts = state.counts
            for document, sentences in self.source.sentences(documents):
                for sentence, ner, offset in sentences:
                    counts["sentences"] += 1
                    self._write_sentence(handle, document, sentence, ner, offset, state)
                state.documents += 1
                counts["documents"] = state.documents
                handle.write(json.dumps({"checkpoint": state.documents, "counts": dict(counts)}) + "\n")
                if state.documents % 50 == 0:
                    handle.flush()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(sentences=counts["sentences"], pos=counts["positive_lines"],
                                    na=counts["na_lines"], refresh=False)
            counts["documents"] = state.documents
            handle.write(json.dumps({"checkpoint": state.documents, "counts": dict(counts), "complete": True}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if bar is not None:
            bar.close()
        state.complete = True
        return state

    def _write_sentence(self, handle: TextIO, document: CorpusDocument, sentence: str,
                        ner: list[tuple[int, int]] | None, offset: int, state: Spool) -> None:
        mentions = link_mentions(sentence, self.index, ner, self.options.match, state.counts)
        if len({m.entity for m in mentions}) < 2:
            return
        state.counts["sentences_with_pair"] += 1
        text = sentence.replace("\r", " ").replace("\n", " ").replace("\t", " ")
        for relation, kind, head, tail in sentence_instances(sentence, mentions, self.kb):
            record: dict[str, Any] = {
                "text": text,
                "h": {"id": self.kb.entity_id(head.entity), "name": sentence[head.start : head.end],
                      "pos": [head.start, head.end]},
                "t": {"id": self.kb.entity_id(tail.entity), "name": sentence[tail.start : tail.end],
                      "pos": [tail.start, tail.end]},
                "relation": relation,
                "kind": kind,
                "kb": [head.entity, tail.entity],
            }
            if self.options.provenance:
                record["source"] = {"doc": document.where, "start": offset, "end": offset + len(sentence)}
            handle.write(dumps_json(record) + "\n")
            state.counts["positive_lines" if kind == "pos" else "na_lines"] += 1
            state.pairs.setdefault((record["h"]["id"], record["t"]["id"]), kind)

    # pass 2 ------------------------------------------------------------------------------------------

    def build(self, corpus: str | Path, out_dir: str | Path, *, resume: bool = False, progress: bool = False,
              aliases_path: str | Path | None = None, ids_path: str | Path | None = None) -> dict[str, Any]:
        """Both passes; returns the statistics also written to ``OUT/stats.json``."""
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise HiereInputError(str(out), None, None, "output path exists and is not a directory")
        kb_files = [Path(self.kb.source), *(Path(p) for p in (aliases_path, ids_path) if p)]
        header = self._spool_header(corpus, kb_files)
        spool_path = out / SPOOL_DIR / "instances.jsonl"
        state = self.match(corpus, spool_path, header, resume, progress)
        return self.write_splits(spool_path, out, state)

    def write_splits(self, spool_path: Path, out: Path, state: Spool) -> dict[str, Any]:
        """Pass 2: sample NA pairs, split by unordered pair, write the splits, rel2id.json, stats.json."""
        options = self.options
        positive = {_pair_key(*pair) for pair, kind in state.pairs.items() if kind == "pos"}
        na = {_pair_key(*pair) for pair, kind in state.pairs.items() if kind == "na"} - positive
        kept_na = sample_na_pairs(na, len(positive), options.na_ratio, options.seed)
        assignment = split_pairs(positive, options.split, options.seed)
        assignment.update(split_pairs(kept_na, options.split, options.seed))

        temps = {split: out / f".{split}.jsonl.tmp" for split in SPLITS}
        handles = {split: open(path, "w", encoding="utf-8") for split, path in temps.items()}  # noqa: SIM115
        lines, bags = Counter(), defaultdict(set)
        per_relation: dict[str, Counter] = defaultdict(Counter)
        matched_facts: set[tuple[str, str, str]] = set()
        try:
            with open(spool_path, encoding="utf-8") as spool:
                next(spool)
                for raw in spool:
                    record = json.loads(raw)
                    if "checkpoint" in record:
                        continue
                    key = _pair_key(record["h"]["id"], record["t"]["id"])
                    split = assignment.get(key)
                    if split is None:
                        continue
                    relation = record["relation"]
                    head_name, tail_name = record.pop("kb")
                    record.pop("kind")
                    handles[split].write(dumps_json(record) + "\n")
                    lines[split] += 1
                    bag = (record["h"]["id"], record["t"]["id"], relation)
                    if bag not in bags[split]:
                        bags[split].add(bag)
                        per_relation[relation][f"{split}_bags"] += 1
                    per_relation[relation][f"{split}_sentences"] += 1
                    if relation != NA:
                        matched_facts.add((head_name, relation, tail_name))
            for handle in handles.values():
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            for handle in handles.values():
                handle.close()
            for path in temps.values():
                path.unlink(missing_ok=True)
            raise
        for handle in handles.values():
            handle.close()

        relations = RelationMap.from_facts(r for r in per_relation if r != NA)
        stats = self._stats(state, positive, na, kept_na, lines, bags, per_relation, matched_facts)
        write_json_atomic(out / ".rel2id.json.tmp", {r: i for i, r in enumerate(relations.relations)}, indent=1)
        write_json_atomic(out / ".stats.json.tmp", stats, indent=1)
        for split, path in temps.items():
            os.replace(path, out / f"{split}.jsonl")
        os.replace(out / ".rel2id.json.tmp", out / "rel2id.json")
        os.replace(out / ".stats.json.tmp", out / "stats.json")
        return stats

    def _stats(self, state: Spool, positive: set, na: set, kept_na: set, lines: Counter, bags: dict,
               per_relation: dict, matched_facts: set) -> dict[str, Any]:
        counts = state.counts
        kb_facts = {(h, r, t) for (h, t), rels in self.kb.facts.items() for r in rels}
        never = sorted(kb_facts - matched_facts)
        n_bags = {split: len(bags[split]) for split in SPLITS}
        na_bags = {split: sum(1 for b in bags[split] if b[2] == NA) for split in SPLITS}
        total_bags = sum(n_bags.values())
        return {
            "options": {**asdict(self.options), "split": list(self.options.split)},
            "documents": counts["documents"],
            "sentences": counts["sentences"],
            "sentences_with_pair": counts["sentences_with_pair"],
            "ambiguous_mentions_skipped": counts["ambiguous_mentions"],
            "lines": {split: lines[split] for split in SPLITS},
            "bags": n_bags,
            "na_bags": na_bags,
            "na_share_of_bags": round(sum(na_bags.values()) / total_bags, 4) if total_bags else 0.0,
            "pairs": {"positive": len(positive), "na_seen": len(na), "na_kept": len(kept_na)},
            "facts_per_relation": {relation: dict(sorted(per_relation[relation].items()))
                                   for relation in sorted(per_relation)},
            "kb_facts": len(kb_facts),
            "kb_facts_matched": len(kb_facts) - len(never),
            "kb_facts_never_matched": len(never),
            "kb_facts_never_matched_examples": [list(fact) for fact in never[:20]],
        }


def _limited(documents: Iterator[CorpusDocument], limit: int | None) -> Iterator[CorpusDocument]:
    for number, document in enumerate(documents):
        if limit is not None and number >= limit:
            return
        yield document


def build_dataset(
    corpus: str | Path,
    kb_path: str | Path,
    out_dir: str | Path,
    aliases: str | Path | None = None,
    ids: str | Path | None = None,
    options: BuildOptions | None = None,
    *,
    resume: bool = False,
    progress: bool = False,
    nlp: Any = None,
) -> dict[str, Any]:
    """Read the KB and build ``out_dir`` from ``corpus`` (the Python form of ``hiere build-ds``)."""
    kb = read_kb(kb_path, aliases, ids)
    corpus_files(corpus)  # bad corpus paths fail before anything is written
    builder = DatasetBuilder(kb, options, nlp)
    return builder.build(corpus, out_dir, resume=resume, progress=progress, aliases_path=aliases, ids_path=ids)


# ----------------------------------------------------------------------------------------------- CLI

DESCRIPTION = """\
Build a distant-supervision dataset (OpenNRE jsonl bags) from a corpus and a knowledge base.

A sentence that mentions two KB entities becomes an instance of every KB relation between them
(NA when the KB has none). Output in OUT_DIR: train.jsonl, dev.jsonl, test.jsonl (disjoint by
entity pair), rel2id.json (NA = 0), stats.json. Train on it with any bag config:

  hiere build-ds --corpus news/ --kb facts.tsv --aliases aliases.tsv -o data/my_ds
  hiere train configs/pcnn_att_nyt10.yaml -o runs/my_pcnn --set data.train=data/my_ds/train.jsonl \\
      --set data.dev=data/my_ds/dev.jsonl --set data.test=data/my_ds/test.jsonl \\
      --set data.relations=data/my_ds/rel2id.json --set data.long_tail=null

Inputs:
  --corpus   a file or a directory (every file under it). .jsonl: {"text": ...} or DocRED documents
             a line; .json: a list of those; any other file: plain UTF-8 text, one document per
             paragraph (blank-line separated).
  --kb       TSV, one fact a line: head <TAB> relation <TAB> tail (names; relations may be paths
             such as /people/person/place_lived, which HNRE reads as a hierarchy). # lines skipped.
  --aliases  TSV entity <TAB> alias (more names for an entity; the KB name is always one).
  --ids      TSV entity <TAB> id (written as h.id/t.id; default: the name).

Matching: whole words, longest alias first, case-sensitive unless --ignore-case (aliases of <= 3
capital letters such as US stay case-sensitive). A killed run continues with --resume; a re-run with
--resume and only --na-ratio/--split/--seed changed skips the spaCy pass. See docs/build_ds.md.
"""


def add_build_ds_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hiere build-ds`` (see :data:`DESCRIPTION`)."""
    parser.add_argument("--corpus", required=True, metavar="PATH", help="corpus file or directory")
    parser.add_argument("--kb", required=True, metavar="FACTS.tsv", help="facts: head <TAB> relation <TAB> tail")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output directory")
    parser.add_argument("--aliases", metavar="ALIASES.tsv", help="entity <TAB> alias lines")
    parser.add_argument("--ids", metavar="IDS.tsv", help="entity <TAB> id lines (ids written to h.id/t.id)")
    parser.add_argument("--match", choices=MATCH_MODES, default="both",
                        help="alias: exact alias matches (fast, no NER); ner: spaCy entities whose text is an "
                        "alias; both (default): alias matches, minus those inside a longer unlinked spaCy entity")
    parser.add_argument("--ignore-case", action="store_true", help="fold case when matching aliases")
    parser.add_argument("--na-ratio", default="1", metavar="R",
                        help="NA pairs kept per positive pair (default 1; 0: none; 'all': every NA pair)")
    parser.add_argument("--split", default="0.8,0.1,0.1", metavar="TRAIN,DEV,TEST",
                        help="fractions of entity pairs per split (default 0.8,0.1,0.1)")
    parser.add_argument("--seed", type=int, default=42, help="seed of NA sampling and the split (default 42)")
    parser.add_argument("--provenance", action="store_true",
                        help='add "source": {doc, start, end} (document and character span) to every line')
    parser.add_argument("--limit", type=int, default=None, help="read only the first N documents")
    parser.add_argument("--resume", action="store_true",
                        help="continue a killed run from OUT_DIR/.build-ds (or redo only the split)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    raw = str(args.na_ratio).strip().lower()
    try:
        ratio = None if raw == "all" else float(raw)
    except ValueError:
        raise HiereInputError(None, None, "--na-ratio", f"expected a number or 'all', got {args.na_ratio!r}") from None
    try:
        split = tuple(float(part) for part in str(args.split).split(","))
    except ValueError:
        message = f"expected three fractions like 0.8,0.1,0.1, got {args.split!r}"
        raise HiereInputError(None, None, "--split", message) from None
    if args.limit is not None and args.limit < 1:
        raise HiereInputError(None, None, "--limit", f"must be >= 1, got {args.limit}")
    return BuildOptions(match=args.match, ignore_case=args.ignore_case, na_ratio=ratio, split=split,  # type: ignore[arg-type]
                        seed=args.seed, provenance=args.provenance, limit=args.limit)


def run_build_ds(args: argparse.Namespace) -> int:
    """``hiere build-ds``: build the dataset, print a summary line on stderr."""
    options = options_from_args(args)
    stats = build_dataset(args.corpus, args.kb, args.output, args.aliases, args.ids, options,
                          resume=args.resume, progress=not args.no_progress)
    bags = stats["bags"]
    print(
        f"hiere build-ds: {stats['documents']} documents, {stats['sentences']} sentences, "
        f"{sum(stats['lines'].values())} lines, bags train/dev/test {bags['train']}/{bags['dev']}/{bags['test']} "
        f"(NA share {stats['na_share_of_bags']:.1%}), KB facts matched {stats['kb_facts_matched']}/"
        f"{stats['kb_facts']} -> {args.output}",
        file=sys.stderr,
    )
    if not sum(stats["lines"].values()):
        print("hiere build-ds: warning: no sentence names two KB entities; check that the KB's names (or "
              "--aliases) are written as in the corpus, or try --ignore-case", file=sys.stderr)
    return 0
