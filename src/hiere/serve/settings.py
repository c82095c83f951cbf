"""Limits and batching of ``hiere serve``, and its command-line arguments.

Nothing here imports FastAPI, so ``hiere --help`` works without the ``serve`` extra; ``hiere serve``
(:func:`hiere.cli.run_serve`) imports it and says how to install it when it is missing.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, fields

SETTINGS_ENV = "HIERE_SERVE_SETTINGS"  # how ``--workers N`` hands the settings to each worker process


@dataclass(frozen=True)
class ServeSettings:
    """What one server process loads and how much it accepts. Every limit answers a 413 naming the field."""

    model_dir: str
    device: str = "auto"
    max_request_bytes: int = 2_000_000  # the whole request body
    max_texts: int = 32  # texts per /extract request
    max_chars: int = 50_000  # characters per text
    max_records: int = 256  # documents or bag sentences per /predict request
    batch_window_ms: float = 10.0  # how long the first text of a batch waits for company
    max_batch_texts: int = 32  # texts per model call
    max_pending_texts: int = 512  # queued texts before new requests get 503 (busy)
    check_english: bool = True  # reject text that does not look like English (as ``hiere extract``)

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_texts", "max_chars", "max_records", "max_batch_texts",
                     "max_pending_texts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_window_ms < 0:
            raise ValueError(f"batch_window_ms must be >= 0, got {self.batch_window_ms}")

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeSettings:
        raw = os.environ.get(SETTINGS_ENV)
        if not raw:
            raise RuntimeError(f"{SETTINGS_ENV} is not set: start the server with 'hiere serve MODEL_DIR'")
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in json.loads(raw).items() if key in known})


DESCRIPTION = """\
Serve a trained model over HTTP, with a web page to read what it finds.

  hiere serve runs/bilstm                       http://127.0.0.1:8000/ (page), /docs (API reference)
  hiere serve runs/bilstm --port 9000 --host 0.0.0.0     listen on every interface (mind who can reach it)

Endpoints (JSON in, JSON out; pydantic schemas at /docs and /openapi.json):
  POST /extract   raw text -> triples, the same as 'hiere extract':
                  {"text": "Marie Curie was born in Warsaw.", "threshold": 0.5, "top_k": 10}
                  {"texts": ["...", {"text": "...", "entities": [{"start": 0, "end": 11, "type": "PER"}]}]}
  POST /predict   DocRED documents or OpenNRE sentences -> the records of 'hiere predict':
                  {"documents": [{"title", "sents", "vertexSet"}]}   {"sentences": [{"text", "h", "t"}]}
  GET  /health    liveness and queue length       GET /model   name, relations, threshold, config

The model is loaded once. Texts that arrive within --batch-window-ms of each other share one model call
(up to --max-batch-texts); the model runs in a worker thread, so the server keeps answering meanwhile.
Bad input (malformed JSON, wrong types, a span outside its text, an empty text, binary data, a limit
exceeded) is a 4xx JSON error {"status", "field", "message", "errors"} naming the field.
"""


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hiere serve MODEL_DIR`` (the caller adds ``model_dir``)."""
    defaults = ServeSettings(model_dir="")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes, each with its own copy of the model (default 1)")
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda (default auto)")
    parser.add_argument("--max-request-bytes", type=int, default=defaults.max_request_bytes,
                        help=f"largest request body (default {defaults.max_request_bytes:,})")
    parser.add_argument("--max-texts", type=int, default=defaults.max_texts,
                        help=f"texts per /extract request (default {defaults.max_texts})")
    parser.add_argument("--max-chars", type=int, default=defaults.max_chars,
                        help=f"characters per text (default {defaults.max_chars:,})")
    parser.add_argument("--max-records", type=int, default=defaults.max_records,
                        help=f"documents or bag sentences per /predict request (default {defaults.max_records})")
    parser.add_argument("--batch-window-ms", type=float, default=defaults.batch_window_ms,
                        help="how long a text waits for others to share its model call "
                        f"(default {defaults.batch_window_ms:g}; 0: only texts already queued)")
    parser.add_argument("--max-batch-texts", type=int, default=defaults.max_batch_texts,
                        help=f"texts per model call (default {defaults.max_batch_texts})")
    parser.add_argument("--max-pending-texts", type=int, default=defaults.max_pending_texts,
                        help=f"queued texts before the server answers 503 busy (default {defaults.max_pending_texts})")
    parser.add_argument("--no-language-check", action="store_true",
                        help="do not reject text that does not look like English")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                        help="uvicorn's log level (default info)")


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    return ServeSettings(
        model_dir=str(args.model_dir), device=args.device, max_request_bytes=args.max_request_bytes,
        max_texts=args.max_texts, max_chars=args.max_chars, max_records=args.max_records,
        batch_window_ms=args.batch_window_ms, max_batch_texts=args.max_batch_texts,
        max_pending_texts=args.max_pending_texts, check_english=not args.no_language_check,
    )
