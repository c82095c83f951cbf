"""Requests -> calls of the one prediction API (:class:`hiere.api.Predictor` and :func:`hiere.extract.extract`).

Texts are validated here before they are queued (cheap checks: binary data, empty text, limits, entity
spans); spaCy and the model run in the service's single worker thread, a batch of texts from concurrent
requests at a time. Each text of a batch is parsed once; :func:`hiere.extract.extract` then reads the whole
batch, so a document-level model sees every text of the batch in one ``predict`` call, exactly as
``hiere extract`` does with a file. The page's extra views (which characters each mention covers, which
sentences support a fact, a bag model's attention) come from the same parse and the same prediction
records: nothing is recomputed.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hiere.api import Predictor
from hiere.data.bags import Bag
from hiere.errors import HiereInputError
from hiere.extract import DEFAULT_WINDOW_TOKENS, extract, task_name
from hiere.serve import schemas
from hiere.serve.batching import MicroBatcher
from hiere.serve.settings import ServeSettings
from hiere.tasks import get_task
from hiere.text.pipeline import EntitySpan, ParsedText, TextPipeline, check_text, entity_names, parse_entities

EXAMPLE_COUNT = 4  # bundled examples offered by the page: the first documents of the Re-DocRED dev sample


class RequestProblem(Exception):
    """Bad input in a request: an HTTP status and ``(field, message)`` pairs (the first is the headline)."""

    def __init__(self, status: int, errors: Sequence[tuple[str | None, str]]):
        self.status, self.errors = status, list(errors)
        super().__init__("; ".join(f"{field}: {message}" if field else message for field, message in self.errors))

    @classmethod
    def one(cls, status: int, field: str | None, message: str) -> RequestProblem:
        return cls(status, [(field, message)])


@dataclass(frozen=True)
class TextJob:
    """One text of an /extract request, checked and ready for the worker."""

    text: str
    entities: tuple[EntitySpan, ...] | None
    title: str | None
    prefix: str  # where the text sits in the request: "" (``text``) or "texts[2]."
    threshold: float | None
    top_k: int | None
    window_tokens: int


class ParsedTexts:
    """A text pipeline that hands :func:`hiere.extract.extract` texts parsed already, by title."""

    def __init__(self, parsed: Mapping[str, ParsedText]):
        self.parsed = parsed

    def parse(self, text: str, entities: Any = None, title: str = "text", source: str | None = None,
              record: str | None = None) -> ParsedText:
        return self.parsed[title]


class RecordingPredictor:
    """The predictor itself, keeping what each ``predict`` call received and returned (for explanations)."""

    def __init__(self, predictor: Predictor):
        self._predictor = predictor
        self.calls: list[tuple[list, list[dict[str, Any]]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._predictor, name)

    def predict(self, examples: Any, **options: Any) -> list[dict[str, Any]]:
        examples = list(examples)
        records = self._predictor.predict(examples, **options)
        self.calls.append((examples, records))
        return records

    def take(self) -> list[tuple[list, list[dict[str, Any]]]]:
        calls, self.calls = self.calls, []
        return calls


class ModelService:
    """One loaded model, its text pipeline, its worker thread and the micro-batcher in front of them."""

    def __init__(self, predictor: Predictor, settings: ServeSettings):
        self.predictor, self.settings = predictor, settings
        self.task = task_name(predictor)
        self.task_spec = get_task(self.task)
        self.name = str(predictor.config.get("model", {}).get("name", "model"))
        self.pipeline = TextPipeline(check_english=settings.check_english)
        predictor._text_pipeline = self.pipeline  # model.extract() in this process shares the loaded spaCy
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hiere-model")
        self.batcher: MicroBatcher[TextJob, schemas.TextResult] = MicroBatcher(
            self.run_text_jobs, self.executor, window=settings.batch_window_ms / 1000,
            max_batch=settings.max_batch_texts, max_pending=settings.max_pending_texts,
        )
        self.started = time.monotonic()

    def warm_up(self) -> None:
        """Load spaCy now rather than on the first request."""
        self.pipeline.parse("Marie Curie was born in Warsaw.")

    # ------------------------------------------------------------------------------------ /extract

    def text_jobs(self, request: schemas.ExtractRequest) -> list[TextJob]:
        """Check an /extract request (limits, binary data, empty texts, entity spans) -> one job per text."""
        if request.text is None and request.texts is None:
            raise RequestProblem.one(422, "text", "missing: give text (one text) or texts (a list of texts)")
        if request.text is not None and request.texts is not None:
            raise RequestProblem.one(422, "texts", "give either text or texts, not both")
        if request.texts is not None and request.entities is not None:
            raise RequestProblem.one(422, "entities", "goes with text; with texts give each text its own entities")
        if request.threshold is not None and request.threshold != request.threshold:
            raise RequestProblem.one(422, "threshold", "must be a number, not NaN")
        if request.text is not None:
            items = [("", schemas.TextIn(text=request.text, entities=request.entities))]
        else:
            items = [(f"texts[{index}].", item) for index, item in enumerate(request.texts or [])]
            if not items:
                raise RequestProblem.one(422, "texts", "empty list: give at least one text")
            if len(items) > self.settings.max_texts:
                raise RequestProblem.one(413, "texts", f"{len(items)} texts; the limit is "
                                         f"{self.settings.max_texts} per request (hiere serve --max-texts)")
        window = DEFAULT_WINDOW_TOKENS if request.window_tokens is None else request.window_tokens
        jobs, errors = [], []
        for prefix, item in items:
            try:
                jobs.append(TextJob(self._checked_text(item, prefix), self._checked_entities(item, prefix),
                                    item.title, prefix, request.threshold, request.top_k, window))
            except RequestProblem as problem:
                if problem.status == 413:
                    raise
                errors.extend(problem.errors)
        if errors:
            raise RequestProblem(422, errors)
        return jobs

    def _checked_text(self, item: schemas.TextIn, prefix: str) -> str:
        try:
            text = check_text(item.text)
        except HiereInputError as error:
            raise RequestProblem.one(422, f"{prefix}text", error.message) from None
        if not text.strip():
            raise RequestProblem.one(422, f"{prefix}text", "the text is empty")
        if len(text) > self.settings.max_chars:
            raise RequestProblem.one(413, f"{prefix}text", f"{len(text):,} characters; the limit is "
                                     f"{self.settings.max_chars:,} per text (hiere serve --max-chars)")
        return text

    def _checked_entities(self, item: schemas.TextIn, prefix: str) -> tuple[EntitySpan, ...] | None:
        if item.entities is None:
            return None
        try:
            spans = parse_entities([entity.model_dump() for entity in item.entities])
        except HiereInputError as error:
            raise RequestProblem.one(422, text_field(error, prefix), error.message) from None
        for index, span in enumerate(spans):
            if span.end > len(item.text):
                message = f"span [{span.start}, {span.end}) is outside the text ({len(item.text)} characters)"
                raise RequestProblem.one(422, f"{prefix}entities[{index}].end", message)
        return tuple(spans)

    def run_text_jobs(self, jobs: list[TextJob]) -> list[schemas.TextResult | RequestProblem]:
        """The worker's batch: parse every text once, then one :func:`extract` pass per option set."""
        results: list[Any] = [None] * len(jobs)
        parsed: dict[int, ParsedText] = {}
        for index, job in enumerate(jobs):
            try:
                parsed[index] = self.pipeline.parse(job.text, job.entities, title=job.title or "text")
            except HiereInputError as error:
                results[index] = RequestProblem.one(422, text_field(error, job.prefix), error.message)
        groups: dict[tuple[float | None, int], list[int]] = defaultdict(list)
        for index in parsed:
            # a ranked task's extraction applies the threshold itself; other tasks' triples are filtered after
            threshold = jobs[index].threshold if self.task_spec.ranked else None
            groups[threshold, jobs[index].window_tokens].append(index)
        for (threshold, window_tokens), indices in groups.items():
            try:
                self._extract_group(jobs, parsed, indices, threshold, window_tokens, results)
            except HiereInputError:
                if len(indices) == 1:
                    raise
                for index in indices:  # find the text the model refused; the others still get answers
                    try:
                        self._extract_group(jobs, parsed, [index], threshold, window_tokens, results)
                    except HiereInputError as error:
                        results[index] = RequestProblem.one(422, f"{jobs[index].prefix}text", error.message)
        return results

    def _extract_group(self, jobs: list[TextJob], parsed: dict[int, ParsedText], indices: list[int],
                       threshold: float | None, window_tokens: int, results: list[Any]) -> None:
        recorder = RecordingPredictor(self.predictor)
        by_title = {f"job {index}": parsed[index] for index in indices}
        items = [{"text": parsed[index].text, "title": f"job {index}"} for index in indices]
        stream = extract(recorder, items, pipeline=ParsedTexts(by_title), threshold=threshold,
                         batch_size=len(items), window_tokens=window_tokens)
        for index, triples in zip(indices, stream, strict=True):
            results[index] = self._text_result(jobs[index], parsed[index], triples, recorder.take())

    def _text_result(self, job: TextJob, parsed: ParsedText, triples: list[dict[str, Any]],
                     calls: list[tuple[list, list[dict[str, Any]]]]) -> schemas.TextResult:
        if not self.task_spec.ranked and job.threshold is not None:
            triples = [triple for triple in triples if triple["score"] >= job.threshold]
        if job.top_k is not None:
            triples = triples[: job.top_k]
        document = parsed.document
        names = entity_names(document)
        entity_of: dict[tuple[str, str], int] = {}
        for index, name in enumerate(names):
            entity_of.setdefault((name, document.entity_type(index)), index)
        sentences_of: dict[str, list[int]] = defaultdict(list)
        for index, text in enumerate(parsed.sentence_texts):
            sentences_of[text].append(index)
        explained = []
        for triple in triples:
            evidence = sorted({i for text in triple["evidence"] for i in sentences_of.get(text, [])})
            explanation = schemas.Explanation(
                head_entity=entity_of.get((triple["head"], triple["head_type"])),
                tail_entity=entity_of.get((triple["tail"], triple["tail_type"])),
                evidence_sentences=evidence,
                attention=None if self.task_spec.evidence else bag_attention(triple, calls, document.sents),
            )
            explained.append(schemas.ExplainedTriple(**triple, explanation=explanation))
        return schemas.TextResult(title=job.title, triples=explained, document=document_view(parsed, names))

    # ------------------------------------------------------------------------------------ /predict

    def check_predict(self, request: schemas.PredictRequest) -> tuple[str, list]:
        """``(field, records)`` of a /predict request, checked against the model's task and the limits."""
        wanted = self.task_spec.request_field
        other = next(field for field in ("documents", "sentences") if field != wanted)
        records = getattr(request, wanted)
        if getattr(request, other) is not None:
            raise RequestProblem.one(422, other, f"{self.name} is a {self.task_spec.level} model: send {wanted}")
        if records is None:
            raise RequestProblem.one(422, wanted, f"missing: {self.name} reads {wanted}")
        if not records:
            raise RequestProblem.one(422, wanted, "empty list")
        if len(records) > self.settings.max_records:
            raise RequestProblem.one(413, wanted, f"{len(records)} records; the limit is "
                                     f"{self.settings.max_records} per request (hiere serve --max-records)")
        return wanted, records

    def predict(self, request: schemas.PredictRequest) -> schemas.PredictResponse:
        """Documents or bag sentences -> the records of ``hiere predict`` (runs in the worker thread)."""
        wanted, records = self.check_predict(request)
        raw = [record.model_dump(exclude_none=True) for record in records]
        relations = self.predictor.relations.relations
        try:
            examples = self.task_spec.parse(raw, relations=relations, source="request")
        except HiereInputError as error:
            raise RequestProblem.one(422, record_field(error, wanted), error.message) from None
        try:
            predictions = self.predictor.predict(examples, explain=request.explain)
        except HiereInputError as error:
            # an example that gathers several request records (a bag of sentences) is named by the whole list
            field = record_field(error, wanted) if self.task_spec.records_are_examples else wanted
            raise RequestProblem.one(422, field, error.message) from None
        return schemas.PredictResponse(model=self.name, task=self.task, predictions=predictions)

    # ------------------------------------------------------------------------------------ the rest

    def model_info(self) -> schemas.ModelInfo:
        relations = self.predictor.relations
        settings = self.settings
        return schemas.ModelInfo(
            name=self.name, task=self.task, model_dir=str(self.predictor.model_dir),
            device=str(self.predictor.device), precision=self.predictor.precision,
            threshold=float(self.predictor.threshold),
            relations=[schemas.RelationInfo(id=r, name=relations.name(r)) for r in relations.relations],
            config=json.loads(json.dumps(self.predictor.config, default=str)),
            limits=schemas.Limits(
                max_request_bytes=settings.max_request_bytes, max_texts=settings.max_texts,
                max_chars=settings.max_chars, max_records=settings.max_records,
                batch_window_ms=settings.batch_window_ms, max_batch_texts=settings.max_batch_texts,
            ),
        )

    def health(self) -> schemas.Health:
        return schemas.Health(status="ok", model=self.name, task=self.task, pending_texts=self.batcher.pending,
                              batches=self.batcher.batches, batched_texts=self.batcher.batched_jobs,
                              uptime_seconds=round(time.monotonic() - self.started, 3))


def text_field(error: HiereInputError, prefix: str) -> str:
    """The request field of a text pipeline error: ``texts[2].entities[0].end``, ``text``, ..."""
    match = re.fullmatch(r"entity (\d+)", error.record or "")
    if match:
        field = f"{prefix}entities[{match.group(1)}]"
        return f"{field}.{error.field}" if error.field else field
    return f"{prefix}{error.field or 'text'}"


def record_field(error: HiereInputError, wanted: str) -> str:
    """The request field of a DocRED / OpenNRE reader error: ``documents[3].vertexSet[1][0].pos``, ..."""
    record = error.record or ""
    match = re.match(r"document (\d+)", record) or re.match(r"record (\d+)", record)
    if not match:
        return wanted
    index = int(match.group(1)) - (1 if wanted == "sentences" else 0)  # bag readers count records from 1
    return f"{wanted}[{index}].{error.field}" if error.field else f"{wanted}[{index}]"


def document_view(parsed: ParsedText, names: list[str]) -> schemas.DocumentView:
    document = parsed.document
    entities = []
    for index, mentions in enumerate(document.entities):
        views = []
        for mention in mentions:
            start, end = parsed.mention_chars(mention)
            views.append(schemas.MentionView(start=start, end=end, sentence=mention.sent_id))
        views.sort(key=lambda view: view.start)
        entities.append(schemas.EntityView(id=index, name=names[index], type=document.entity_type(index),
                                           mentions=views))
    sentences = [schemas.Span(start=start, end=end) for start, end in parsed.sentence_spans]
    return schemas.DocumentView(sentences=sentences, entities=entities)


def bag_attention(triple: Mapping[str, Any], calls: list[tuple[list, list[dict[str, Any]]]],
                  sentences: list[list[str]]) -> schemas.AttentionView | None:
    """The attention record behind a bag triple (its pair, relation and score), with the document sentence of
    each bag sentence; ``None`` for models without attention."""
    for bags, records in calls:
        by_pair = {(bag.head_id, bag.tail_id): bag for bag in bags if isinstance(bag, Bag)}
        for record in records:
            bag = by_pair.get((record.get("h"), record.get("t")))
            attention = record.get("attention")
            if (bag is None or not isinstance(attention, Mapping) or record.get("relation") != triple["relation"]
                    or bag.head_name != triple["head"] or bag.tail_name != triple["tail"]
                    or round(float(record["score"]), 4) != triple["score"]):
                continue
            return schemas.AttentionView(levels=[str(level) for level in attention.get("levels", [])],
                                         sentences=bag_sentence_ids(bag, sentences),
                                         weights=attention.get("weights", []))
    return None


def bag_sentence_ids(bag: Bag, sentences: list[list[str]]) -> list[int]:
    """The document sentence of each bag sentence (bags built from a text hold its sentences in order)."""
    ids, start = [], 0
    for sentence in bag.sentences:
        found = next((i for i in range(start, len(sentences)) if tuple(sentences[i]) == tuple(sentence.tokens)), -1)
        ids.append(found)
        start = found + 1 if found >= 0 else start
    return ids


def bundled_examples(count: int = EXAMPLE_COUNT) -> list[schemas.Example]:
    """Texts for the page: the first documents of the bundled Re-DocRED dev sample, as plain text."""
    from hiere.demo import sample_path

    documents = json.loads(sample_path("sample_dev.json").read_text(encoding="utf-8"))[:count]
    return [schemas.Example(title=document["title"], text=" ".join(" ".join(s) for s in document["sents"]))
            for document in documents]
