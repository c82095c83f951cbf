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

import argparse
import json
import logging
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from hiere.data.bags import Bag, BagSentence
from hiere.data.docred import Document
from hiere.data.relations import NA, RelationMap
from hiere.errors import HiereInputError
from hiere.text.pipeline import BIOMEDICAL_TYPES, EntitySpan, ParsedText, TextPipeline, entity_names, parse_entities

LOGGER = logging.getLogger(__name__)
BAG_ENTITY_TYPES = ("PER", "ORG", "LOC", "MISC")  # NYT10 / GDS pair named entities, never dates or numbers
DEFAULT_WINDOW_TOKENS = 1024  # longer documents are read in overlapping windows (Re-DocRED: <= 481 tokens)
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
) -> Iterator[list[dict[str, Any]]]:
    """Stream triples: one list per input text, in input order.

    ``texts``: strings or records ``{"text", "title"?, "entities"?}`` (user entity spans, see
    :func:`hiere.text.pipeline.parse_entities`). A text that is empty or has fewer than two entities
    gives ``[]``. Binary or non-English input raises :class:`HiereInputError`, or with
    ``skip_errors`` logs a warning and gives ``[]``. Document models see ``batch_size`` texts per
    call; only one batch is held in memory. A document longer than ``window_tokens`` is read by the
    model in overlapping windows (:func:`document_windows`); a triple found in several windows
    keeps its best score.
    """
    pipeline = pipeline or text_pipeline(predictor)
    task = task_name(predictor)
    if threshold is None:
        threshold = float(getattr(predictor, "threshold", 0.5)) if task == "bag" else 0.5
    pending: list[tuple[ParsedText | None, list[tuple[Document, list[int], int]]]] = []
    biomedical = task == "doc" and is_biomedical(predictor)

    def flush() -> Iterator[list[dict[str, Any]]]:
        windows = [window for _, doc_windows in pending for window, _, _ in doc_windows]
        by_title: dict[str, list[Mapping[str, Any]]] = {}
        for record in predictor.predict(windows) if windows else []:
            by_title.setdefault(str(record["title"]), []).append(record)
        for parsed, doc_windows in pending:
            if parsed is None:
                yield []
                continue
            records = [
                _to_whole_document(record, entity_index, sent_offset)
                for window, entity_index, sent_offset in doc_windows
                for record in by_title.get(window.title, [])
            ]
            texts = parsed.sentence_texts
            yield triples_from_predictions(parsed.document, records, predictor.relations, texts)
        pending.clear()

    for index, item in enumerate(texts):
        parsed = _parse_item(pipeline, item, index, skip_errors, source)
        if parsed is not None and biomedical:
            try:
                _check_biomedical(parsed, source, index)
            except HiereInputError as error:
                if not skip_errors:
                    raise
                LOGGER.warning("skipped: %s", error)
                parsed = None
        if parsed is not None and len(parsed.document.entities) < 2:
            parsed = None
        if task == "bag":
            yield _extract_bags(predictor, parsed, threshold) if parsed is not None else []
            continue
        doc_windows = []
        if parsed is not None:
            for number, (start, end) in enumerate(document_windows(parsed.document, window_tokens)):
                # titles are unique inside a batch: records are matched back by them
                window, entity_index = window_document(parsed.document, start, end, f"{index}/{number}")
                if biomedical:  # candidate pairs chemical -> disease, as in training
                    window = replace(window, source="pubtator")
                if len(entity_index) >= 2:
                    doc_windows.append((window, entity_index, start))
        pending.append((parsed, doc_windows))
        if len(pending) >= batch_size:
            yield from flush()
    if pending:
        yield from flush()


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


def _parse_item(
    pipeline: TextPipeline, item: Any, index: int, skip_errors: bool, source: str | None
) -> ParsedText | None:
    record = f"document {index + 1}"
    try:
        if isinstance(item, Mapping):
            title = item.get("title")
            if title:
                record += f" ({title!r})"
            if "text" not in item:
                raise HiereInputError(source, record, "text", "missing: a record needs a 'text' string")
            entities = item.get("entities")
            if entities is not None:
                entities = parse_entities(entities, source or "<entities>", record)
            return pipeline.parse(item["text"], entities, str(title) if title else record, source, record)
        return pipeline.parse(item, None, record, source, record)
    except HiereInputError as error:
        if not skip_errors:
            raise
        LOGGER.warning("skipped: %s", error)
        return None


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


def iter_documents(path: str | Path, input_format: str = "auto") -> Iterator[str | dict[str, Any]]:
    """Stream the documents of a file: ``lines`` (one text a line, blank lines skipped), ``jsonl`` (one
    JSON string or ``{"text", "title"?, "entities"?}`` a line) or ``json`` (a JSON list of those, read
    whole). ``auto``: by extension (``.jsonl``, ``.json``, else lines). ``-`` reads standard input."""
    name = str(path)
    if input_format == "auto":
        input_format = "jsonl" if name.endswith(".jsonl") else "json" if name.endswith(".json") else "lines"
    if name != "-" and not Path(path).is_file():
        raise HiereInputError(name, None, None, "file does not exist")
    return _read_documents(path, input_format)


def _read_documents(path: str | Path, input_format: str) -> Iterator[str | dict[str, Any]]:
    name = str(path)
    if input_format == "json":
        from hiere.data.docred import load_json

        raw = load_json(path)
        items = raw if isinstance(raw, list) else [raw]
        for index, item in enumerate(items):
            yield _check_item(item, name, f"document {index + 1}")
        return
    handle = sys.stdin if name == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    try:
        line_number = 0
        while True:
            try:
                line = handle.readline()
            except UnicodeDecodeError:
                where = f"line {line_number + 1}"
                raise HiereInputError(name, where, None, "not UTF-8 text (binary file?)") from None
            if not line:
                return
            line_number += 1
            if not line.strip():
                continue
            if input_format == "lines":
                yield {"text": line.rstrip("\r\n"), "title": f"line {line_number}"}
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                where = f"line {line_number}"
                raise HiereInputError(name, where, None, f"malformed JSON ({error.msg})") from None
            record = _as_record(_check_item(item, name, f"line {line_number}"))
            record.setdefault("title", f"line {line_number}")
            yield record
    finally:
        if handle is not sys.stdin:
            handle.close()


def _as_record(item: str | dict[str, Any]) -> dict[str, Any]:
    return {"text": item} if isinstance(item, str) else dict(item)


def _check_item(item: Any, source: str, record: str) -> str | dict[str, Any]:
    if isinstance(item, str):
        return item
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        raise HiereInputError(source, record, "text", "expected a string or an object with a 'text' string")
    return item


def count_documents(path: str | Path, input_format: str = "auto") -> int | None:
    """Number of documents of a lines/jsonl file (a cheap pass for the progress bar), else ``None``."""
    name = str(path)
    if name == "-" or name.endswith(".json") and input_format == "auto" or input_format == "json":
        return None
    try:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip())
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


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hiere extract MODEL_DIR (--text TEXT | FILE)`` (the caller adds ``model_dir``)."""
    parser.add_argument(
        "input", nargs="?", help="file of documents: one text a line, or .jsonl records "
        "{text, title?, entities?}, or a .json list of those; '-' reads standard input"
    )
    parser.add_argument("--text", help="the text to read (instead of FILE)")
    parser.add_argument("--entities", help="JSON file: a list of {start, end, type?, cluster?} character "
                        "spans that replace spaCy's entities (with --text; in .jsonl give each record "
                        "an 'entities' list)")
    parser.add_argument("--format", choices=["jsonl", "table"], default="jsonl",
                        help="jsonl: one JSON triple a line (default); table: aligned columns for people")
    parser.add_argument("--input-format", choices=["auto", "lines", "jsonl", "json"], default="auto",
                        help="how FILE holds documents (default: by extension)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="bag models: minimum score of a relation (default: the model's tuned threshold)")
    parser.add_argument("--batch-size", type=int, default=8, help="documents per model call (default 8)")
    parser.add_argument("--window-tokens", type=int, default=DEFAULT_WINDOW_TOKENS,
                        help="document models read longer documents in overlapping windows of this many "
                        f"tokens (default {DEFAULT_WINDOW_TOKENS}; 0: never)")
    parser.add_argument("--no-language-check", action="store_true",
                        help="do not reject text that does not look like English")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar for files")
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda (default auto)")


def run_extract(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``hiere extract``: print triples (JSON lines or a table); bad input -> one stderr line, exit 2."""
    out = out or sys.stdout
    try:
        return _run_extract(args, out)
    except HiereInputError as error:
        print(f"hiere: error: {error}", file=sys.stderr)
        return 2


def _run_extract(args: argparse.Namespace, out: TextIO) -> int:
    text, path = getattr(args, "text", None), getattr(args, "input", None)
    if (text is None) == (path is None):
        raise HiereInputError(None, None, None, "give either --text TEXT or a FILE of documents (not both)")
    entities_path = getattr(args, "entities", None)
    if entities_path and path is not None:
        message = "--entities goes with --text; in a .jsonl file give each record an 'entities' list"
        raise HiereInputError(entities_path, None, None, message)
    if text is not None and not text.strip():
        raise HiereInputError(None, None, "--text", "the text is empty")
    items: Iterable[Any]
    total = None
    if text is not None:
        item: dict[str, Any] = {"text": text}
        if entities_path:
            from hiere.data.docred import load_json

            item["entities"] = parse_entities(load_json(entities_path), entities_path)
            item["entities"] = [vars(e) for e in item["entities"]]
        items = [item]
    else:
        input_format = getattr(args, "input_format", "auto")
        items = iter_documents(path, input_format)
        total = count_documents(path, input_format)

    from hiere.api import load

    predictor = load(args.model_dir, getattr(args, "device", "auto"))
    pipeline = TextPipeline(check_english=not getattr(args, "no_language_check", False))
    predictor._text_pipeline = pipeline
    if path is not None and not getattr(args, "no_progress", False):
        from tqdm.auto import tqdm

        items = tqdm(items, total=total, unit="doc", file=sys.stderr, disable=None)
    if path is not None:
        logging.basicConfig(format="hiere: warning: %(message)s", stream=sys.stderr)
    titles: deque[str] = deque()  # titles of the documents read but not yet printed

    def titled(stream: Iterable[Any]) -> Iterator[Any]:
        for index, element in enumerate(stream):
            title = element.get("title") if isinstance(element, dict) else None
            titles.append(str(title) if title else f"document {index + 1}")
            yield element

    results = extract(
        predictor, titled(items), pipeline=pipeline, threshold=getattr(args, "threshold", None),
        batch_size=getattr(args, "batch_size", 8), skip_errors=path is not None,
        window_tokens=getattr(args, "window_tokens", DEFAULT_WINDOW_TOKENS),
        source=None if path is None else str(path),
    )
    fmt = getattr(args, "format", "jsonl")
    n_docs = n_triples = 0
    for triples in results:
        title = titles.popleft()
        n_docs += 1
        n_triples += len(triples)
        if fmt == "table":
            print(format_table(triples, title if path is not None else None), file=out)
            if path is not None:
                print(file=out)
        else:
            for triple in triples:
                record = {"doc": title, **triple} if path is not None else triple
                print(json.dumps(record, ensure_ascii=False), file=out)
        out.flush()
    print(f"hiere extract: {n_triples} triples from {n_docs} document(s)", file=sys.stderr)
    return 0
