"""Small layers shared by several models."""

from __future__ import annotations

import math

import torch
from torch import nn


class Bilinear(nn.Module):
    """``y_o = x1ᵀ W_o x2 + b_o`` like :class:`torch.nn.Bilinear`, computed with one matmul.

    ``torch.nn.Bilinear``'s CPU backward is orders of magnitude slower for thousands of entity pairs;
    here ``x1 @ W`` is a plain matmul (n, in1) x (in1, out * in2) followed by a batched dot with x2.
    """

    def __init__(self, in1: int, in2: int, out: int, bias: bool = True):
        super().__init__()
        self.in1, self.in2, self.out = in1, in2, out
        self.weight = nn.Parameter(torch.empty(out, in1, in2))
        self.bias = nn.Parameter(torch.zeros(out)) if bias else None
        bound = 1 / math.sqrt(in1)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """x1 (n, in1), x2 (n, in2) -> (n, out)."""
        weight = self.weight.permute(1, 0, 2).reshape(self.in1, self.out * self.in2)  # (in1, out * in2)
        projected = (x1 @ weight).view(-1, self.out, self.in2)  # (n, out, in2)
        scores = torch.bmm(projected, x2.unsqueeze(-1)).squeeze(-1)  # (n, out)
        return scores + self.bias if self.bias is not None else scores
