"""Page-aligned host buffers that `jax.device_put` on CPU adopts instead of copying (it needs 64 bytes)."""

from __future__ import annotations

import mmap
from math import prod

import numpy as np


def aligned_empty(shape, dtype) -> np.ndarray:
    """A zeroed, page-aligned C-contiguous array whose pages are already mapped.

    Every byte of it is about to be written; faulting its pages in one mmap(MAP_POPULATE) call is
    cheaper than one page fault per 4 KB inside the reads that fill it.
    """
    dtype = np.dtype(dtype)
    nbytes = prod(shape) * dtype.itemsize
    if nbytes == 0:
        return np.empty(shape, dtype)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    return np.frombuffer(mmap.mmap(-1, nbytes, flags=flags), dtype).reshape(shape)
