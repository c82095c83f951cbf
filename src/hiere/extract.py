"""Raw English text -> relation triples with any trained hiere model (``hiere extract``).

Pipeline: text -> spaCy sentences, tokens and entities (:mod:`hiere.text.pipeline`) -> mentions
grouped into entities by string matching (:mod:`hiere.text.clusters`) -> a DocRED document ->

* a document-level model: the document itself; its DocRED records become triples;
* a bag-level model: :func:`document_to_bags`, one bag per ordered entity pair that shares a
  sentence; a relation is kept when its score reaches the threshold (the ``threshold`` argument, else
  the model's threshold tuned on dev data: the score at max micro-F1).

A triple is ``{head, head_type, relation, relation_name, tail, tail_type, score, evidence}``: entity
names as written in the text (the longest mention of the entity), the relation id and its name from
the model's relation map, and ``evidence``, the sentences behind the fact (see
:func:`triples_from_predictions`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hiere.data.bags import Bag, BagSentence
from hiere.data.docred import Document
from hiere.data.relations import NA, RelationMap
from hiere.errors import HiereInputError
from hiere.io import parse_json
from hiere.tasks import get_task
from hiere.text.pipeline import (
    BIOMEDICAL_TYPES,
    EntitySpan,
    ParsedText,
    TextPipeline,
    binary_problem,
    check_text,
    clean_text,
    decode_text,
    entity_names,
    parse_entities,
    split_windows,
)

LOGGER = logging.getLogger(__name__)
BAG_ENTITY_TYPES = ("PER", "ORG", "LOC", "MISC")  # NYT10 / GDS pair named entities, never dates or numbers
DEFAULT_WINDOW_TOKENS = 1024  # longer documents are read in overlapping windows (Re-DocRED: <= 481 tokens)
DEFAULT_MAX_CHARS = 100_000  # longer texts are read in parts of this many characters (Re-DocRED dev: <= 2,665)
TRIPLE_FIELDS = ("head", "head_type", "relation", "relation_name", "tail", "tail_type", "score", "evidence")


def entity_ids(document: Document) -> list[str]:
    """A unique id per entity for bags: its name, with `` #2``, `` #3`` added when two entities share it."""
    ids, seen = [], {}
    for name in entity_names(document):
        seen[name] = seen.get(name, 0) + 1
        ids.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return ids


def document_to_bags(document: Document, entity_types: Sequence[str] | None = BAG_ENTITY_TYPES) -> list[Bag]:
    """One bag per ordered pair of distinct entities that have mentions in a common sentence.

    The bag holds one sentence per such sentence (in text order), with the head and tail spans of
    each entity's first mention there (a tail mention overlapping the head's is skipped). Only
    entities whose type is in ``entity_types`` are paired (``None``: all). Ids are
    :func:`entity_ids`; ``relation`` is ``"NA"`` (unknown).
    """
    ids, names = entity_ids(document), entity_names(document)
    types = [document.entity_type(i) for i in range(len(document.entities))]
    keep = [i for i, kind in enumerate(types) if entity_types is None or kind in entity_types]
    by_sentence = [
        {m.sent_id: m.pos for m in reversed(document.entities[i])} for i in range(len(document.entities))
    ]
    bags = []
    for h in keep:
        for t in keep:
            if h == t:
                continue
            sentences = []
            for sent_id in sorted(by_sentence[h].keys() & by_sentence[t].keys()):
                head, tail = by_sentence[h][sent_id], by_sentence[t][sent_id]
                if head[0] < tail[1] and tail[0] < head[1]:
                    tail = next((m.pos for m in document.entities[t] if m.sent_id == sent_id
                                 and not (head[0] < m.pos[1] and m.pos[0] < head[1])), None)
                    if tail is None:
                        continue
                tokens = tuple(document.sents[sent_id])
                sentences.append(BagSentence(tokens, head, tail, NA, " ".join(tokens)))
            if sentences:
                bags.append(Bag(ids[h], ids[t], names[h], names[t], sentences, [NA]))
    return bags


def triples_from_predictions(
    document: Document,
    records: Iterable[Mapping[str, Any]],
    relations: RelationMap,
    sentence_texts: Sequence[str] | None = None,
    threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """Prediction records of one document -> triples, highest score first, one per (head, relation, tail).

    Document records (``{"title", "h_idx", "t_idx", "r", "score"}``) are all kept: the model already
    applied its threshold. Bag records (``{"h", "t", "relation", "score"}``, ids from
    :func:`entity_ids`): each entity pair gets at most one relation, its best-scored non-NA one, kept
    when its score reaches ``threshold`` (bag models rank every relation of every pair).

    ``evidence``: the texts of the sentences the record names in its ``"evidence"`` field (sentence
    ids, from models that explain); else the sentences where head and tail both have mentions; else
    the first sentence mentioning the head and the first mentioning the tail.
    """
    texts = list(sentence_texts) if sentence_texts is not None else [" ".join(s) for s in document.sents]
    names, ids = entity_names(document), entity_ids(document)
    index_of = {entity_id: i for i, entity_id in enumerate(ids)}
    records = list(records)
    if any("h_idx" not in record for record in records):
        records = _best_per_pair(records, threshold)
    best: dict[tuple[int, str, int], dict[str, Any]] = {}
    for record in records:
        if "h_idx" in record:
            h, t, relation = int(record["h_idx"]), int(record["t_idx"]), str(record["r"])
        else:
            if record["h"] not in index_of or record["t"] not in index_of:
                continue
            h, t, relation = index_of[record["h"]], index_of[record["t"]], str(record["relation"])
        score = float(record.get("score", 1.0))
        key = (h, relation, t)
        if key in best and best[key]["score"] >= score:
            continue
        best[key] = {
            "head": names[h],
            "head_type": document.entity_type(h),
            "relation": relation,
            "relation_name": relations.name(relation),
            "tail": names[t],
            "tail_type": document.entity_type(t),
            "score": round(score, 4),
            "evidence": [texts[i] for i in _evidence(document, h, t, record.get("evidence"))],
        }
    return sorted(best.values(), key=lambda triple: -triple["score"])


def _best_per_pair(records: Iterable[Mapping[str, Any]], threshold: float) -> list[Mapping[str, Any]]:
    """Bag records -> the best non-NA record of each (h, t) pair whose score reaches ``threshold``."""
    best: dict[tuple[str, str], Mapping[str, Any]] = {}
    for record in records:
        if "h_idx" in record:
            raise ValueError("document and bag records cannot be mixed")
        pair = (record["h"], record["t"])
        if record["relation"] != NA and (pair not in best or float(record["score"]) > float(best[pair]["score"])):
            best[pair] = record
    return [record for record in best.values() if float(record["score"]) >= threshold]


def _evidence(document: Document, h: int, t: int, given: Any) -> list[int]:
    n_sents = len(document.sents)
    if isinstance(given, list) and given and all(isinstance(i, int) and 0 <= i < n_sents for i in given):
        return sorted(set(given))
    head_sents = [m.sent_id for m in document.entities[h]]
    tail_sents = [m.sent_id for m in document.entities[t]]
    shared = sorted(set(head_sents) & set(tail_sents))
    return shared or sorted({min(head_sents), min(tail_sents)})


def task_name(predictor: Any) -> str:
    """``"doc"`` or ``"bag"``: ``predictor.task`` may be the task object or its name."""
    task = getattr(predictor, "task", None)
    name = getattr(task, "name", task)
    if name not in ("doc", "bag"):
        name = getattr(getattr(predictor, "model", None), "task", None)
    if name not in ("doc", "bag"):
        raise ValueError(f"cannot tell the task of {type(predictor).__name__}: .task must be 'doc' or 'bag'")
    return name


def is_biomedical(predictor: Any) -> bool:
    """Whether the model was trained on PubTator documents (BC5CDR): its ``data.train`` is a PubTator file."""
    from hiere.data.pubtator import is_pubtator

    train = (getattr(predictor, "config", None) or {}).get("data", {}).get("train")
    return isinstance(train, str) and is_pubtator(train)


def _check_biomedical(parsed: ParsedText, source: str | None, index: int) -> None:
    """A BC5CDR model reads chemical and disease entities, which only the user can give."""
    types = {parsed.document.entity_type(i) for i in range(len(parsed.document.entities))}
    if not types <= set(BIOMEDICAL_TYPES):
        raise HiereInputError(
            source, f"document {index + 1}", "entities",
            "this model was trained on BC5CDR (PubTator): give the chemical and disease mentions as entity "
            "spans with type Chemical or Disease (--entities, or an 'entities' list per record); spaCy's NER "
            f"found types {sorted(types - set(BIOMEDICAL_TYPES))}",
        )


def text_pipeline(predictor: Any) -> TextPipeline:
    """The predictor's own :class:`TextPipeline` (created on first use, so spaCy loads once per model)."""
    pipeline = getattr(predictor, "_text_pipeline", None)
    if pipeline is None:
        pipeline = TextPipeline()
        try:
            predictor._text_pipeline = pipeline
        except AttributeError:
            pass
    return pipeline


def document_windows(document: Document, window_tokens: int) -> list[tuple[int, int]]:
    """Sentence ranges ``[start, end)`` of at most ``window_tokens`` tokens, each starting halfway
    through the previous one, so two sentences closer than half a window share a window. A document
    that fits (or ``window_tokens <= 0``) is one window; a longer single sentence is its own window."""
    lengths = [len(sentence) for sentence in document.sents]
    if window_tokens <= 0 or sum(lengths) <= window_tokens:
        return [(0, len(lengths))]
    windows, start = [], 0
    while True:
        end, size = start, 0
        while end < len(lengths) and (end == start or size + lengths[end] <= window_tokens):
            size += lengths[end]
            end += 1
        windows.append((start, end))
        if end >= len(lengths):
            return windows
        middle, covered = start, 0
        while middle + 1 < end and covered + lengths[middle] <= size // 2:
            covered += lengths[middle]
            middle += 1
        start = max(middle, start + 1)


def window_document(document: Document, start: int, end: int, title: str) -> tuple[Document, list[int]]:
    """The sentences ``[start, end)`` of a document as a document of their own, with the entities
    mentioned there -> ``(window, index of each window entity in the whole document)``."""
    entities, index = [], []
    for entity_index, mentions in enumerate(document.entities):
        inside = [replace(m, sent_id=m.sent_id - start) for m in mentions if start <= m.sent_id < end]
        if inside:
            entities.append(inside)
            index.append(entity_index)
    return Document(title, document.sents[start:end], entities), index


def extract(
    predictor: Any,
    texts: Iterable[str | Mapping[str, Any]],
    pipeline: TextPipeline | None = None,
    threshold: float | None = None,
    batch_size: int = 8,
    skip_errors: bool = False,
    source: str | None = None,
    window_tokens: int = DEFAULT_WINDOW_TOKENS,
    max_chars: int = DEFAULT_MAX_CHARS,
    on_error: Callable[[HiereInputError], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Stream triples: one list per input text, in input order.

    ``texts``: strings or records ``{"text", "title"?, "entities"?}`` (user entity spans, see
    :func:`hiere.text.pipeline.parse_entities`). A text that is empty or has fewer than two entities
    gives ``[]``. Odd characters are replaced (:func:`hiere.text.pipeline.clean_text`). Binary or
    non-English input raises :class:`HiereInputError` after the results of the texts before it have
    been yielded; with ``skip_errors`` the text gives ``[]`` and the error goes to ``on_error`` (default:
    a logged warning) with ``error.input_index`` set to the text's position in ``texts``. Document models
    see about ``batch_size`` model windows per call (a short text is one window; a long text's windows
    are never split across calls); only one batch is held in memory.
    A document longer than ``window_tokens`` is read by the model in overlapping windows
    (:func:`document_windows`); a triple found in several windows keeps its best score.

    ``max_chars`` bounds the text read as one document: a longer text is cut at paragraph, line or
    sentence ends into parts of at most ``max_chars`` characters (with a warning), each read as a
    document of its own (entities are not linked across parts), and the triples of all parts are
    merged. ``progress`` is called with the number of characters of each part once it is parsed.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise HiereInputError(None, None, "batch_size", f"must be an integer >= 1, got {batch_size!r}")
    if not isinstance(max_chars, int) or max_chars < 1:
        raise HiereInputError(None, None, "max_chars", f"must be an integer >= 1, got {max_chars!r}")
    if threshold is not None and not (isinstance(threshold, int | float) and 0.0 <= threshold <= 1.0):
        raise HiereInputError(None, None, "threshold", f"must be a score in [0, 1], got {threshold!r}")
    pipeline = pipeline or text_pipeline(predictor)
    task = get_task(task_name(predictor))
    if threshold is None:  # a ranked task keeps every score: its tuned threshold cuts; others decode at theirs
        threshold = float(getattr(predictor, "threshold", 0.5)) if task.ranked else 0.5
    report = on_error or (lambda error: LOGGER.warning("skipped: %s", error))
    pending: list[_Part] = []
    biomedical = is_biomedical(predictor)  # only document models read PubTator files
    merged: dict[int, list[list[dict[str, Any]]]] = {}  # input index -> triples of each part read so far

    def flush() -> tuple[int, HiereInputError] | None:
        """Predict the pending parts -> ``(input index, error)`` of the first part that failed when
        errors are not skipped, else None."""
        failure = None
        for part, result in zip(pending, _predict_parts(predictor, pending), strict=True):
            if not isinstance(result, HiereInputError):
                merged[part.index].append(result)
            elif skip_errors:
                result.input_index = part.index
                report(result)
            elif failure is None:
                failure = (part.index, result)
        pending.clear()
        return failure

    def finished(upto: int) -> Iterator[list[dict[str, Any]]]:
        for index in [i for i in merged if i < upto]:
            yield _merge_triples(merged.pop(index))

    for index, item in enumerate(texts):
        merged[index] = []
        failure = None
        try:
            for parsed in _parse_parts(pipeline, item, index, source, max_chars, progress):
                if biomedical:
                    _check_biomedical(parsed, source, index)
                if len(parsed.document.entities) < 2:
                    continue
                if not task.records_are_examples:  # a bag model reads the text's sentences, pair by pair
                    merged[index].append(_extract_bags(predictor, parsed, threshold))
                    continue
                windows = _model_windows(parsed, index, len(pending), window_tokens, biomedical)
                pending.append(_Part(index, parsed, windows))
                if sum(len(part.windows) for part in pending) >= batch_size:  # every part has >= 1 window
                    failure = flush()
                    if failure is not None:
                        break
                    yield from finished(index)
        except HiereInputError as error:
            if skip_errors:
                error.input_index = index
                report(error)
            else:
                failure = flush() or (index, error)
        if failure is not None:
            yield from finished(failure[0])
            raise failure[1]
        yield from finished(pending[0].index if pending else index + 1)
    failure = flush()
    if failure is not None:
        yield from finished(failure[0])
        raise failure[1]
    yield from finished(sys.maxsize)


@dataclass
class _Part:
    """A parsed text (or one part of a long text) and the model windows cut from it."""

    index: int  # the input text it belongs to
    parsed: ParsedText
    windows: list[tuple[Document, list[int], int]]  # (window document, entity index map, first sentence)


def _model_windows(parsed: ParsedText, index: int, slot: int, window_tokens: int, biomedical: bool = False
                   ) -> list[tuple[Document, list[int], int]]:
    windows = []
    for number, (start, end) in enumerate(document_windows(parsed.document, window_tokens)):
        # titles are unique inside a batch: records are matched back by them
        window, entity_index = window_document(parsed.document, start, end, f"{index}/{slot}/{number}")
        if biomedical:  # candidate pairs chemical -> disease, as in training
            window = replace(window, source="pubtator")
        if len(entity_index) >= 2:
            windows.append((window, entity_index, start))
    return windows


def _predict_parts(predictor: Any, parts: list[_Part]) -> list[list[dict[str, Any]] | HiereInputError]:
    """The triples of each part, from one model call for all; when that call fails, one call per
    part, so a part the model rejects gives its own error and the others their triples."""
    windows = [window for part in parts for window, _, _ in part.windows]
    if not windows:
        return [[] for _ in parts]
    try:
        records = predictor.predict(windows)
    except HiereInputError as error:
        if len(parts) > 1:
            return [result for part in parts for result in _predict_parts(predictor, [part])]
        return [HiereInputError(None, f"{parts[0].parsed.document.title}", None, f"the model failed: {error}")]
    by_title: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_title.setdefault(str(record["title"]), []).append(record)
    results: list[list[dict[str, Any]] | HiereInputError] = []
    for part in parts:
        whole = [
            _to_whole_document(record, entity_index, sent_offset)
            for window, entity_index, sent_offset in part.windows
            for record in by_title.get(window.title, [])
        ]
        texts = part.parsed.sentence_texts
        results.append(triples_from_predictions(part.parsed.document, whole, predictor.relations, texts))
    return results


def _merge_triples(parts: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The triples of a text's parts as one list: one per (head, relation, tail), best score first."""
    if len(parts) == 1:
        return parts[0]
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for triples in parts:
        for triple in triples:
            key = (triple["head"], triple["relation"], triple["tail"])
            if key not in best or triple["score"] > best[key]["score"]:
                best[key] = triple
    return sorted(best.values(), key=lambda triple: -triple["score"])


def _to_whole_document(record: Mapping[str, Any], entity_index: list[int], sent_offset: int) -> dict:
    """A window's record with entity indices and evidence sentence ids of the whole document."""
    head, tail = entity_index[int(record["h_idx"])], entity_index[int(record["t_idx"])]
    whole = {**record, "h_idx": head, "t_idx": tail}
    evidence = record.get("evidence")
    if isinstance(evidence, list) and all(isinstance(i, int) for i in evidence):
        whole["evidence"] = [i + sent_offset for i in evidence]
    return whole


def _extract_bags(predictor: Any, parsed: ParsedText, threshold: float) -> list[dict[str, Any]]:
    bags = document_to_bags(parsed.document)
    if not bags:
        return []
    records = predictor.predict(bags)
    texts = parsed.sentence_texts
    return triples_from_predictions(parsed.document, records, predictor.relations, texts, threshold)


def _parse_parts(
    pipeline: TextPipeline,
    item: Any,
    index: int,
    source: str | None,
    max_chars: int,
    progress: Callable[[int], None] | None,
) -> Iterator[ParsedText | None]:
    """The parsed parts of one input text: one part, or with more than ``max_chars`` characters, one per
    piece of :func:`split_windows` (parsed one at a time, so memory does not grow with the text)."""
    record = f"document {index + 1}"
    entities = None
    if isinstance(item, Mapping):
        title = item.get("title")
        if title:
            record += f" ({clean_text(str(title))!r})"
        if "text" not in item:
            raise HiereInputError(source, record, "text", "missing: a record needs a 'text' string")
        if item.get("entities") is not None:
            entities = parse_entities(item["entities"], source or "<entities>", record)
        text, title = item["text"], clean_text(str(title)) if title else record
    else:
        text, title = item, record
    text = check_text(text, source, record)
    if len(text) <= max_chars:
        parsed = pipeline.parse(text, entities, title, source, record)
        if progress is not None:
            progress(len(text))
        yield parsed
        return
    if entities is not None:
        message = f"{len(text):,} characters: longer than the maximum of {max_chars:,} that takes entity spans"
        raise HiereInputError(source, record, "text", message)
    pieces = split_windows(text, max_chars)
    LOGGER.warning(
        "%s%s: %s characters, more than the maximum document length (%s): read as %d parts of at most %s "
        "characters, cut at paragraph, line or sentence ends; entities are not linked across parts",
        f"{source}: " if source else "", record, f"{len(text):,}", f"{max_chars:,}", len(pieces), f"{max_chars:,}",
    )
    for number, (start, end) in enumerate(pieces, start=1):
        piece = text[start:end]
        yield pipeline.parse(piece, None, f"{title} [part {number}]", source, f"{record}, part {number}")
        if progress is not None:
            progress(len(piece))


def extract_text(
    predictor: Any,
    text: str,
    entities: Sequence[EntitySpan] | list[dict] | None = None,
    threshold: float | None = None,
    pipeline: TextPipeline | None = None,
    window_tokens: int = DEFAULT_WINDOW_TOKENS,
) -> list[dict[str, Any]]:
    """One text -> its triples (``hiere.load(dir).extract(text)``); errors raise :class:`HiereInputError`."""
    item: Any = text if entities is None else {"text": text, "entities": list(entities)}
    if entities is not None and all(isinstance(e, EntitySpan) for e in entities):
        item = {"text": text, "entities": [vars(e) for e in entities]}
    return next(extract(predictor, [item], pipeline=pipeline, threshold=threshold, window_tokens=window_tokens))


# ----------------------------------------------------------------------------------------------- inputs


def resolve_input_format(path: str | Path, input_format: str = "auto") -> str:
    """``lines``, ``jsonl`` or ``json``; ``auto`` goes by the extension (``.jsonl``, ``.json``, else lines)."""
    if input_format != "auto":
        return input_format
    name = str(path)
    return "jsonl" if name.endswith(".jsonl") else "json" if name.endswith(".json") else "lines"


def iter_documents(
    path: str | Path, input_format: str = "auto", on_error: Callable[[HiereInputError], None] | None = None
) -> Iterator[str | dict[str, Any]]:
    """Stream the documents of a file: ``lines`` (one text a line, blank lines skipped), ``jsonl`` (one
    JSON string or ``{"text", "title"?, "entities"?}`` a line) or ``json`` (a JSON list of those, read
    whole). ``auto``: by extension (``.jsonl``, ``.json``, else lines). ``-`` reads standard input.

    Bytes that are not UTF-8 become U+FFFD (a warning names the line). A line that is malformed JSON
    or a record without a ``text`` string raises :class:`HiereInputError` naming its line, or with
    ``on_error`` is passed to it and skipped, and reading goes on.
    """
    name = str(path)
    input_format = resolve_input_format(path, input_format)
    if name != "-" and not Path(path).is_file():
        problem = "is a directory, expected a file of documents" if Path(path).is_dir() else "file does not exist"
        raise HiereInputError(name, None, None, problem)
    return _read_documents(path, input_format, on_error)


def _read_documents(
    path: str | Path, input_format: str, on_error: Callable[[HiereInputError], None] | None
) -> Iterator[str | dict[str, Any]]:
    name = str(path)
    if input_format == "json":
        yield from _read_json_list(path, on_error)
        return
    for line_number, line in _decoded_lines(path):
        if not line.strip():
            continue
        try:
            yield document_from_line(line, line_number, name, input_format)
        except HiereInputError as error:
            if on_error is None:
                raise
            on_error(error)


def document_from_line(line: str, line_number: int, source: str, input_format: str) -> dict[str, Any]:
    """One non-blank line of a ``lines`` or ``jsonl`` file -> ``{"text", "title", "entities"?}`` (the title
    defaults to ``"line N"``); malformed JSON or a record without a ``text`` string raises
    :class:`HiereInputError` naming the line."""
    where = f"line {line_number}"
    if input_format == "lines":
        return {"text": line, "title": where}
    record = _as_record(check_item(parse_json(line, source, where), source, where))
    record.setdefault("title", where)
    return record


def _decoded_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, text without the line end)`` of a file or of standard input (``-``), read as bytes
    and decoded as UTF-8 with U+FFFD for bad bytes; lines are split at ``\n`` only."""
    name = str(path)
    if name == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:  # a text stream (tests, notebooks): already decoded
            for number, line in enumerate(sys.stdin, start=1):
                yield number, clean_text(line.rstrip("\r\n"))
            return
        handle = stream
    else:
        handle = open(path, "rb")  # noqa: SIM115 (closed below; a generator)
    try:
        yield from decode_lines(handle, name)
    finally:
        if handle is not getattr(sys.stdin, "buffer", None):
            handle.close()


def decode_lines(raw_lines: Iterable[bytes], source: str, first_line: int = 1) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of raw lines numbered from ``first_line``: UTF-8 with U+FFFD for bad bytes
    (a warning names the line), the line end and a byte order mark on line 1 removed."""
    for number, raw in enumerate(raw_lines, start=first_line):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte order mark
        line, replaced = decode_text(raw.rstrip(b"\r\n"))
        if replaced and binary_problem(line) is None:  # binary lines are reported when skipped
            LOGGER.warning("%s: line %d: %d byte(s) that are not UTF-8 read as U+FFFD", source, number, replaced)
        yield number, line


def _read_json_list(path: str | Path, on_error: Callable[[HiereInputError], None] | None
                    ) -> Iterator[str | dict[str, Any]]:
    name = str(path)
    text = "\n".join(line for _, line in _decoded_lines(path))
    raw = parse_json(text, name)
    items = raw if isinstance(raw, list) else [raw]
    for index, item in enumerate(items):
        try:
            yield check_item(item, name, f"document {index + 1}")
        except HiereInputError as error:
            if on_error is None:
                raise
            on_error(error)


def _as_record(item: str | dict[str, Any]) -> dict[str, Any]:
    return {"text": item} if isinstance(item, str) else dict(item)


def check_item(item: Any, source: str, record: str) -> str | dict[str, Any]:
    """A document of a file: a string or an object with a ``text`` string, else :class:`HiereInputError`."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        raise HiereInputError(source, record, "text", "expected a string or an object with a 'text' string")
    return item


def count_characters(path: str | Path, input_format: str = "auto") -> int | None:
    """Characters of text in a ``lines`` file (a cheap pass for the progress bar), else ``None``."""
    name = str(path)
    input_format = resolve_input_format(path, input_format)
    if name == "-" or input_format != "lines":
        return None
    try:
        with open(path, "rb") as handle:
            return sum(len(decode_text(line.rstrip(b"\r\n"))[0]) for line in handle if line.strip())
    except OSError:
        return None


# ----------------------------------------------------------------------------------------------- output


def format_table(triples: Sequence[Mapping[str, Any]], title: str | None = None) -> str:
    """Aligned columns: head (type), relation name, tail (type), score."""
    header = ("head", "relation", "tail", "score")
    rows = [
        (
            f"{t['head']} ({t['head_type']})",
            f"{t['relation_name']}" + (f" [{t['relation']}]" if t["relation_name"] != t["relation"] else ""),
            f"{t['tail']} ({t['tail_type']})",
            f"{t['score']:.3f}",
        )
        for t in triples
    ]
    lines = [f"# {title}"] if title else []
    if not rows:
        return "\n".join([*lines, "(no relations found)"])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=False)]
        lines.append("  ".join([*cells, row[3].rjust(widths[3])]))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- CLI
