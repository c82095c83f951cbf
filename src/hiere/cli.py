"""The ``hiere`` command: a thin layer over the Python API (every command is a function you can call)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from hiere.arguments import DEVICE_HELP, device_name, non_negative_int, positive_int, probability
from hiere.errors import HiereConfigError, HiereInputError

DESCRIPTION = """\
hiere: hierarchical relation extraction (HNRE, HiCLRE, HIN, KMGRE and baselines).

  hiere train configs/bilstm_redocred.yaml -o runs/bilstm            train; writes a model directory
  hiere train CONFIG -o OUT --set trainer.epochs=1 --set model.hidden=64
  hiere train CONFIG -o OUT --resume                                 continue a killed run
  torchrun --nproc_per_node=2 -m hiere train CONFIG -o OUT           the same on 2 processes (DDP)
  hiere evaluate runs/bilstm DEV.json --train TRAIN.json             metrics JSON (Ign F1 needs --train)
  hiere predict runs/bilstm DOCS.json -o pred.json                   predictions file
  hiere score GOLD.json pred.json --train TRAIN.json                 metrics of a predictions file
  hiere extract runs/bilstm --text "Marie Curie was born in Warsaw." raw text -> triples
  hiere extract runs/bilstm 'corpus/*.jsonl' -o out/ --engine ray      corpus scale: shards, resumable (docs/scale.md)
  hiere predict runs/bilstm 'docs/*.json' -o out/ --engine local       the same for predictions
  hiere serve runs/bilstm --port 8000                                HTTP API + web page (pip install 'hiere[serve]')
  hiere demo                                                         train + evaluate + extract on the bundled sample
"""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``hiere extract: error: ... (see --help)``), exit 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="hiere", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model from a YAML config",
                                description="Train a model. The output directory becomes a model directory "
                                "(config.yaml, model.safetensors, resources/, threshold.json, train.log, "
                                "history.json).")
    train.add_argument("config", help="YAML config (see configs/); needs model.name and data.train")
    train.add_argument("-o", "--output", required=True, help="output model directory")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set trainer.epochs=1 (repeatable)")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUTPUT/checkpoint/last.pt")

    evaluate = commands.add_parser("evaluate", help="metrics of a model on a labelled file (JSON on stdout)")
    evaluate.add_argument("model_dir")
    evaluate.add_argument("data", help="labelled DocRED JSON or OpenNRE jsonl file")
    evaluate.add_argument("--train", help="training file: enables Ign F1 (document models)")
    evaluate.add_argument("--long-tail", help="file of long-tail relations, one a line: enables Hits@K (bag models)")
    evaluate.add_argument("--plot", help="write the PR curve to this PNG (bag models)")
    evaluate.add_argument("--device", type=device_name, default="auto", help=DEVICE_HELP)

    predict = commands.add_parser("predict", help="predictions for a file (DocRED submission / bag ranking JSON)")
    predict.add_argument("model_dir")
    predict.add_argument("input", nargs="+", metavar="INPUT",
                         help="DocRED JSON (documents) or OpenNRE jsonl (bags); labels not needed. With --engine: "
                         "several files and globs, and JSONL with one DocRED document a line")
    predict.add_argument("-o", "--output", required=True, metavar="OUT",
                         help="where to write the predictions JSON; with --engine: the output directory (one "
                         "prediction record a line in shards, see 'corpus scale' below)")
    predict.add_argument("--no-explain", action="store_true", help="leave out attention/key-pair explanations")
    predict.add_argument("--device", type=device_name, default="auto", help=DEVICE_HELP)
    predict.add_argument("--evidence-top-k", type=non_negative_int, default=None, metavar="K",
                         help="document models: at most K evidence sentences per fact (0: no limit; "
                         "default: the model's evidence_top_k, 3)")
    predict.add_argument("--evidence-min-score", type=float, default=None, metavar="S",
                         help="document models: only sentences whose evidence score is >= S (choose S on dev)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    from hiere.scale import SCALE_HELP, add_scale_arguments

    predict.epilog = SCALE_HELP.replace("(-o OUT_DIR)", "(--engine local|ray -o OUT_DIR)")
    add_scale_arguments(predict, when="with --engine local|ray -o OUT_DIR")

    score = commands.add_parser(
        "score", help="metrics of a predictions file against gold (no model needed)",
        description="Score a predictions file against gold data. Each prediction is checked: a missing or "
        "mistyped field, an unknown relation or an entity index outside its document is an error (exit 2); "
        "predictions of titles not in the gold file and duplicates are scored as the official DocRED "
        "scorer does (wrong, and counted once) with a warning that counts them.")
    score.add_argument("gold")
    score.add_argument("pred", nargs="+", help="predictions JSON (several allowed for --plot with --task bag)")
    score.add_argument("--task", choices=["doc", "bag"], default="doc")
    score.add_argument("--train", help="training file: enables Ign F1 (doc)")
    score.add_argument("--relations", help="rel_info.json / rel2id.json: the relations a prediction may name "
                       "(doc; default: the gold and training relations, plus DocRED's 96 for DocRED data)")
    score.add_argument("--long-tail", help="long-tail relation list: enables Hits@K (bag)")
    score.add_argument("--plot", help="PR curve PNG (bag)")

    extract = commands.add_parser("extract", help="raw text -> relation triples with a trained model")
    extract.add_argument("model_dir")
    add_extract_arguments(extract)

    from hiere import build_ds

    build_ds_parser = commands.add_parser(
        "build-ds", help="corpus + knowledge base -> distant-supervision bags (jsonl)",
        description=build_ds.DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build_ds.add_build_ds_arguments(build_ds_parser)

    from hiere.serve import settings as serve_settings  # no FastAPI import: the extra is optional

    serve = commands.add_parser("serve", help="HTTP API and web page for a trained model (FastAPI + uvicorn)",
                                description=serve_settings.DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("model_dir", help="a model directory written by 'hiere train'")
    serve_settings.add_serve_arguments(serve)

    demo = commands.add_parser("demo", help="train bilstm on the bundled Re-DocRED sample, evaluate, extract")
    demo.add_argument("-o", "--output", default="runs/demo", help="model directory (default runs/demo)")
    demo.add_argument("--epochs", type=positive_int, default=None, help="epochs (default: the config's)")
    return parser


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hiere extract MODEL_DIR (--text TEXT | FILE)`` (the caller adds ``model_dir``)."""
    try:
        from hiere.extract import DEFAULT_MAX_CHARS, DEFAULT_WINDOW_TOKENS
    except ImportError:  # the extract module brings spaCy; keep the rest of the CLI usable without it
        parser.add_argument("input", nargs="*")
        parser.add_argument("--text")
        return

    parser.description = (
        "Raw English text -> relation triples. Bytes that are not UTF-8 and lone surrogates are read as "
        "U+FFFD (one character each, so character offsets still index your text); binary or non-English "
        "documents of a file are skipped with a warning naming the line, and the rest continues. Texts "
        "longer than --max-chars are read in parts (see docs/extract.md)."
    )
    parser.add_argument(
        "input", nargs="*", metavar="INPUT", help="file of documents: one text a line, or .jsonl records "
        "{text, title?, entities?}, or a .json list of those; '-' reads standard input. With -o OUT_DIR: "
        "several files and globs ('corpus/*.jsonl')"
    )
    parser.add_argument("-o", "--output", default=None, metavar="OUT_DIR",
                        help="write sharded JSON lines to this directory, one {file, line, doc, triples} record "
                        "per document, resumable (see 'corpus scale' below); default: triples on stdout")
    parser.add_argument("--text", help="the text to read (instead of FILE)")
    parser.add_argument("--entities", help="JSON file: a list of {start, end, type?, cluster?} character "
                        "spans that replace spaCy's entities (with --text; in .jsonl give each record "
                        "an 'entities' list)")
    parser.add_argument("--format", choices=["jsonl", "table"], default="jsonl",
                        help="jsonl: one JSON triple a line (default); table: aligned columns for people")
    parser.add_argument("--input-format", choices=["auto", "lines", "jsonl", "json"], default="auto",
                        help="how FILE holds documents (default: by extension)")
    parser.add_argument("--threshold", type=probability, default=None,
                        help="bag models: minimum score of a relation, in [0, 1] (default: the model's tuned "
                        "threshold)")
    parser.add_argument("--batch-size", type=positive_int, default=8,
                        help="model windows per call, >= 1 (default 8): short documents are one window each; a long "
                        "document's windows go in one call")
    parser.add_argument("--window-tokens", type=non_negative_int, default=DEFAULT_WINDOW_TOKENS,
                        help="document models read longer documents in overlapping windows of this many "
                        f"tokens (default {DEFAULT_WINDOW_TOKENS}; 0: never)")
    parser.add_argument("--max-chars", type=positive_int, default=DEFAULT_MAX_CHARS,
                        help="the longest text read as one document (default "
                        f"{DEFAULT_MAX_CHARS:,}); a longer one is read in parts of at most this many "
                        "characters, cut at paragraph or sentence ends, with a warning")
    parser.add_argument("--no-language-check", action="store_true",
                        help="do not reject text that does not look like English")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (shown for files when stderr is a terminal; counts characters)")
    parser.add_argument("--device", type=device_name, default="auto", help=DEVICE_HELP)
    from hiere.scale import SCALE_HELP, add_scale_arguments

    parser.epilog = SCALE_HELP
    add_scale_arguments(parser)


def run_extract(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``hiere extract``: print triples (JSON lines or a table); bad input -> one stderr line, exit 2.

    In a file, a document that cannot be read (malformed JSON, binary, not English) is skipped with a
    warning naming its line; the others are printed as they are read. The summary line counts them.
    """
    out = out or sys.stdout
    try:
        return _run_extract(args, out)
    except HiereInputError as error:
        print(f"hiere: error: {error}", file=sys.stderr)
        return 2


def _run_extract(args: argparse.Namespace, out: TextIO) -> int:
    from collections import deque

    from hiere.extract import (
        DEFAULT_MAX_CHARS,
        DEFAULT_WINDOW_TOKENS,
        count_characters,
        extract,
        format_table,
        iter_documents,
    )
    from hiere.io import dumps_json
    from hiere.text.pipeline import TextPipeline, clean_text, parse_entities

    text, paths = getattr(args, "text", None), getattr(args, "input", None)
    paths = [] if paths is None else [paths] if isinstance(paths, str) else list(paths)
    if getattr(args, "output", None) is not None or getattr(args, "engine", None) is not None:
        if text is not None or getattr(args, "entities", None):
            raise HiereInputError(None, None, None, "--text and --entities print triples of one text; -o OUT_DIR and "
                                  "--engine read INPUT files (give each .jsonl record an 'entities' list)")
        if getattr(args, "format", "jsonl") != "jsonl":
            raise HiereInputError(None, None, None, "--format table prints to stdout; -o OUT_DIR writes JSON lines")

        options = {
            "threshold": getattr(args, "threshold", None), "batch_size": getattr(args, "batch_size", 8),
            "window_tokens": getattr(args, "window_tokens", DEFAULT_WINDOW_TOKENS),
            "max_chars": getattr(args, "max_chars", DEFAULT_MAX_CHARS),
            "check_english": not getattr(args, "no_language_check", False),
        }
        args.input = paths
        return run_scale(args, "extract", options)
    if len(paths) > 1:
        raise HiereInputError(None, None, None, f"{len(paths)} INPUT files: give -o OUT_DIR to write them as shards "
                              "(one file at a time prints to stdout)")
    path = paths[0] if paths else None
    if (text is None) == (path is None):
        raise HiereInputError(None, None, None, "give either --text TEXT or a FILE of documents (not both)")
    entities_path = getattr(args, "entities", None)
    if entities_path and path is not None:
        message = "--entities goes with --text; in a .jsonl file give each record an 'entities' list"
        raise HiereInputError(entities_path, None, None, message)
    if text is not None and not text.strip():
        raise HiereInputError(None, None, "--text", "the text is empty")
    skipped: list[HiereInputError] = []

    def skip(error: HiereInputError) -> None:
        skipped.append(error)
        logging.getLogger("hiere.extract").warning("skipped: %s", error)

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
        items = iter_documents(path, input_format, on_error=skip)
        total = count_characters(path, input_format)

    from hiere.api import load

    predictor = load(args.model_dir, getattr(args, "device", "auto"))
    pipeline = TextPipeline(check_english=not getattr(args, "no_language_check", False))
    predictor._text_pipeline = pipeline
    bar = None
    if path is not None and not getattr(args, "no_progress", False):
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="char", unit_scale=True, file=sys.stderr, disable=None, desc="extract")
    titles: deque[str] = deque()  # titles of the documents read but not yet printed

    def titled(stream: Iterable[Any]) -> Iterator[Any]:
        for index, element in enumerate(stream):
            title = element.get("title") if isinstance(element, dict) else None
            titles.append(clean_text(str(title)) if title else f"document {index + 1}")
            yield element

    results = extract(
        predictor, titled(items), pipeline=pipeline, threshold=getattr(args, "threshold", None),
        batch_size=getattr(args, "batch_size", 8), skip_errors=path is not None,
        window_tokens=getattr(args, "window_tokens", DEFAULT_WINDOW_TOKENS),
        max_chars=getattr(args, "max_chars", DEFAULT_MAX_CHARS),
        source=None if path is None else str(path), on_error=skip,
        progress=bar.update if bar is not None else None,
    )
    fmt = getattr(args, "format", "jsonl")
    n_docs = n_triples = 0
    try:
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
                    print(dumps_json(record), file=out)
            out.flush()
    finally:
        if bar is not None:
            bar.close()
    summary = f"hiere extract: {n_triples} triples from {n_docs} document(s)"
    if skipped:
        summary += f"; {len(skipped)} skipped (see the warnings)"
    print(summary, file=sys.stderr)
    return 0


def cmd_build_ds(args: argparse.Namespace) -> int:
    from hiere.build_ds import run_build_ds

    return run_build_ds(args)


def cmd_train(args: argparse.Namespace) -> int:
    from hiere.config import TrainerConfig, load_config
    from hiere.memory import bound_kernel_cache, enable_huge_pages

    config = load_config(args.config, args.overrides)
    trainer = TrainerConfig.from_dict(config.get("trainer") or {})  # checked here already (no torch imported yet)
    if trainer.huge_pages:
        enable_huge_pages()  # before the trainer's imports allocate the process's first tensor
    bound_kernel_cache(trainer.kernel_cache)  # before the first oneDNN kernel
    from hiere.training.trainer import train

    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise HiereInputError(args.output, None, None, "is a file; the output of training is a model directory")
    out = train(config, args.output, resume=args.resume)
    print(f"model directory: {out}", file=sys.stderr)
    for name in ("dev_metrics.json", "test_metrics.json"):
        if (Path(out) / name).exists():
            print(f"{name}: {(Path(out) / name).read_text().strip()}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hiere.api import load

    predictor = load(args.model_dir, args.device)
    options = predictor.task.metric_options(args.long_tail, args.plot)
    metrics = predictor.evaluate(args.data, train=args.train, progress=sys.stderr.isatty(), **options)
    print(json.dumps(metrics, indent=1))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from hiere.api import load
    from hiere.io import check_output_file, write_json_atomic

    if scale_requested(args):
        return run_scale(args, "predict", {"no_explain": args.no_explain, "evidence_top_k": args.evidence_top_k,
                                           "evidence_min_score": args.evidence_min_score})
    if len(args.input) > 1:
        raise HiereInputError(None, None, None, f"{len(args.input)} INPUT files: give --engine local -o OUT_DIR to "
                              "write their predictions as shards (without --engine: one file -> one JSON)")
    args.input = args.input[0]
    check_output_file(args.output)
    from hiere.memory import bound_kernel_cache

    bound_kernel_cache(args.kernel_cache)  # before the model's first oneDNN kernel, as a corpus-scale worker
    predictor = load(args.model_dir, args.device)
    progress = sys.stderr.isatty() and not args.no_progress
    records = predictor.predict(args.input, explain=not args.no_explain, progress=progress,
                                evidence_top_k=args.evidence_top_k, evidence_min_score=args.evidence_min_score)
    write_json_atomic(args.output, records)
    print(f"{len(records)} predictions -> {args.output}", file=sys.stderr)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from hiere.tasks import get_task

    metrics = get_task(args.task).score_files(args.gold, args.pred, train=args.train, relations=args.relations,
                                              long_tail=args.long_tail, plot=args.plot)
    print(json.dumps(metrics, indent=1))
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    return run_extract(args)


def cmd_serve(args: argparse.Namespace) -> int:
    return run_serve(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from hiere.demo import run_demo

    return run_demo(args.output, args.epochs)


# ------------------------------------------------------------ corpus scale (hiere.scale) and hiere serve


def scale_requested(args: argparse.Namespace) -> bool:
    return getattr(args, "engine", None) is not None


def run_scale(args: argparse.Namespace, command: str, options: dict[str, Any]) -> int:
    """``hiere extract|predict MODEL_DIR INPUT... -o OUT_DIR [--engine local|ray]``."""
    engine = args.engine or "local"
    inputs = args.input if isinstance(args.input, list) else [args.input]
    if not inputs:
        raise HiereInputError(None, None, None, "give the INPUT files (or globs) to read")
    if args.output is None:
        raise HiereInputError(None, None, None, f"--engine {engine} writes shards: give -o OUT_DIR")
    if engine == "local":
        for option, default in (("address", None), ("workers", None), ("cpus_per_worker", 1), ("gpus_per_worker", 0.0)):
            if getattr(args, option, default) not in (default, 1 if option == "workers" else default):
                flag = "--" + option.replace("_", "-")
                raise HiereInputError(None, None, None, f"{flag} goes with --engine ray (the local engine is one "
                                      "process)")
    from hiere.scale import Job, run_job

    job = Job(command, str(Path(args.model_dir).resolve()), options, device=getattr(args, "device", "auto"),
              threads=args.cpus_per_worker if engine == "ray" else None, kernel_cache=args.kernel_cache)
    runner = None
    if engine == "ray":
        from hiere.scale_ray import ray_runner

        gpus = args.gpus_per_worker
        if gpus < 0:
            raise HiereInputError(None, None, None, f"--gpus-per-worker must be >= 0, got {gpus}")
        if gpus > 0 and job.device == "auto":
            job = Job(job.command, job.model_dir, job.options, "cuda", job.threads, job.kernel_cache)
        runner = ray_runner(args.address, args.workers, args.cpus_per_worker, gpus)
    run_job(job, inputs, args.output, runner=runner, engine=engine, block_size=args.block_size,
            input_format=getattr(args, "input_format", "auto"), progress=not getattr(args, "no_progress", False))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """``hiere serve``: load the model once per worker process and serve until interrupted."""
    try:
        import uvicorn

        from hiere.serve.app import create_app
    except ImportError as error:
        print(f"hiere: error: hiere serve needs the serve extra ({error.name} is missing): "
              "pip install 'hiere[serve]'", file=sys.stderr)
        return 2
    from hiere.serve.settings import SETTINGS_ENV, settings_from_args

    try:
        settings = settings_from_args(args)
    except ValueError as error:
        print(f"hiere: error: {error}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"hiere: error: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    print(f"hiere serve: {settings.model_dir} on http://{args.host}:{args.port}/ "
          f"(API reference: /docs; {args.workers} worker process(es))", file=sys.stderr)
    if args.workers == 1:
        app = create_app(settings)  # loads the model now: a bad directory fails before the port opens
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
        return 0
    from hiere.errors import HiereInputError
    from hiere.models.directory import WEIGHTS

    model_dir = Path(settings.model_dir)
    if not (model_dir / "config.yaml").exists() or not (model_dir / WEIGHTS).exists():  # fail before the workers
        raise HiereInputError(str(model_dir), None, None,
                              "not a hiere model directory (config.yaml or model.safetensors missing)")
    os.environ[SETTINGS_ENV] = settings.to_env()
    uvicorn.run("hiere.serve.app:create_app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level)
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "score": cmd_score,
            "extract": cmd_extract, "serve": cmd_serve, "demo": cmd_demo, "build-ds": cmd_build_ds}


def main(argv: list[str] | None = None) -> int:
    """``hiere ARGS``: 0 on success, 2 for bad input (one line on stderr), 130 (Ctrl-C), 143 (SIGTERM) or
    129 (SIGHUP) when stopped, 141 when the reader of stdout went away."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a bad option (one line from Parser.error)
        return int(stop.code or 0) if not isinstance(stop.code, str) else 2
    with _warnings_to_stderr(), _signals_as_exceptions():
        try:
            return COMMANDS[args.command](args)
        except (HiereInputError, HiereConfigError) as error:
            print(f"hiere: error: {error}", file=sys.stderr)
            return 2
        except OSError as error:  # a file the user named cannot be read or written (permissions, disk full)
            if isinstance(error, BrokenPipeError):  # the reader of stdout went away (`hiere extract ... | head`)
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 141
            where = f"{error.filename}: " if error.filename else ""
            print(f"hiere: error: {where}{error.strerror or error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("hiere: interrupted (a training run can continue with --resume)", file=sys.stderr)
            return 130
        except Terminated as stop:
            print(f"hiere: stopped by {stop.signal_name} (a training run can continue with --resume)",
                  file=sys.stderr)
            return 128 + stop.signal_number


class Terminated(BaseException):  # noqa: N818 (not an error: the process was asked to stop)
    """SIGTERM or SIGHUP arrived: raised in the main thread so temp files are removed and outputs stay whole."""

    def __init__(self, signal_number: int):
        super().__init__(signal_number)
        self.signal_number = signal_number
        self.signal_name = signal.Signals(signal_number).name


@contextlib.contextmanager
def _signals_as_exceptions() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signal_number: int, _frame: object) -> None:
        raise Terminated(signal_number)

    previous = {number: signal.signal(number, stop) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """``hiere.*`` warnings (skipped documents, scorer notes) as ``hiere: warning: ...`` lines on stderr."""
    logger = logging.getLogger("hiere")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("hiere: warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
