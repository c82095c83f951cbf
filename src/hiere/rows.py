"""Rows made when they are read: the explanations of a batch (attention weights, sentence scores) as a sequence
whose items are built on access, so that scoring a split, which reads none of them, never builds them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class LazyRows(Sequence):
    """A sequence of rows built by :meth:`row` when read; indexing, negative indices and slices as for a list."""

    def row(self, index: int) -> Any:
        """Row ``index`` (``0 <= index < len(self)``)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.row(index % len(self))
