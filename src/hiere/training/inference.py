"""The one inference loop: examples -> (rows, scores, explanations), shared by the trainer and the API."""

from __future__ import annotations

import bisect
import contextlib
import itertools
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from hiere.config import PRECISIONS
from hiere.errors import HiereConfigError, HiereInputError
from hiere.models.base import HiereModel
from hiere.rows import LazyRows

BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def move_to_device(value: Any, device: torch.device) -> Any:
    """Move every tensor inside dicts/lists/tuples to ``device``; leave other values as they are."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {key: move_to_device(item, device) for key, item in value.items()}
    if isinstance(value, list) and value and any(isinstance(item, torch.Tensor | dict | list) for item in value):
        return [move_to_device(item, device) for item in value]
    return value


def cpu_flags(path: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The CPU feature flags Linux reports in ``/proc/cpuinfo`` (None where that file is missing or has none)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return set(value.split())
    return None


def has_bf16_units(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA where ``torch.cuda.is_bf16_supported()`` (without
    emulation), a CPU with AVX512-BF16 or AMX (``avx512_bf16`` / ``amx_bf16`` flags). Unknown: False."""
    if device.type == "cuda":
        with torch.cuda.device(device):
            try:
                return torch.cuda.is_bf16_supported(including_emulation=False)
            except TypeError:  # torch < 2.3 has no including_emulation
                return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool((cpu_flags() or set()) & BF16_CPU_FLAGS)
    return False


def resolve_precision(device: torch.device, precision: str) -> str:
    """``trainer.precision`` -> what runs on ``device``: ``fp32``, ``bf16`` or ``fp16``.

    ``auto`` is bf16 autocast where :func:`has_bf16_units`, fp32 elsewhere. An explicit ``bf16`` on a device
    without bf16 units runs, with a warning that it is emulated (many times slower than fp32); ``fp16``
    needs CUDA.
    """
    if precision not in PRECISIONS:
        raise HiereConfigError(f"trainer.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise HiereConfigError("trainer.precision=fp16 needs CUDA; use auto, bf16 or fp32 on CPU")
    if precision == "auto":
        return "bf16" if has_bf16_units(device) else "fp32"
    if precision == "bf16" and not has_bf16_units(device):
        _warn_emulated_bf16(device)
    return precision


def _warn_emulated_bf16(device: torch.device) -> None:
    # one source line, so Python's default warning filter shows it once per process
    warnings.warn(f"trainer.precision=bf16 on {device}, which has no bf16 units: bf16 is emulated and many "
                  "times slower than fp32 (precision auto picks fp32 here)", RuntimeWarning, stacklevel=1)


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA, fp16 on CUDA only; fp32 is a no-op; ``auto`` as :func:`resolve_precision`."""
    if precision == "auto":
        precision = resolve_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        if device.type != "cuda":
            raise HiereConfigError("trainer.precision=fp16 needs CUDA; use auto, bf16 or fp32 on CPU")
        return torch.autocast("cuda", dtype=torch.float16)
    raise HiereConfigError(f"trainer.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def batches(indices: list[int], batch_size: int, sizes: Sequence[int] | None = None,
            budget: int | None = None) -> Iterator[list[int]]:
    """``indices`` in order, ``batch_size`` at a time; with ``budget``, a batch also closes before its summed
    ``sizes`` would pass it (an example larger than the budget is a batch of its own)."""
    batch: list[int] = []
    total = 0
    for index in indices:
        size = sizes[index] if sizes is not None and budget else 0
        if batch and (len(batch) == batch_size or (budget and total + size > budget)):
            yield batch
            batch, total = [], 0
        batch.append(index)
        total += size
    if batch:
        yield batch


def feature_size(feature: dict[str, Any]) -> int:
    """Input length of one featurized example: the tokens of a document or sentence, summed over a bag's
    sentences (what a batch's padding and cost grow with)."""
    for key in ("word_ids", "input_ids", "token_ids"):
        if key in feature:
            return len(feature[key])
    if "sentences" in feature:
        return sum(feature_size(sentence) for sentence in feature["sentences"])
    return 0


def length_sorted(features: list[dict[str, Any]], indices: list[int]) -> list[int]:
    """Indices ordered by input length (less padding per batch); the order of results does not change."""
    return sorted(indices, key=lambda index: feature_size(features[index]))


def featurize_examples(model: HiereModel, examples: list, source: str | None = None) -> list[dict[str, Any]]:
    """``model.featurize`` of each example; an example the model cannot read is one :class:`HiereInputError`."""
    features = []
    for index, example in enumerate(examples):
        try:
            features.append(model.featurize(example))
        except ValueError as error:
            raise HiereInputError(source, f"record {index}", None, str(error)) from None
    return features


def predict_examples(model: HiereModel, task: Any, examples: list, threshold: float, batch_size: int,
                     device: torch.device, precision: str, explain: bool = True, evidence_rule: Any = None,
                     progress: bool = False) -> list[dict[str, Any]]:
    """Examples -> prediction records (the task's form), the path of ``hiere predict`` and of test scoring."""
    features = featurize_examples(model, examples)
    rows, scores, explanations = run_model(model, features, None, batch_size, device, precision, progress)
    return task.decode(examples, rows, scores, model.relations, threshold, explanations if explain else None,
                       evidence_rule=evidence_rule)


@torch.inference_mode()
def run_model(
    model: HiereModel,
    features: list[dict[str, Any]],
    indices: list[int] | None,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",  # fp32 | bf16 | fp16 | auto (see resolve_precision)
    progress: bool = False,
    description: str = "predict",
) -> tuple[list[tuple[int, Any]], torch.Tensor, Sequence[dict | None] | None]:
    """Run ``model`` in eval mode on ``features[indices]``.

    Returns ``rows`` — ``(example_index, key)`` per score row, key ``(h, t)`` for document models and
    ``None`` for bag models — the stacked ``scores`` (n_rows, n_relations) on CPU, and the models'
    explanations, one per row (a :class:`ChainedRows` of the batches' own sequences; or None).
    """
    model.eval()
    if precision == "auto":
        precision = resolve_precision(device, precision)
    indices = length_sorted(features, list(range(len(features))) if indices is None else indices)
    rows: list[tuple[int, Any]] = []
    score_parts: list[torch.Tensor] = []
    explanation_parts: list[Sequence[dict | None]] = []
    has_explanations = True
    # a model may bound a prediction batch's input size too (ATLOP/KMGRE: the subwords of its documents, whose
    # mention attention rows and entity pairs grow with them), so long documents are not read 8 at a time
    budget = model.predict_batch_tokens
    sizes = [feature_size(feature) for feature in features] if budget else None
    chunks = list(batches(indices, batch_size, sizes, budget))
    for chunk in tqdm(chunks, desc=description, disable=not progress, leave=False, unit="batch"):
        batch = move_to_device(model.collate([features[i] for i in chunk]), device)
        with autocast_context(device, precision):
            output = model(batch)
        scores = output["scores"].float().cpu()
        if "pairs" in batch:
            rows.extend((chunk[position], (int(h), int(t))) for position, h, t in batch["pairs"])
        else:
            rows.extend((index, None) for index in chunk)
        score_parts.append(scores)
        if output.get("explanations") is None:
            has_explanations = False
        else:
            explanation_parts.append(output["explanations"])
    n_relations = len(model.relations)
    all_scores = torch.cat(score_parts) if score_parts else torch.zeros(0, n_relations)
    explanations = ChainedRows(explanation_parts) if has_explanations and score_parts else None
    return rows, all_scores, explanations


class ChainedRows(LazyRows):
    """Sequences of rows (the batches' explanations) read as one, without copying them into a list: a lazy
    part (:class:`hiere.evidence.SentenceScoreRows`) stays lazy."""

    def __init__(self, parts: Sequence[Sequence[Any]]):
        self.parts = list(parts)
        self.ends = list(itertools.accumulate(len(part) for part in self.parts))

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def row(self, row: int) -> Any:
        part = bisect.bisect_right(self.ends, row)
        return self.parts[part][row - (self.ends[part - 1] if part else 0)]
