"""Padding of id lists into batch tensors (used by encoders and models alike)."""

from __future__ import annotations

import torch


def pad_sequences(sequences: list[list[int]], value: int = 0, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """``[[1, 2], [3]] -> tensor([[1, 2], [3, 0]])``."""
    width = max((len(s) for s in sequences), default=0)
    out = torch.full((len(sequences), max(width, 1)), value, dtype=dtype)
    for row, sequence in enumerate(sequences):
        if sequence:
            out[row, : len(sequence)] = torch.as_tensor(sequence, dtype=dtype)
    return out
