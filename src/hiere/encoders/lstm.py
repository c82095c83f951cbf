"""Bidirectional LSTM over padded sequences, with padding that never leaks into the states.

The backward direction runs on each sequence reversed within its own length, so no packing is
needed: ``pack_padded_sequence`` makes the CPU backward pass slice and zero-fill a full-size tensor
per time step (quadratic in the length), which dominated training time for documents of 300+ tokens.
"""

from __future__ import annotations

import torch
from torch import nn


def reverse_within_length(inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each (batch, seq, dim) row's first ``length`` steps; padding stays in place."""
    steps = torch.arange(inputs.shape[1], device=inputs.device).unsqueeze(0)  # (1, seq)
    lengths = lengths.to(inputs.device).unsqueeze(1)  # (batch, 1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (batch, seq)
    return inputs.gather(1, index.unsqueeze(-1).expand_as(inputs))


class BiLSTM(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        between = dropout if num_layers > 1 else 0.0
        self.forward_lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True, dropout=between)
        self.backward_lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True, dropout=between)
        self.output_size = 2 * hidden_size

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """inputs (batch, seq, input_size), lengths (batch,) -> (batch, seq, 2 * hidden), zeros on padding."""
        lengths = lengths.clamp(min=1)
        forward_states, _ = self.forward_lstm(inputs)  # (batch, seq, hidden)
        backward_states, _ = self.backward_lstm(reverse_within_length(inputs, lengths))
        backward_states = reverse_within_length(backward_states, lengths)
        output = torch.cat([forward_states, backward_states], dim=-1)  # (batch, seq, 2 * hidden)
        mask = torch.arange(inputs.shape[1], device=inputs.device).unsqueeze(0) < lengths.to(inputs.device).unsqueeze(1)
        return output * mask.unsqueeze(-1).to(output.dtype)
