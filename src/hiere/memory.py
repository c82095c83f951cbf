"""The C heap's policy for large blocks (glibc only; a no-op elsewhere).

glibc serves a large ``malloc`` with its own ``mmap`` and returns it to the system on ``free`` — but only
above a threshold that it raises each time such a block is freed, up to 32 MB. After a few steps of a model
whose tensors change shape from batch to batch (documents of every length, any number of entity pairs),
tensors of up to 32 MB come from the heap instead, and the heap keeps what they leave behind: the process
holds far more than any step needs. :func:`set_mmap_threshold` fixes the threshold (``mallopt``), which also
stops glibc from moving it, so every tensor above it is mapped and unmapped on its own.
"""

from __future__ import annotations

import ctypes
import logging

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number

log = logging.getLogger("hiere.memory")


def set_mmap_threshold(megabytes: float) -> bool:
    """Serve every allocation of at least ``megabytes`` MB by its own mapping; False where glibc is absent."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        log.info("no glibc mallopt here: the heap policy stays as it is")
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(megabytes * 2**20)))
