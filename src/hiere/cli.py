"""The ``hiere`` command: a thin layer over the Python API (every command is a function you can call)."""

from __future__ import annotations

import argparse
import json
import sys
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
  hiere serve runs/bilstm --port 8000                                HTTP API + web page (pip install 'hiere[serve]')
  hiere demo                                                         train + evaluate + extract on the bundled sample
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hiere", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    evaluate.add_argument("--device", default="auto", help="auto|cpu|cuda (default auto)")

    predict = commands.add_parser("predict", help="predictions for a file (DocRED submission / bag ranking JSON)")
    predict.add_argument("model_dir")
    predict.add_argument("input", help="DocRED JSON (documents) or OpenNRE jsonl (bags); labels not needed")
    predict.add_argument("-o", "--output", required=True, help="where to write the predictions JSON")
    predict.add_argument("--no-explain", action="store_true", help="leave out attention/key-pair explanations")
    predict.add_argument("--device", default="auto")

    score = commands.add_parser("score", help="metrics of a predictions file against gold (no model needed)")
    score.add_argument("gold")
    score.add_argument("pred", nargs="+", help="predictions JSON (several allowed for --plot with --task bag)")
    score.add_argument("--task", choices=["doc", "bag"], default="doc")
    score.add_argument("--train", help="training file: enables Ign F1 (doc)")
    score.add_argument("--long-tail", help="long-tail relation list: enables Hits@K (bag)")
    score.add_argument("--plot", help="PR curve PNG (bag)")

    extract = commands.add_parser("extract", help="raw text -> relation triples with a trained model")
    extract.add_argument("model_dir")
    add_extract_arguments(extract)

    from hiere.serve import settings as serve_settings  # no FastAPI import: the extra is optional

    serve = commands.add_parser("serve", help="HTTP API and web page for a trained model (FastAPI + uvicorn)",
                                description=serve_settings.DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("model_dir", help="a model directory written by 'hiere train'")
    serve_settings.add_serve_arguments(serve)

    demo = commands.add_parser("demo", help="train bilstm on the bundled Re-DocRED sample, evaluate, extract")
    demo.add_argument("-o", "--output", default="runs/demo", help="model directory (default runs/demo)")
    demo.add_argument("--epochs", type=int, default=None, help="epochs (default: the config's)")
    return parser


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    try:
        from hiere.extract import add_extract_arguments as add
    except ImportError:  # the extract module brings spaCy; keep the rest of the CLI usable without it
        parser.add_argument("input", nargs="?")
        parser.add_argument("--text")
        return
    add(parser)


def cmd_train(args: argparse.Namespace) -> int:
    from hiere.config import load_config
    from hiere.training.trainer import train

    config = load_config(args.config, args.overrides)
    out = train(config, args.output, resume=args.resume)
    print(f"model directory: {out}", file=sys.stderr)
    for name in ("dev_metrics.json", "test_metrics.json"):
        if (Path(out) / name).exists():
            print(f"{name}: {(Path(out) / name).read_text().strip()}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hiere.api import load

    predictor = load(args.model_dir, args.device)
    options = {}
    if predictor.model.task == "bag":
        from hiere.training.trainer import _read_long_tail

        options["long_tail"] = _read_long_tail(args.long_tail)
        if args.plot:
            options["plot"] = args.plot
    metrics = predictor.evaluate(args.data, train=args.train, progress=sys.stderr.isatty(), **options)
    print(json.dumps(metrics, indent=1))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from hiere.api import load
    from hiere.io import write_json_atomic

    predictor = load(args.model_dir, args.device)
    records = predictor.predict(args.input, explain=not args.no_explain, progress=sys.stderr.isatty())
    write_json_atomic(args.output, records)
    print(f"{len(records)} predictions -> {args.output}", file=sys.stderr)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from hiere.data.docred import load_json, read_docred
    from hiere.metrics.doc import score_documents

    if args.task == "bag":
        from hiere.tasks.bag import score_files
        from hiere.training.trainer import _read_long_tail

        metrics = score_files(args.gold, args.pred, long_tail=_read_long_tail(args.long_tail), plot=args.plot)
        print(json.dumps(metrics, indent=1))
        return 0
    if len(args.pred) != 1:
        raise HiereConfigError("document-level scoring takes one predictions file")
    gold = read_docred(args.gold, require_labels=True)
    records = load_json(args.pred[0])
    if not isinstance(records, list):
        raise HiereInputError(args.pred[0], None, None, "a predictions file must be a JSON list of records")
    for index, record in enumerate(records):
        for key in ("title", "h_idx", "t_idx", "r"):
            if not isinstance(record, dict) or key not in record:
                raise HiereInputError(args.pred[0], f"prediction {index}", key, "missing")
    train = read_docred(args.train, require_labels=True) if args.train else None
    print(json.dumps(score_documents(gold, records, train), indent=1))
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
            "extract": cmd_extract, "serve": cmd_serve,
            "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (HiereInputError, HiereConfigError) as error:
        print(f"hiere: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hiere: interrupted (a run can continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
