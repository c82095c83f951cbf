"""Training checkpoints, written atomically: ``checkpoint/last.pt`` in the model directory keeps the model,
optimizer, scheduler and RNG states for ``--resume`` (the model directory itself: :mod:`hiere.models.directory`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from hiere.io import write_bytes_atomic

CHECKPOINT = Path("checkpoint") / "last.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)
