"""Pydantic models of every request and response of ``hiere serve`` (they are the OpenAPI schema at ``/docs``).

Request models are strict (``"5"`` is not an int) and forbid unknown keys, so a typo such as
``"treshold"`` is an error naming the key rather than an option silently ignored. The DocRED and OpenNRE
records of ``/predict`` accept extra keys, as their files carry more than hiere reads.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

STRICT = ConfigDict(strict=True, extra="forbid")


# ------------------------------------------------------------------------------------------- /extract


class EntitySpanIn(BaseModel):
    """A mention given by the caller: character span ``[start, end)`` of its text (replaces spaCy's NER)."""

    model_config = STRICT
    start: int = Field(ge=0, description="first character of the mention")
    end: int = Field(gt=0, description="one past its last character")
    type: str | None = Field(None, description="DocRED type (PER ORG LOC TIME NUM MISC) or a spaCy label")
    cluster: str | int | None = Field(None, description="mentions with the same id are one entity")


class TextIn(BaseModel):
    """One text to read, with optional title and entity spans."""

    model_config = STRICT
    text: str
    title: str | None = None
    entities: list[EntitySpanIn] | None = None


class ExtractRequest(BaseModel):
    """``text`` (one text) or ``texts`` (several: strings or ``{text, title?, entities?}``), and the options
    of ``hiere extract``."""

    model_config = STRICT
    text: str | None = Field(None, description="one text (or use texts)")
    entities: list[EntitySpanIn] | None = Field(None, description="entity spans of text (with text)")
    texts: list[TextIn] | None = Field(None, description="several texts: strings or {text, title?, entities?}")
    threshold: float | None = Field(
        None, description="minimum score of a triple. Bag models: default the model's tuned threshold (as "
        "hiere extract --threshold). Document models already apply their tuned threshold; a higher value "
        "drops more triples")
    top_k: int | None = Field(None, ge=1, description="keep the k best-scored triples of each text")
    window_tokens: int | None = Field(None, ge=0, description="document models: read longer documents in "
                                      "overlapping windows of this many tokens (default 1024; 0: never)")

    @field_validator("texts", mode="before")
    @classmethod
    def _strings_are_texts(cls, value: Any) -> Any:
        if isinstance(value, list):
            # a string is a text; so is anything else that is not an object (its error then names texts[i].text)
            return [item if isinstance(item, dict) else {"text": item} for item in value]
        return value


class Triple(BaseModel):
    """A fact found in a text: the fields of ``hiere extract``'s JSON lines."""

    head: str
    head_type: str
    relation: str
    relation_name: str
    tail: str
    tail_type: str
    score: float
    evidence: list[str] = Field(description="the texts of the sentences behind the fact")


class AttentionView(BaseModel):
    """A bag model's sentence attention for one fact: one row of weights per level of its relation."""

    levels: list[str] = Field(description="the model's names of its levels: HNRE the relation, then its ancestors; "
                              "HiCLRE sentence and cross-level bag attention; one level for CNN/PCNN+ATT")
    sentences: list[int] = Field(description="the document sentence behind each bag sentence, in bag order")
    weights: list[list[float]] = Field(description="weights[level][bag sentence]")


class Explanation(BaseModel):
    """What the page needs to show a fact: its entities and the sentences that support it."""

    head_entity: int | None = Field(description="index into document.entities")
    tail_entity: int | None
    evidence_sentences: list[int] = Field(description="indices into document.sentences of the evidence")
    attention: AttentionView | None = Field(None, description="bag models with attention")


class ExplainedTriple(Triple):
    explanation: Explanation


class Span(BaseModel):
    start: int
    end: int


class MentionView(BaseModel):
    start: int
    end: int
    sentence: int


class EntityView(BaseModel):
    id: int
    name: str
    type: str
    mentions: list[MentionView]


class DocumentView(BaseModel):
    """How hiere read the text: sentence and mention character spans, mentions grouped into entities."""

    sentences: list[Span]
    entities: list[EntityView]


class TextResult(BaseModel):
    title: str | None
    triples: list[ExplainedTriple]
    document: DocumentView


class ExtractResponse(BaseModel):
    model: str
    task: Literal["doc", "bag"]
    results: list[TextResult] = Field(description="one per text, in request order")


# ------------------------------------------------------------------------------------------- /predict


class RecordModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class DocredMention(RecordModel):
    name: str | None = None
    sent_id: int
    pos: list[int] = Field(description="token span [start, end) in its sentence")
    type: str


class DocredLabel(RecordModel):
    h: int
    t: int
    r: str
    evidence: list[int] | None = None


class DocredDocument(RecordModel):
    """A DocRED document (labels are not needed for prediction)."""

    title: str
    sents: list[list[str]]
    vertexSet: list[list[DocredMention]]  # noqa: N815 - DocRED's own key
    labels: list[DocredLabel] | None = None


class OpenNREEntity(RecordModel):
    id: str | int
    name: str | None = None
    pos: list[int] = Field(description="character span of text, or token span of token")


class OpenNRESentence(RecordModel):
    """One OpenNRE line: ``text`` with character spans or ``token`` with token spans; grouped into bags by
    (h.id, t.id)."""

    text: str | None = None
    token: list[str] | None = None
    h: OpenNREEntity
    t: OpenNREEntity
    relation: str | None = None


class PredictRequest(BaseModel):
    """``documents`` for a document-level model, ``sentences`` for a bag-level one."""

    model_config = STRICT
    documents: list[DocredDocument] | None = None
    sentences: list[OpenNRESentence] | None = None
    explain: bool = Field(True, description="add the model's explanation (attention, evidence, key pairs)")


class DocPrediction(BaseModel):
    """A DocRED submission record with its score and, from models that explain, their explanation."""

    model_config = ConfigDict(extra="allow")
    title: str
    h_idx: int
    t_idx: int
    r: str
    score: float


class BagPrediction(BaseModel):
    """One (entity pair, non-NA relation) score; bag models with attention add ``attention``."""

    model_config = ConfigDict(extra="allow")
    h: str
    t: str
    relation: str
    score: float


class PredictResponse(BaseModel):
    model: str
    task: Literal["doc", "bag"]
    predictions: list[DocPrediction] | list[BagPrediction]


# --------------------------------------------------------------------------------------- other routes


class Health(BaseModel):
    status: Literal["ok"]
    model: str
    task: Literal["doc", "bag"]
    pending_texts: int = Field(description="texts waiting for the model")
    batches: int = Field(description="model batches run since the server started")
    batched_texts: int = Field(description="texts read in those batches (batched_texts / batches: mean batch size)")
    uptime_seconds: float


class RelationInfo(BaseModel):
    id: str
    name: str


class Limits(BaseModel):
    max_request_bytes: int
    max_texts: int
    max_chars: int
    max_records: int
    batch_window_ms: float
    max_batch_texts: int


class ModelInfo(BaseModel):
    name: str
    task: Literal["doc", "bag"]
    model_dir: str
    device: str
    precision: str
    threshold: float = Field(description="tuned on dev data when the model was trained")
    relations: list[RelationInfo] = Field(description="the relation map, NA first")
    config: dict[str, Any] = Field(description="the resolved training config")
    limits: Limits


class Example(BaseModel):
    title: str
    text: str


class FieldError(BaseModel):
    field: str | None = Field(description="where in the request: 'texts[1].entities[0].end', 'body', ...")
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx (and the rare 5xx) answer: JSON, never a traceback."""

    status: int
    field: str | None = Field(description="the first offending field")
    message: str
    errors: list[FieldError] = Field(description="every problem found")
