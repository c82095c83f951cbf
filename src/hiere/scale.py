"""Corpus-scale ``hiere extract`` and ``hiere predict``: input blocks -> output shards + a manifest, resumable.

The work is cut into *blocks*: runs of at most ``block_size`` consecutive records of one input file (a bag
file is cut only between entity pairs, so no bag is split). Each block becomes one output shard,
``OUT_DIR/shard-NNNNN.jsonl``. A planning pass streams every input once (sha256, record count, the byte
range and lines of each block); ``OUT_DIR/manifest.json`` holds that plan and, for each finished block,
its counts and its shard's sha256.

Exactly once: a shard is written atomically (temp file + rename) and only then marked done in the
manifest (also written atomically). A rerun of the same command checks that the inputs (sha256), the
model and the options are those of the manifest (else one clear error: nothing is recomputed silently),
keeps every block marked done whose shard is intact, and computes the others; a shard written by a run
that was killed before it could update the manifest is computed again and replaced, never appended to.

Engines: :func:`run_blocks_local` runs the blocks one after another in this process;
:mod:`hiere.scale_ray` runs the same :class:`BlockWorker` on Ray Data (one model per worker). Both give
byte-identical shards. Memory: a worker holds one block of records and its results; the driver holds
the plan (a few numbers per block), never the documents.

A bad record (malformed JSON, a document the reader or the model rejects) is written to
``OUT_DIR/errors.jsonl`` with its file and line and skipped; the job goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import io
import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from hiere.errors import HiereInputError
from hiere.io import dumps_json, iter_json_list, parse_json, write_chunks_atomic, write_text_atomic
from hiere.memory import peak_rss_mb, release_freed_memory
from hiere.tasks import get_task

LOGGER = logging.getLogger(__name__)
MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"
BLOCK_ERRORS_DIR = "errors"  # errors of each block, merged into errors.jsonl at the end of a run
MANIFEST_VERSION = 1
DEFAULT_BLOCK_SIZE = 500
# compiled oneDNN kernels a worker keeps, and ideep's per-shape entries (at least 1; hiere.memory): none, so that
# its memory stays flat over any number of documents (1,000 / 20,000 documents: extract 476 / 491 MB, predict
# 706 / 735 MB, against 575 / 821 and 911 / 1,245 MB with the caches; docs/results.md); --kernel-cache 1024
# trades memory back for up to 10-14 % of a bf16 model's throughput
DEFAULT_KERNEL_CACHE = 0
PROGRESS_SECONDS = 30.0  # a progress line at most this often when stderr is not a terminal
ENGINES = ("local", "ray")
MODEL_FILES = ("config.yaml", "model.safetensors", "threshold.json")


# ----------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Block:
    """Records ``[first_record, first_record + records)`` of one input: bytes ``[start, end)``, lines
    ``first_line`` to ``last_line``. ``kind`` says how its records are read (see :func:`input_kind`)."""

    id: int
    path: str
    kind: str
    first_record: int
    records: int
    first_line: int
    last_line: int
    start: int
    end: int

    @property
    def shard(self) -> str:
        return f"shard-{self.id:05d}.jsonl"

    @property
    def errors_file(self) -> str:
        return f"{BLOCK_ERRORS_DIR}/block-{self.id:05d}.jsonl"


@dataclass(frozen=True)
class Job:
    """What every worker needs: the command, the model and the options that shape the output."""

    command: str  # "extract" or "predict"
    model_dir: str
    options: dict[str, Any]
    device: str = "auto"
    threads: int | None = None  # torch threads of a worker (Ray workers: --cpus-per-worker)
    kernel_cache: int | None = DEFAULT_KERNEL_CACHE  # compiled oneDNN kernels a worker keeps (hiere.memory)


def resolve_inputs(patterns: Iterable[str]) -> list[Path]:
    """Files and globs (``data/*.jsonl``, ``corpus/**/*.txt``) -> the absolute paths of the files they name,
    in the order given (a glob's matches sorted), each once. A pattern that names nothing is an error."""
    paths: list[Path] = []
    for pattern in patterns:
        if pattern == "-":
            raise HiereInputError("-", None, None, "standard input cannot be read in blocks: give files (or use "
                                  "the command without -o/--engine)")
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise HiereInputError(pattern, None, None, "no file matches this pattern")
        for match in matches:
            path = Path(match)
            if not path.exists():
                raise HiereInputError(match, None, None, "file does not exist")
            if path.is_dir():
                raise HiereInputError(match, None, None, "is a directory, expected a file of documents (or a glob "
                                      "such as DIR/*.jsonl)")
            resolved = path.resolve()
            if resolved not in paths:
                paths.append(resolved)
    return paths


def input_kind(path: Path, command: str, task: str, input_format: str = "auto") -> str:
    """How the records of a file are read.

    ``extract``: ``lines`` (a text a line), ``jsonl`` (a record a line) or ``json`` (a JSON list), by
    ``input_format`` or the extension, as ``hiere extract FILE`` reads them. ``predict``: a document model
    reads ``docred-json`` (a DocRED JSON list) or ``docred-jsonl`` (a document a line), a bag model
    ``bags-json`` or ``bags-jsonl`` (OpenNRE sentences); the file's first character tells a list.
    """
    if command == "extract":
        from hiere.extract import resolve_input_format

        return resolve_input_format(path, input_format)
    from hiere.data.pubtator import is_pubtator

    if is_pubtator(path):
        raise HiereInputError(str(path), None, None, "PubTator files are read whole: use hiere predict without "
                              "--engine, or convert the documents to DocRED JSON")
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    prefix = "docred" if get_task(task).records_are_examples else "bags"  # bag sentences group by pair
    return f"{prefix}-json" if head.startswith(b"[") else f"{prefix}-jsonl"


class _HashingReader(io.RawIOBase):
    """A binary file read through sha256."""

    def __init__(self, handle: Any):
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.handle.read(len(buffer))
        buffer[: len(data)] = data
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def plan_input(path: Path, kind: str, block_size: int, first_id: int = 0) -> tuple[dict[str, Any], list[Block]]:
    """Stream one input -> ``({"path", "sha256", "bytes", "kind", "records"}, its blocks)``.

    A record is a non-blank line (``lines`` and ``*jsonl``) or an item of the JSON list. Blocks hold
    ``block_size`` records; in bag files a block goes on while the next record has the same entity pair
    (a bag is the consecutive lines of one pair).
    """
    if block_size < 1:
        raise HiereInputError(None, None, "block_size", f"must be an integer >= 1, got {block_size!r}")
    blocks: list[Block] = []
    current: list[tuple[int, int, int, Any]] = []  # (start, end, line, pair) of the block's records
    n_records = 0

    def close() -> None:
        nonlocal n_records
        blocks.append(Block(first_id + len(blocks), str(path), kind, n_records, len(current), current[0][2],
                            current[-1][2], current[0][0], current[-1][1]))
        n_records += len(current)
        current.clear()

    def add(start: int, end: int, line: int, pair: Any) -> None:
        if len(current) >= block_size and (pair is None or pair != current[-1][3]):
            close()
        current.append((start, end, line, pair))

    bags = kind.startswith("bags")
    with open(path, "rb") as raw:
        reader = _HashingReader(raw)
        if kind.endswith("json"):
            for start, end, line, value in iter_json_list(io.BufferedReader(reader), str(path)):
                add(start, end, line, _pair(value) if bags else None)
        else:
            position = 0
            for number, raw_line in enumerate(io.BufferedReader(reader), start=1):
                start, position = position, position + len(raw_line)
                text = raw_line.decode("utf-8", "replace")
                if (text.removeprefix("\ufeff") if number == 1 else text).strip():
                    add(start, position, number, _line_pair(text) if bags else None)
        while reader.read(1 << 20):  # a list's trailing bytes: part of the file's hash
            pass
    if current:
        close()
    info = {"path": str(path), "sha256": reader.digest.hexdigest(), "bytes": reader.size, "kind": kind,
            "records": n_records}
    return info, blocks


def _pair(value: Any) -> Any:
    """The (head id, tail id) of an OpenNRE sentence, or None when it has none (a bad record stands alone)."""
    try:
        return (str(value["h"]["id"]), str(value["t"]["id"]))
    except (KeyError, TypeError):
        return None


def _line_pair(line: str) -> Any:
    try:
        return _pair(json.loads(line))
    except (ValueError, RecursionError):
        return None


def plan_inputs(paths: list[Path], command: str, task: str, block_size: int, input_format: str = "auto"
                ) -> tuple[list[dict[str, Any]], list[Block]]:
    """:func:`plan_input` of every input, block ids running on across files."""
    inputs, blocks = [], []
    for path in paths:
        info, more = plan_input(path, input_kind(path, command, task, input_format), block_size, len(blocks))
        inputs.append(info)
        blocks.extend(more)
    return inputs, blocks


# ----------------------------------------------------------------------------------------------- reading a block


@dataclass(frozen=True)
class RawRecord:
    """One record of a block: its 0-based index in the file, its line, and its text (a line) or value."""

    index: int
    line: int
    text: str | None = None
    value: Any = None


def read_block(block: Block) -> Iterator[RawRecord]:
    """The records of a block, read from its byte range (a worker needs the input file, not the driver)."""
    with open(block.path, "rb") as handle:
        handle.seek(block.start)
        data = handle.read(block.end - block.start)
    index = block.first_record
    if block.kind.endswith("json"):
        items = iter_json_list(io.BytesIO(data), block.path, block.start, block.first_line, inside=True)
        for _, _, line, value in items:
            yield RawRecord(index, line, value=value)
            index += 1
        return
    from hiere.extract import decode_lines

    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    for line, text in decode_lines(raw_lines, block.path, block.first_line):
        if text.strip():
            yield RawRecord(index, line, text=text)
            index += 1


def error_entry(block: Block, record: RawRecord, error: HiereInputError) -> dict[str, Any]:
    """A line of errors.jsonl: where the bad record is and what is wrong with it."""
    where = [f"line {record.line}"]
    if error.record and error.record != where[0]:
        where.append(error.record)
    if error.field:
        where.append(f"field {error.field}")
    return {"file": block.path, "line": record.line, "record": error.record, "field": error.field,
            "message": error.message, "error": f"{block.path}: {', '.join(where)}: {error.message}"}


# ----------------------------------------------------------------------------------------------- the worker


@dataclass
class BlockResult:
    """What a worker returns for a block: the shard's text, its errors (JSON lines) and counts."""

    block: int
    shard: str
    errors: str
    records: int  # input records read
    documents: int  # documents (bags for bag models) that went through the model
    outputs: int  # lines of the shard
    triples: int  # extract: triples; predict: prediction records
    n_errors: int  # records skipped as bad
    worker: str
    peak_rss_mb: float  # the worker's high-water mark so far (ru_maxrss)
    seconds: float
    failure: str = ""  # a remote worker could not read its input or model: the job stops with this line
    rss_mb: float = 0.0  # what the worker still holds after the block (resident now, after release_freed_memory)


class BlockWorker:
    """Loads the model once, then turns block descriptors into :class:`BlockResult`; engine-agnostic (the
    local engine calls it in-process, :mod:`hiere.scale_ray` wraps it in a Ray Data callable class)."""

    def __init__(self, job: Job | dict[str, Any]):
        from hiere.api import load
        from hiere.memory import bound_kernel_cache

        self.job = job if isinstance(job, Job) else Job(**job)
        bound_kernel_cache(self.job.kernel_cache)  # before the model's first kernel
        if self.job.threads:
            import torch

            torch.set_num_threads(self.job.threads)
        self.predictor = load(self.job.model_dir, self.job.device)
        if self.job.command == "extract":
            from hiere.text.pipeline import TextPipeline

            pipeline = TextPipeline(check_english=self.job.options.get("check_english", True))
            self.predictor._text_pipeline = pipeline
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def run(self, block: Block | dict[str, Any]) -> BlockResult:
        block = block if isinstance(block, Block) else Block(**block)
        began = time.perf_counter()
        records = list(read_block(block))
        if self.job.command == "extract":
            lines, errors, documents, triples = _extract_block(self.predictor, self.job.options, block, records)
        elif self.predictor.task.records_are_examples:
            lines, errors, documents, triples = _predict_documents(self.predictor, self.job.options, block, records)
        else:
            lines, errors, documents, triples = _predict_bags(self.predictor, self.job.options, block, records)
        result = BlockResult(block.id, "".join(line + "\n" for line in lines),
                           "".join(dumps_json(error) + "\n" for error in errors), len(records), documents,
                           len(lines), triples, len({(e["line"], e["record"]) for e in errors}), self.name,
                           0.0, time.perf_counter() - began)
        del records, lines, errors
        release_freed_memory()
        result.peak_rss_mb = peak_rss_mb() or 0.0
        result.rss_mb = resident_mb()
        return result


def resident_mb() -> float:
    """This process's resident memory now, in MB (Linux ``/proc/self/statm``; elsewhere 0.0)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _extract_block(predictor: Any, options: dict[str, Any], block: Block, records: list[RawRecord]
                   ) -> tuple[list[str], list[dict[str, Any]], int, int]:
    """``hiere extract`` on a block: one line per document, ``{"file", "line", "doc", "triples"}``."""
    from hiere.extract import check_item, document_from_line, extract
    from hiere.text.pipeline import clean_text

    errors: list[dict[str, Any]] = []
    items, readable = [], []
    for record in records:
        try:
            if record.text is not None:
                item = document_from_line(record.text, record.line, block.path, block.kind)
            else:
                item = check_item(record.value, block.path, f"document {record.index + 1}")
        except HiereInputError as error:
            errors.append(error_entry(block, record, error))
            continue
        items.append(item)
        readable.append(record)
    failed: set[int] = set()

    def on_error(error: HiereInputError) -> None:
        index = error.input_index if error.input_index is not None else 0
        failed.add(index)
        if error.record:  # extract counts the texts it was given: name the record's place in its file
            where = re.sub(r"^document \d+", f"document {readable[index].index + 1}", error.record)
            error = HiereInputError(error.path, where, error.field, error.message)
        errors.append(error_entry(block, readable[index], error))

    results = extract(
        predictor, items, threshold=options.get("threshold"), batch_size=options.get("batch_size", 8),
        skip_errors=True, source=block.path, window_tokens=options["window_tokens"],
        max_chars=options["max_chars"], on_error=on_error,
    )
    lines, n_triples = [], 0
    for index, (record, item, triples) in enumerate(zip(readable, items, results, strict=True)):
        if index in failed:
            continue
        title = item.get("title") if isinstance(item, dict) else None
        title = clean_text(str(title)) if title else f"document {record.index + 1}"
        lines.append(dumps_json({"file": block.path, "line": record.line, "doc": title, "triples": triples}))
        n_triples += len(triples)
    errors.sort(key=lambda error: error["line"])
    return lines, errors, len(lines), n_triples


def _predict_documents(predictor: Any, options: dict[str, Any], block: Block, records: list[RawRecord]
                       ) -> tuple[list[str], list[dict[str, Any]], int, int]:
    """``hiere predict`` on a block of DocRED documents: one prediction record a line."""
    from hiere.data.docred import parse_document

    known = set(predictor.relations.relations)
    errors: list[dict[str, Any]] = []
    documents, kept = [], []
    for record in records:
        try:
            value = record.value if record.text is None else parse_json(record.text, block.path,
                                                                         f"line {record.line}")
            documents.append(parse_document(value, block.path, record.index, known))
            kept.append(record)
        except HiereInputError as error:
            errors.append(error_entry(block, record, error))
    read_errors = len(errors)
    predictions = _predict_isolating(predictor, documents, kept, block, errors, options)
    n_documents = len(documents) - (len(errors) - read_errors)  # less those the model rejected
    return [dumps_json(p) for p in predictions], sorted(errors, key=lambda e: e["line"]), n_documents, len(predictions)


def _predict_bags(predictor: Any, options: dict[str, Any], block: Block, records: list[RawRecord]
                  ) -> tuple[list[str], list[dict[str, Any]], int, int]:
    """``hiere predict`` on a block of OpenNRE sentences: the block's bags, one prediction record a line."""
    from hiere.data.bags import group_bags, parse_sentence

    known = set(predictor.relations.relations)
    errors: list[dict[str, Any]] = []
    sentences = []
    for record in records:
        where = f"line {record.line}" if record.text is not None else f"record {record.index + 1}"
        try:
            value = record.value if record.text is None else parse_json(record.text, block.path, where)
            sentences.append(parse_sentence(value, block.path, where, known))
        except HiereInputError as error:
            errors.append(error_entry(block, record, error))
    bags = group_bags(sentences, "pair")
    predictions = predictor.predict(bags, explain=not options.get("no_explain", False)) if bags else []
    return [dumps_json(p) for p in predictions], errors, len(bags), len(predictions)


def _predict_isolating(predictor: Any, documents: list, records: list[RawRecord], block: Block,
                       errors: list[dict[str, Any]], options: dict[str, Any]) -> list[dict[str, Any]]:
    """Prediction records of the documents in one model call; when the model rejects one, one call per
    document, so the others keep their predictions and the bad one goes to the errors."""
    if not documents:
        return []
    settings = {"explain": not options.get("no_explain", False), "evidence_top_k": options.get("evidence_top_k"),
                "evidence_min_score": options.get("evidence_min_score")}
    try:
        return predictor.predict(documents, **settings)
    except HiereInputError as error:
        if len(documents) == 1:
            failure = HiereInputError(None, f"document {records[0].index} ({documents[0].title!r})", error.field,
                                      f"the model failed: {error.message}")
            errors.append(error_entry(block, records[0], failure))
            return []
    return [p for doc, record in zip(documents, records, strict=True)
            for p in _predict_isolating(predictor, [doc], [record], block, errors, options)]


def run_blocks_local(job: Job, blocks: list[Block]) -> Iterator[BlockResult]:
    """The local engine: one :class:`BlockWorker` in this process, one block after another."""
    if not blocks:
        return
    worker = BlockWorker(job)
    for block in blocks:
        yield worker.run(block)


# ----------------------------------------------------------------------------------------------- the driver


def model_task(model_dir: str | Path) -> str:
    """``"doc"`` or ``"bag"`` from a model directory's config, without loading the weights."""
    import yaml

    from hiere.models import get_model_class

    path = Path(model_dir)
    if not (path / "config.yaml").is_file() or not (path / "model.safetensors").is_file():
        raise HiereInputError(str(model_dir), None, None,
                              "not a hiere model directory (config.yaml or model.safetensors missing)")
    config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    return get_model_class(config["model"]["name"]).task


def model_fingerprint(model_dir: str | Path) -> str:
    """sha256 of the model's config, weights and threshold: a rerun must use the same model."""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        path = Path(model_dir) / name
        if path.is_file():
            digest.update(name.encode())
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):  # noqa: B023 (used at once)
                    digest.update(chunk)
    return digest.hexdigest()


def _sha256_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):  # noqa: B023 (used at once)
            digest.update(chunk)
    return digest.hexdigest()


def _block_entry(block: Block) -> dict[str, Any]:
    return {**asdict(block), "shard": block.shard, "done": None}


def open_output(out_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Create ``out_dir`` with ``manifest`` (the plan), or resume the job it holds: the inputs, model and
    options must be the same (else :class:`HiereInputError`); blocks marked done whose shard (and errors
    file) are intact stay done, the others are computed again."""
    if out_dir.exists() and not out_dir.is_dir():
        raise HiereInputError(str(out_dir), None, None, "is a file; -o takes a directory (it receives the shards "
                              "and manifest.json)")
    path = out_dir / MANIFEST
    if not path.exists():
        if out_dir.exists() and any(out_dir.iterdir()):
            raise HiereInputError(str(out_dir), None, None, "is not empty and holds no manifest.json: give a new or "
                                  "empty directory")
        _write_manifest(out_dir, manifest)
        return manifest
    from hiere.io import read_json_file

    old = read_json_file(path)
    problem = _difference(old, manifest)
    if problem:
        raise HiereInputError(str(path), None, None, f"{problem}: this directory holds another job's output; give a "
                              "new -o directory, or delete this one to start over")
    for entry, old_entry in zip(manifest["blocks"], old["blocks"], strict=True):
        done = old_entry.get("done")
        if done and _sha256_file(out_dir / entry["shard"]) == done["sha256"] and (
                not done["errors"] or _sha256_file(out_dir / Block(**_fields(entry)).errors_file)
                == done["errors_sha256"]):
            entry["done"] = done
    _write_manifest(out_dir, manifest)
    return manifest


def _difference(old: Any, new: dict[str, Any]) -> str | None:
    """What makes a manifest another job's (the first difference), or None."""
    if not isinstance(old, dict) or old.get("version") != MANIFEST_VERSION or "blocks" not in old:
        return "not a manifest of this hiere version"
    if old.get("command") != new["command"]:
        return f"written by hiere {old.get('command')}, not hiere {new['command']}"
    old_paths = [entry.get("path") for entry in old.get("inputs", [])]
    new_paths = [entry["path"] for entry in new["inputs"]]
    if old_paths != new_paths:
        return f"the inputs differ: the first run read {len(old_paths)} file(s) ({', '.join(old_paths[:3])}"\
               f"{', ...' if len(old_paths) > 3 else ''}), this one {len(new_paths)}"
    for old_input, new_input in zip(old["inputs"], new["inputs"], strict=True):
        if old_input.get("kind") != new_input["kind"]:
            return f"{new_input['path']} was read as {old_input.get('kind')}, now as {new_input['kind']}"
        if old_input.get("sha256") != new_input["sha256"]:
            return f"{new_input['path']} changed since the first run (sha256 {str(old_input.get('sha256'))[:12]}... "\
                   f"now {new_input['sha256'][:12]}...)"
    if old.get("model", {}).get("sha256") != new["model"]["sha256"]:
        return f"the model changed since the first run ({old.get('model', {}).get('dir')})"
    for key in sorted(set(old.get("options", {})) | set(new["options"])):
        if old.get("options", {}).get(key) != new["options"].get(key):
            return f"option {key} was {old.get('options', {}).get(key)!r}, now {new['options'].get(key)!r}"
    if old.get("block_size") != new["block_size"] or len(old["blocks"]) != len(new["blocks"]):
        return f"--block-size was {old.get('block_size')}, now {new['block_size']}"
    return None


def _fields(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: entry[key] for key in Block.__dataclass_fields__}


def _write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    write_text_atomic(out_dir / MANIFEST, dumps_json(manifest, indent=1) + "\n")


def record_block(out_dir: Path, manifest: dict[str, Any], result: BlockResult) -> None:
    """Write a finished block: its errors, its shard (each atomically), then mark it done in the manifest."""
    entry = manifest["blocks"][result.block]
    block = Block(**_fields(entry))
    errors_path = out_dir / block.errors_file
    if result.errors:
        write_text_atomic(errors_path, result.errors)
    else:
        errors_path.unlink(missing_ok=True)
    write_text_atomic(out_dir / block.shard, result.shard)
    entry["done"] = {
        "records": result.records, "documents": result.documents, "outputs": result.outputs,
        "triples": result.triples, "errors": result.n_errors,
        "sha256": hashlib.sha256(result.shard.encode("utf-8")).hexdigest(),
        "errors_sha256": hashlib.sha256(result.errors.encode("utf-8")).hexdigest() if result.errors else None,
    }
    _write_manifest(out_dir, manifest)


def merge_errors(out_dir: Path, manifest: dict[str, Any]) -> None:
    """``errors.jsonl``: the errors of every finished block, in block order (rewritten, never appended)."""

    def chunks() -> Iterator[bytes]:
        for entry in manifest["blocks"]:
            if entry["done"] and entry["done"]["errors"]:
                yield (out_dir / Block(**_fields(entry)).errors_file).read_bytes()

    write_chunks_atomic(out_dir / ERRORS, chunks())


class Progress:
    """Records/s and ETA while a job runs: a tqdm bar on a terminal, else a line at most every ``seconds``."""

    def __init__(self, label: str, unit: str, total: int, done: int, stream: TextIO, seconds: float,
                 enabled: bool = True):
        self.label, self.unit, self.total, self.done, self.stream = label, unit, total, done, stream
        self.seconds, self.enabled, self.started = seconds, enabled, time.monotonic()
        self.processed = self.errors = 0
        self.last_line = self.started
        self.bar = None
        if enabled and getattr(stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, unit=unit[:-1] if unit.endswith("s") else unit,
                            file=stream, desc=label, dynamic_ncols=True)

    def update(self, records: int, errors: int) -> None:
        self.done += records
        self.processed += records
        self.errors += errors
        if self.bar is not None:
            self.bar.update(records)
            self.bar.set_postfix(errors=self.errors, refresh=False)
        elif self.enabled and (time.monotonic() - self.last_line >= self.seconds or self.done >= self.total):
            self.last_line = time.monotonic()
            print(self.line(), file=self.stream, flush=True)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.processed / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        share = 100.0 * self.done / self.total if self.total else 100.0
        eta = format_seconds((self.total - self.done) / rate) if rate > 0 else "?"
        return (f"{self.label}: {self.done:,} of {self.total:,} {self.unit} ({share:.1f}%), {rate:.2f} {self.unit}/s, "
                f"ETA {eta}, {self.errors} errors")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s" if minutes else \
        f"{seconds}s"


Runner = Callable[[Job, list[Block]], Iterator[BlockResult]]


def run_job(job: Job, inputs: Iterable[str], out_dir: str | Path, *, runner: Runner | None = None,
            engine: str = "local", block_size: int = DEFAULT_BLOCK_SIZE, input_format: str = "auto",
            progress: bool = True, stream: TextIO | None = None, progress_seconds: float = PROGRESS_SECONDS,
            ) -> dict[str, Any]:
    """Plan the inputs, open (or resume) ``out_dir``, run the blocks not yet done with ``runner`` (default:
    :func:`run_blocks_local`), write each shard as it arrives, merge the errors -> the summary dict (also
    stored in the manifest)."""
    stream = stream or sys.stderr
    out = Path(out_dir)
    task = model_task(job.model_dir)
    paths = resolve_inputs(inputs)
    input_infos, blocks = plan_inputs(paths, job.command, task, block_size, input_format)
    manifest = {
        "version": MANIFEST_VERSION, "command": job.command,
        "model": {"dir": str(Path(job.model_dir).resolve()), "sha256": model_fingerprint(job.model_dir)},
        "options": job.options, "block_size": block_size, "inputs": input_infos,
        "blocks": [_block_entry(block) for block in blocks], "summary": None,
    }
    manifest = open_output(out, manifest)
    pending = [block for block, entry in zip(blocks, manifest["blocks"], strict=True) if not entry["done"]]
    skipped = len(blocks) - len(pending)
    total = sum(info["records"] for info in input_infos)
    unit = get_task(task).request_field if job.command == "predict" else "documents"
    label = f"hiere {job.command}"
    if skipped:
        print(f"{label}: resuming {out}: {skipped} of {len(blocks)} shards already done", file=stream)
    report = Progress(label, unit, total, total - sum(block.records for block in pending), stream,
                      progress_seconds, progress)
    began = time.monotonic()
    workers: dict[str, float] = {}
    memory: list[list[Any]] = []  # per finished block, in arrival order: [block, worker, rss_mb, peak_rss_mb]
    shown = 0
    try:
        for result in (runner or run_blocks_local)(job, pending):
            if result.failure:
                raise HiereInputError(None, None, None, result.failure)
            record_block(out, manifest, result)
            workers[result.worker] = max(workers.get(result.worker, 0.0), result.peak_rss_mb)
            memory.append([result.block, result.worker, result.rss_mb, result.peak_rss_mb])
            for line in result.errors.splitlines():
                if shown < 5:
                    LOGGER.warning("skipped: %s", json.loads(line)["error"])
                shown += 1
            report.update(result.records, result.n_errors)
    finally:
        report.close()
        with contextlib.suppress(OSError):
            merge_errors(out, manifest)
    done = [entry["done"] for entry in manifest["blocks"]]
    seconds = time.monotonic() - began
    summary = {
        "engine": engine, "records": sum(d["records"] for d in done), "documents": sum(d["documents"] for d in done),
        "triples" if job.command == "extract" else "predictions": sum(d["triples"] for d in done),
        "errors": sum(d["errors"] for d in done), "shards": len(blocks), "shards_skipped": skipped,
        "seconds": round(seconds, 2), f"{unit}_per_second": round(report.processed / seconds, 3) if seconds else None,
        "workers_peak_rss_mb": workers,
        # a leak shows as rss_mb rising block after block; a transient peak as peak_rss_mb stepping up alone
        "memory_by_block": memory,
    }
    manifest["summary"] = summary
    _write_manifest(out, manifest)
    what = "triples" if job.command == "extract" else "predictions"
    task_unit = get_task(task).unit if job.command == "predict" else "documents"
    line = (f"{label}: {summary['documents']:,} {task_unit}, {summary[what]:,} {what}, {summary['errors']:,} "
            f"errors in {format_seconds(seconds)} ({report.rate():.2f} {unit}/s); {len(blocks)} shards "
            f"({skipped} already done) -> {out}")
    if summary["errors"]:
        line += f"; bad records: {out / ERRORS}"
        if shown > 5:
            line += f" ({shown - 5} more than the warnings show)"
    print(line, file=stream)
    return summary


# ----------------------------------------------------------------------------------------------- the CLI

SCALE_HELP = """\
Corpus scale (-o OUT_DIR): INPUT may be several files and globs; the records are cut into blocks of
--block-size records, each written to OUT_DIR/shard-NNNNN.jsonl, with OUT_DIR/manifest.json (inputs and
their sha256, block boundaries, shard names, counts) and OUT_DIR/errors.jsonl (bad records with file and
line; they are skipped and the job goes on). Rerunning the same command continues a killed job: finished
shards are kept, the others are computed again (no record is lost or written twice); changed inputs,
model or options are an error. --engine ray runs the blocks on Ray Data (pip install 'hiere[ray]'):
a local Ray on this machine, or the cluster at --address. See docs/scale.md."""


def add_scale_arguments(parser: argparse.ArgumentParser, when: str = "with -o OUT_DIR") -> None:
    """``--engine``, ``--address``, ``--workers``, ``--block-size`` ... (``-o`` is the command's own)."""
    from hiere.arguments import non_negative_int, positive_int

    group = parser.add_argument_group(f"corpus scale ({when}; see docs/scale.md)")
    group.add_argument("--engine", choices=ENGINES, default=None,
                       help="local: one process, no Ray needed; ray: Ray Data, one model per worker; both write "
                       "identical shards")
    group.add_argument("--address", default=None, metavar="ADDR",
                       help="--engine ray: the Ray cluster to join (e.g. auto, or ray://HEAD:10001); default: "
                       "start a local Ray on this machine (node address 127.0.0.1, no dashboard)")
    group.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="--engine ray: model workers (default: the CPUs Ray has / --cpus-per-worker, or its "
                       "GPUs / --gpus-per-worker)")
    group.add_argument("--cpus-per-worker", type=positive_int, default=1, metavar="C",
                       help="--engine ray: CPUs (and torch threads) per worker (default 1)")
    group.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                       help="--engine ray: GPUs per worker, e.g. 1 (default 0: CPU; with G > 0 the model runs on "
                       "the worker's GPU)")
    group.add_argument("--kernel-cache", type=non_negative_int, default=DEFAULT_KERNEL_CACHE, metavar="N",
                       help=f"compiled CPU kernels (oneDNN, one per tensor shape; also the entries of PyTorch's ideep "
                       f"cache, at least 1) a worker, or hiere predict on one file, keeps (default "
                       f"{DEFAULT_KERNEL_CACHE}: memory stays flat however many documents; every new document length "
                       "adds kernels to a cache, so 1024, oneDNN's own, grows a worker by a few hundred MB; it can "
                       "predict faster with bf16 models, 10-14 %% in one measurement)")
    group.add_argument("--block-size", type=positive_int, default=DEFAULT_BLOCK_SIZE, metavar="N",
                       help=f"records per block and shard (default {DEFAULT_BLOCK_SIZE}); progress advances a block "
                       "at a time, a rerun recomputes at most the blocks in flight")
