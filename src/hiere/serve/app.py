"""The FastAPI application of ``hiere serve``: routes, the request-body guard and the error format.

``create_app(ServeSettings(model_dir=...))`` loads the model once and returns the app; uvicorn serves it.
Every error is ``ErrorResponse`` JSON (``{"status", "field", "message", "errors"}``): 400 for a body that is
not JSON (or not UTF-8 text), 413 for a limit, 415 for a body that is not declared JSON, 422 for a field
of the wrong type or value, 503 while too many texts wait for the model. A bug is a 500 with a one-line
message; its traceback goes to the server log only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hiere.api import Predictor, load
from hiere.serve import schemas
from hiere.serve.batching import QueueFull
from hiere.serve.service import ModelService, RequestProblem, bundled_examples
from hiere.serve.settings import ServeSettings

LOGGER = logging.getLogger("hiere.serve")
STATIC = resources.files("hiere.serve") / "static"
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorResponse, "description": description}
    for code, description in ((400, "not JSON"), (413, "a limit exceeded"), (415, "not declared JSON"),
                              (422, "a field of the wrong type or value"), (503, "busy: too many texts queued"))
}
UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})  # pydantic's union branch names


def error_response(status: int, errors: list[tuple[str | None, str]], headers: dict | None = None) -> JSONResponse:
    field, message = errors[0]
    body = schemas.ErrorResponse(status=status, field=field, message=message,
                                 errors=[schemas.FieldError(field=f, message=m) for f, m in errors])
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def field_path(loc: tuple | list) -> str:
    """pydantic's ``("body", "texts", 0, "entities", 1, "end")`` -> ``texts[0].entities[1].end``."""
    path = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part) not in UNION_TAGS:
            path += f".{part}" if path else str(part)
    return path or "body"


def validation_errors(error: RequestValidationError) -> tuple[int, list[tuple[str | None, str]]]:
    errors: list[tuple[str | None, str]] = []
    for item in error.errors():
        kind, loc = item.get("type", ""), tuple(item.get("loc", ()))
        if kind == "json_invalid":
            position = loc[1] if len(loc) > 1 else "?"
            reason = (item.get("ctx") or {}).get("error", "JSON decode error")
            return 400, [("body", f"malformed JSON at character {position}: {reason}")]
        field = field_path(loc)
        if kind == "missing":
            message = "missing: send a JSON object" if field == "body" else "missing"
        elif kind == "extra_forbidden":
            message = "unknown field (see /docs for the fields of this request)"
        else:
            message = str(item.get("msg", "invalid value"))
        known = next((i for i, (f, _) in enumerate(errors) if f == field), None)
        if known is None:
            errors.append((field, message))
        elif message not in errors[known][1]:  # a union: "a valid string or a valid integer"
            errors[known] = (field, f"{errors[known][1]} or {message.removeprefix('Input should be ')}")
    return 422, errors or [("body", "invalid request")]


class BodyGuard:
    """ASGI middleware in front of the routes: a request body must be declared JSON, at most ``max_bytes``
    long and UTF-8 text; it is read here once (never more than ``max_bytes + one chunk``) and replayed."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        content_type = headers.get("content-type", "")
        media = content_type.split(";")[0].strip().lower()
        if media and media != "application/json" and not media.endswith("+json"):
            await self._refuse(scope, receive, send, 415, f"send JSON with 'Content-Type: application/json' "
                               f"(got {content_type!r})")
            return
        limit = f"the limit is {self.max_bytes:,} bytes (hiere serve --max-request-bytes)"
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, 413, f"request body of {int(declared):,} bytes; {limit}")
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, 413, f"request body over {self.max_bytes:,} bytes; {limit}")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            await self._refuse(scope, receive, send, 400, f"not UTF-8 text at byte {error.start}: binary data, "
                               "not JSON")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        await error_response(status, [("body", message)], {"Connection": "close"})(scope, receive, send)


def create_app(settings: ServeSettings, predictor: Predictor | None = None) -> FastAPI:
    """The app for one model; ``predictor`` (else loaded from ``settings.model_dir``) is loaded once, here."""
    predictor = predictor if predictor is not None else load(settings.model_dir, settings.device)
    service = ModelService(predictor, settings)
    examples = bundled_examples()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(service.executor, service.warm_up)
        yield
        await service.batcher.stop()

    app = FastAPI(
        title="hiere serve",
        summary=f"{service.name} ({service.task_spec.level} relation extraction)",
        description="Raw text -> relation triples with their evidence (`POST /extract`), DocRED documents or "
        "OpenNRE sentences -> prediction records (`POST /predict`). The page at `/` shows the same results.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(BodyGuard, max_bytes=settings.max_request_bytes)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        status, errors = validation_errors(error)
        return error_response(status, errors)

    @app.exception_handler(RequestProblem)
    async def on_problem(_: Request, problem: RequestProblem) -> JSONResponse:
        return error_response(problem.status, problem.errors)

    @app.exception_handler(QueueFull)
    async def on_busy(_: Request, busy: QueueFull) -> JSONResponse:
        return error_response(503, [(None, str(busy))], {"Retry-After": "1"})

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = str(error.detail)
        if error.status_code == 404:
            message = f"no such page or endpoint: {request.url.path} (see /docs)"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        return error_response(error.status_code, [(None, message)], getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def on_bug(request: Request, error: Exception) -> JSONResponse:
        LOGGER.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, [(None, f"internal error ({type(error).__name__}); see the server log")])

    @app.post("/extract", response_model=schemas.ExtractResponse, responses=ERRORS,
              summary="Raw text -> triples (as hiere extract)")
    async def extract_texts(request: schemas.ExtractRequest) -> schemas.ExtractResponse:
        """Read one text (`text`) or several (`texts`); each result holds the triples of `hiere extract`
        (head, relation, tail, score, evidence sentences), how the text was read (sentence and mention
        character spans, mentions grouped into entities) and, per triple, its explanation."""
        outcomes = await service.batcher.submit_many(service.text_jobs(request))
        problems = [outcome for outcome in outcomes if isinstance(outcome, RequestProblem)]
        if problems:
            raise RequestProblem(422, [error for problem in problems for error in problem.errors])
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return schemas.ExtractResponse(model=service.name, task=service.task, results=outcomes)

    @app.post("/predict", response_model=schemas.PredictResponse, responses=ERRORS,
              summary="DocRED documents or OpenNRE sentences -> prediction records (as hiere predict)")
    async def predict(request: schemas.PredictRequest) -> schemas.PredictResponse:
        """Document-level models take `documents` (DocRED) and answer DocRED submission records
        `{title, h_idx, t_idx, r, score}`; bag-level models take `sentences` (OpenNRE lines, grouped into bags
        by entity ids) and answer `{h, t, relation, score}` for every pair and non-NA relation. With
        `explain`, records carry the model's explanation (evidence sentences, key mention pairs, attention)."""
        service.check_predict(request)
        return await asyncio.get_running_loop().run_in_executor(service.executor, service.predict, request)

    @app.get("/health", response_model=schemas.Health, summary="Liveness and queue length")
    async def health() -> schemas.Health:
        return service.health()

    @app.get("/model", response_model=schemas.ModelInfo, summary="The model: name, relations, threshold, config")
    async def model_info() -> schemas.ModelInfo:
        return service.model_info()

    @app.get("/examples", response_model=list[schemas.Example], summary="Texts bundled with hiere, for the page")
    async def bundled() -> list[schemas.Example]:
        return examples

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``hiere serve --workers N``: each worker process reads the settings from the environment."""
    return create_app(ServeSettings.from_env())
