"""The C heap's policy for large blocks (glibc only; a no-op elsewhere).

glibc serves a large ``malloc`` with its own ``mmap`` and returns it to the system on ``free`` — but only
above a threshold that it raises each time such a block is freed, up to 32 MB. After a few steps of a model
whose tensors change shape from batch to batch (documents of every length, any number of entity pairs),
tensors of up to 32 MB come from the heap instead, and the heap keeps what they leave behind: the process
holds far more than any step needs. :func:`set_mmap_threshold` fixes the threshold (``mallopt``), which also
stops glibc from moving it, so every tensor above it is mapped and unmapped on its own.

:func:`enable_huge_pages` asks PyTorch's CPU allocator to back every tensor of 2 MB or more with transparent
huge pages (``madvise(MADV_HUGEPAGE)``; PyTorch reads ``THP_MEM_ALLOC_ENABLE`` once, at its first CPU
allocation). A fresh mapping then faults in 2 MB at a time instead of 4 kB, which makes mapped tensors cheaper,
and the heap's large blocks are packed into fewer pages. It only works when set before the process allocates its
first CPU tensor: ``hiere train`` sets it before it imports the trainer.

:func:`bound_kernel_cache` caps oneDNN's primitive cache: oneDNN (PyTorch's CPU kernels for bf16 matmuls, LSTMs
and convolutions) keeps a compiled kernel for every tensor shape it has met, up to 1,024 of them, and documents of
every length are ever new shapes, so a long prediction job's memory grows until the cache is full. PyTorch's
oneDNN wrapper (ideep) keeps a second cache of the same kind, also 1,024 entries by default
(``LRU_CACHE_CAPACITY``: descriptors and primitives of matmuls, LSTMs and convolutions, per shape); the same
setting bounds both (ideep's to at least 1 entry). Each is read once, when the process creates its first such
kernel: corpus-scale workers set them before they load the model, ``hiere train`` before it imports the trainer.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from pathlib import Path
from typing import Any

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
THP_VARIABLE = "THP_MEM_ALLOC_ENABLE"  # read by PyTorch's CPU allocator (c10 alloc_cpu)
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")
ONEDNN_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"  # oneDNN's own default: 1,024 kernels
IDEEP_CACHE_VARIABLE = "LRU_CACHE_CAPACITY"  # PyTorch's ideep wrapper's per-shape cache; default 1,024 entries

log = logging.getLogger("hiere.memory")


def set_mmap_threshold(megabytes: float) -> bool:
    """Serve every allocation of at least ``megabytes`` MB by its own mapping; False where glibc is absent."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        log.info("no glibc mallopt here: the heap policy stays as it is")
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(megabytes * 2**20)))


def release_freed_memory() -> None:
    """Hand the heap's free space back to the system (glibc's ``malloc_trim``), so that the resident size
    follows what the process holds, not the fragments of the work it has finished (a corpus worker's last
    block, a training before its test scoring); a no-op where glibc is absent."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None


def kernel_huge_pages() -> str | None:
    """The kernel's transparent-huge-page mode (``always``, ``madvise`` or ``never``), None where unknown."""
    try:
        text = THP_SETTING.read_text()
    except OSError:
        return None
    chosen = [word[1:-1] for word in text.split() if word.startswith("[")]
    return chosen[0] if chosen else None


def enable_huge_pages() -> bool:
    """Ask PyTorch to back tensors of 2 MB or more with transparent huge pages; False where the kernel has them
    off. An explicit ``THP_MEM_ALLOC_ENABLE`` in the environment is left as it is."""
    mode = kernel_huge_pages()
    if mode == "never":
        log.info("transparent huge pages are off in this kernel (%s): trainer.huge_pages has no effect", THP_SETTING)
        return False
    os.environ.setdefault(THP_VARIABLE, "1")
    return os.environ[THP_VARIABLE] not in ("", "0")


def bound_kernel_cache(capacity: int | None) -> bool:
    """Keep at most ``capacity`` compiled oneDNN kernels (0: none; None: oneDNN's default of 1,024) and at most
    ``max(capacity, 1)`` entries in ideep's per-shape cache. An explicit ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` or
    ``LRU_CACHE_CAPACITY`` in the environment wins for its cache. Only takes effect before the process's first
    oneDNN kernel; True when this call set either."""
    if capacity is None:
        return False
    wanted = {ONEDNN_CACHE_VARIABLE: int(capacity), IDEEP_CACHE_VARIABLE: max(int(capacity), 1)}
    unset = [variable for variable in wanted if variable not in os.environ]
    for variable in unset:
        os.environ[variable] = str(wanted[variable])
    return bool(unset)


def peak_rss_mb() -> float | None:
    """The process's resident-memory high-water mark so far, in MB (``ru_maxrss``); None where unknown."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS, kB on Linux
