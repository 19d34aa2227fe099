"""Page-aligned host buffers that `jax.device_put` on CPU adopts instead of copying (it needs 64 bytes)."""

from __future__ import annotations

import mmap
from math import prod

import numpy as np


def aligned_empty(shape, dtype, *, populate: bool = False) -> np.ndarray:
    """A zeroed, page-aligned C-contiguous array.

    populate=True maps all its pages now, in one mmap(MAP_POPULATE) call, which is cheaper than a
    page fault per 4 KB later; the import leaves it False so that the pages fault in inside its
    reads, spread over the reader threads instead of serialised before them.
    """
    dtype = np.dtype(dtype)
    nbytes = prod(shape) * dtype.itemsize
    if nbytes == 0:
        return np.empty(shape, dtype)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | (getattr(mmap, "MAP_POPULATE", 0) if populate else 0)
    return np.frombuffer(mmap.mmap(-1, nbytes, flags=flags), dtype).reshape(shape)
