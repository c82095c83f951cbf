"""The Python API: ``hiere.load(model_dir)`` -> :class:`Predictor` with ``predict``, ``evaluate``, ``extract``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from hiere.data.relations import RelationMap
from hiere.errors import HiereConfigError, HiereInputError
from hiere.models.base import HiereModel
from hiere.models.directory import load_model_dir
from hiere.tasks import get_task
from hiere.training.distributed import resolve_device
from hiere.training.inference import featurize_examples, predict_examples, resolve_precision, run_model


class Predictor:
    """A trained model with its vocabularies, relation map and threshold."""

    def __init__(self, model: HiereModel, config: dict[str, Any], threshold: float, model_dir: Path,
                 device: torch.device):
        self.model, self.config, self.threshold = model, config, threshold
        self.model_dir, self.device = model_dir, device
        self.task = get_task(model.task)
        self._text_pipeline = None

    @property
    def relations(self) -> RelationMap:
        return self.model.relations

    @property
    def batch_size(self) -> int:
        return int(self.config.get("trainer", {}).get("eval_batch_size", 8))

    @property
    def precision(self) -> str:
        """The model's ``trainer.precision`` as it runs on this device (see :func:`resolve_precision`); a model
        trained with fp16 on CUDA runs as ``auto`` elsewhere."""
        setting = str(self.config.get("trainer", {}).get("precision", "fp32"))
        if setting == "fp16" and self.device.type != "cuda":
            setting = "auto"
        return resolve_precision(self.device, setting)

    def read(self, path: str | Path, require_labels: bool = False) -> list:
        """Read a data file of this model's task, checking relations against the model's relation map."""
        return self.task.read(path, relations=self.relations.relations, require_labels=require_labels)

    def _examples(self, examples: Iterable[Any] | str | Path) -> list:
        if isinstance(examples, str | Path):
            return self.read(examples)
        return self.task.parse(list(examples), relations=self.relations.relations)

    def scores(self, examples: list, progress: bool = False) -> tuple[list, torch.Tensor, list | None]:
        features = featurize_examples(self.model, examples)
        return run_model(self.model, features, None, self.batch_size, self.device, self.precision, progress)

    def evidence_rule(self, top_k: int | None = None, min_score: float | None = None) -> Any:
        """The :class:`~hiere.evidence.EvidenceRule` of a document model: ``model.evidence_top_k`` /
        ``model.evidence_min_score`` of its config, overridden by the arguments (``top_k=0``: no limit)."""
        from hiere.evidence import model_rule

        return model_rule(self.model.config, top_k, min_score)

    def predict(self, examples: Iterable[Any] | str | Path, explain: bool = True, progress: bool = False,
                evidence_top_k: int | None = None, evidence_min_score: float | None = None,
                ) -> list[dict[str, Any]]:
        """Documents (DocRED dicts or :class:`Document`) or bags, or a file path -> prediction records.

        Document models attach ``evidence`` (sentence ids) to each fact: the best ``evidence_top_k``
        sentences (``0``: no limit) with score >= ``evidence_min_score`` (see :mod:`hiere.evidence`).
        """
        rule = None
        if self.task.evidence:
            rule = self.evidence_rule(evidence_top_k, evidence_min_score)
        elif evidence_top_k is not None or evidence_min_score is not None:
            raise HiereConfigError(f"evidence options are for document models; {self.model.name} explains "
                                   f"{self.task.unit} with attention")
        return predict_examples(self.model, self.task, self._examples(examples), self.threshold, self.batch_size,
                                self.device, self.precision, explain, rule, progress)

    def evaluate(self, path: str | Path | list, train: str | Path | list | None = None, progress: bool = False,
                 **metric_options: Any) -> dict[str, Any]:
        """Metrics on a labelled file (or already read examples), with this model's tuned threshold
        (``train`` enables Ign F1 for document models)."""
        examples = self.read(path, require_labels=True) if isinstance(path, str | Path) else path
        if not examples:
            source = str(path) if isinstance(path, str | Path) else None
            raise HiereInputError(source, None, None, f"no {self.task.unit} to evaluate")
        if isinstance(train, str | Path):
            train = self.task.read(train, require_labels=True)
        # with evidence (document models), so the metrics include Evi P / R / F1
        records = self.predict(examples, explain=self.task.evidence, progress=progress)
        return self.task.metrics(examples, records, train=train, **metric_options)

    def extract(self, text: str, **options: Any) -> list[dict[str, Any]]:
        """Raw English text -> relation triples (see :mod:`hiere.extract`)."""
        from hiere.extract import extract_text

        return extract_text(self, text, **options)


def load(model_dir: str | Path, device: str = "auto") -> Predictor:
    """Load a model directory written by ``hiere train``; nothing else is needed."""
    resolved = resolve_device(device, option="device")
    model, config, threshold = load_model_dir(model_dir, resolved)
    return Predictor(model, config, threshold, Path(model_dir), resolved)
