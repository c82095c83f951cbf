"""The one inference loop: examples -> (rows, scores, explanations), shared by the trainer and the API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from tqdm.auto import tqdm

from hiere.models.base import HiereModel


def move_to_device(value: Any, device: torch.device) -> Any:
    """Move every tensor inside dicts/lists/tuples to ``device``; leave other values as they are."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {key: move_to_device(item, device) for key, item in value.items()}
    if isinstance(value, list) and value and any(isinstance(item, torch.Tensor | dict | list) for item in value):
        return [move_to_device(item, device) for item in value]
    return value


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA, fp16 on CUDA only; fp32 is a no-op."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("trainer.precision=fp16 needs CUDA; use bf16 on CPU")
        return torch.autocast("cuda", dtype=torch.float16)
    raise ValueError(f"trainer.precision must be fp32, bf16 or fp16, got {precision!r}")


def batches(indices: list[int], batch_size: int) -> Iterator[list[int]]:
    for start in range(0, len(indices), batch_size):
        yield indices[start : start + batch_size]


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


@torch.no_grad()
def run_model(
    model: HiereModel,
    features: list[dict[str, Any]],
    indices: list[int] | None,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    progress: bool = False,
    description: str = "predict",
) -> tuple[list[tuple[int, Any]], torch.Tensor, list[dict] | None]:
    """Run ``model`` in eval mode on ``features[indices]``.

    Returns ``rows`` — ``(example_index, key)`` per score row, key ``(h, t)`` for document models and
    ``None`` for bag models — the stacked ``scores`` (n_rows, n_relations) on CPU, and the models'
    explanations (or None).
    """
    model.eval()
    indices = length_sorted(features, list(range(len(features))) if indices is None else indices)
    rows: list[tuple[int, Any]] = []
    score_parts: list[torch.Tensor] = []
    explanations: list[dict] = []
    has_explanations = True
    chunks = list(batches(indices, batch_size))
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
            explanations.extend(output["explanations"])
    n_relations = len(model.relations)
    all_scores = torch.cat(score_parts) if score_parts else torch.zeros(0, n_relations)
    return rows, all_scores, (explanations if has_explanations and score_parts else None)
