"""Tasks tie data files, predictions and metrics together for the trainer, the API and the CLI.

Each task (``doc``: DocRED/PubTator documents; ``bag``: OpenNRE bags) implements :class:`Task`; code outside
``hiere.tasks`` asks the task instead of testing which task it is.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from hiere.data.relations import RelationMap
from hiere.errors import HiereConfigError

TASK_MODULES = {"doc": "hiere.tasks.doc", "bag": "hiere.tasks.bag"}


@runtime_checkable
class Task(Protocol):
    """What the trainer, :class:`hiere.Predictor` and ``hiere score`` need of a task."""

    name: str  # "doc" | "bag"
    primary_metric: str  # the dev metric that selects the best epoch by default
    unit: str  # "documents" | "bags", for messages
    evidence: bool  # predictions carry evidence sentence ids (and evaluation scores them); else attention
    ranked: bool  # decode keeps every (pair, relation) with its score, a ranking: a cut-off is the caller's
    level: str  # "document-level" | "bag-level", for messages
    request_field: str  # what a request or an input file holds: "documents" | "sentences"
    records_are_examples: bool  # one input record is one example (a document); bag sentences group into bags

    def read(self, path: str | Path, relations: Iterable[str] | None = None, require_labels: bool = False,
             **options: Any) -> list:
        """A data file -> validated examples; a bad record is one :class:`HiereInputError`."""

    def parse(self, records: Iterable[Any], relations: Iterable[str] | None = None, source: str = "<input>") -> list:
        """In-memory records (dicts of the file format, or examples) -> validated examples."""

    def relation_ids(self, examples: list) -> set[str]:
        """The relation ids the gold labels of ``examples`` use."""

    def decode(self, examples: list, rows: list[tuple[int, Any]], scores: torch.Tensor, relations: RelationMap,
               threshold: float, explanations: list[dict] | None = None, evidence_rule: Any = None,
               ) -> list[dict[str, Any]]:
        """Score rows -> prediction records (design.md, Predictions); ``rows`` are ``(example index, key)``."""

    def tune_threshold(self, examples: list, rows: list[tuple[int, Any]], scores: torch.Tensor,
                       relations: RelationMap) -> tuple[float, float]:
        """``(threshold, dev metric at it)`` chosen on dev examples."""

    def metrics(self, examples: list, records: list[dict[str, Any]], train: list | None = None,
                **options: Any) -> dict[str, Any]:
        """The metrics dict of ``records`` against the gold ``examples``."""

    def metrics_from_scores(self, examples: list, rows: list[tuple[int, Any]], scores: torch.Tensor,
                            relations: RelationMap, threshold: float, explanations: list[dict] | None = None,
                            evidence_rule: Any = None, train: list | None = None, **options: Any) -> dict[str, Any]:
        """:meth:`metrics` of the records :meth:`decode` would make of the same arguments, computed however is
        cheapest (bags: from the score matrix, without a record per cell)."""

    def metric_options(self, long_tail: str | None = None, plot: str | None = None) -> dict[str, Any]:
        """Keyword arguments of :meth:`metrics` from the user's options (a long-tail file, a PR-curve PNG)."""

    def metrics_train(self, train_examples: list) -> list | None:
        """The training examples :meth:`metrics` compares against (DocRED's Ign F1), or None."""

    def score_files(self, gold: str | Path, predictions: Sequence[str | Path], train: str | Path | None = None,
                    relations: str | Path | None = None, long_tail: str | Path | None = None,
                    plot: str | Path | None = None) -> dict[str, Any]:
        """``hiere score``: metrics of prediction files against a gold file, no model needed."""


def get_task(name: str) -> Task:
    if name not in TASK_MODULES:
        raise HiereConfigError(f"unknown task {name!r}; available: {sorted(TASK_MODULES)}")
    return importlib.import_module(TASK_MODULES[name]).TASK
