"""Giving freed memory back to the system.

glibc's allocator keeps the memory of freed tensors in its heaps, so a process that allocates many tensors of
changing sizes (documents and bags of every length, batch after batch) grows in resident size with the fragments
of earlier batches, not with what it holds. :func:`release_freed_memory` asks glibc to return them
(``malloc_trim``); the trainer calls it between epochs and after each evaluation, the corpus-scale engine after
each block. Elsewhere (macOS, musl) it is a no-op.
"""

from __future__ import annotations

from typing import Any

_MALLOC_TRIM: Any = None


def release_freed_memory() -> None:
    """Hand freed heap memory back to the system (glibc ``malloc_trim(0)``); a no-op without glibc."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)
