"""The ``hiere`` command: a thin layer over the Python API (every command is a function you can call)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import typing
from collections.abc import Iterator
from pathlib import Path

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


def positive_int(value: str) -> int:
    number = _int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be an integer >= 1")
    return number


def non_negative_int(value: str) -> int:
    number = _int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be an integer >= 0")
    return number


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None


def probability(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise argparse.ArgumentTypeError(f"{value!r} must be a score in [0, 1]")
    return number


def device_name(value: str) -> str:
    if re.fullmatch(r"auto|cpu|cuda(:\d+)?", value) is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a device: use auto, cpu, cuda or cuda:N")
    return value


DEVICE_HELP = "auto|cpu|cuda|cuda:N (default auto: CUDA when present)"


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
    try:
        from hiere.extract import add_extract_arguments as add
    except ImportError:  # the extract module brings spaCy; keep the rest of the CLI usable without it
        parser.add_argument("input", nargs="*")
        parser.add_argument("--text")
        return
    add(parser)


def cmd_build_ds(args: argparse.Namespace) -> int:
    from hiere.build_ds import run_build_ds

    return run_build_ds(args)


def cmd_train(args: argparse.Namespace) -> int:
    from hiere.config import load_config
    from hiere.training.trainer import train

    config = load_config(args.config, args.overrides)
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
    from hiere.scale import run_scale, scale_requested

    if scale_requested(args):
        return run_scale(args, "predict", {"no_explain": args.no_explain, "evidence_top_k": args.evidence_top_k,
                                           "evidence_min_score": args.evidence_min_score})
    if len(args.input) > 1:
        raise HiereInputError(None, None, None, f"{len(args.input)} INPUT files: give --engine local -o OUT_DIR to "
                              "write their predictions as shards (without --engine: one file -> one JSON)")
    args.input = args.input[0]
    check_output_file(args.output)
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
    from hiere.extract import run_extract

    return run_extract(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from hiere.serve.settings import run_serve

    return run_serve(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from hiere.demo import run_demo

    return run_demo(args.output, args.epochs)


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
