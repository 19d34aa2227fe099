"""Row-range reads from safetensors files with `os.preadv`, straight into a caller's buffer.

`safe_open` validates the files (scan_headers in hf_import); this module only locates each tensor's
bytes (the header's data_offsets) and reads runs of rows. preadv releases the GIL and copies once
from the page cache, with no memory map whose touched pages would count towards RSS.
"""

from __future__ import annotations

import json
import os
from math import prod
from pathlib import Path

import numpy as np

from siamgpt_jax.convert.errors import CheckpointError


def _data_offsets(file: Path) -> dict[str, tuple[int, int]]:
    """Tensor name -> absolute [start, end) byte range, from the file's JSON header."""
    with open(file, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        try:
            meta = json.loads(f.read(n)) if n > 0 else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            meta = None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{file}: truncated or corrupt safetensors file: unreadable header")
    return {k: (8 + n + v["data_offsets"][0], 8 + n + v["data_offsets"][1]) for k, v in meta.items() if k != "__metadata__"}


class RowReader:
    """Reads rows [r0, r1) of HF tensors; `tensors` maps name -> (shape, numpy dtype, file)."""

    def __init__(self, tensors: dict[str, tuple[tuple[int, ...], np.dtype, Path]]):
        self._tensors = tensors
        self._fds: dict[Path, int] = {}
        self._where: dict[str, tuple[int, int]] = {}
        files = sorted({f for _, _, f in tensors.values()})
        try:
            for f in files:
                self._fds[f] = os.open(f, os.O_RDONLY)
                offsets = _data_offsets(f)
                size = os.fstat(self._fds[f]).st_size
                for name, (shape, dtype, tf) in tensors.items():
                    if tf != f:
                        continue
                    start, end = offsets[name]
                    if end - start != prod(shape) * dtype.itemsize or end > size:
                        raise CheckpointError(f"{f}: tensor '{name}': byte range {start}..{end} does not fit its shape or the file")
                    self._where[name] = (start, prod(shape[1:]) * dtype.itemsize)
        except BaseException:
            self.close()
            raise

    def read_rows(self, name: str, r0: int, out: np.ndarray) -> None:
        """Fill `out` (C-contiguous, the tensor's dtype) with rows r0.. of `name`."""
        shape, dtype, f = self._tensors[name]
        start, row_bytes = self._where[name]
        view = memoryview(out.reshape(-1).view(np.uint8))  # bytes: bf16 has no buffer format
        offset, done = start + r0 * row_bytes, 0
        while done < out.nbytes:  # preadv may return short counts on large reads
            got = os.preadv(self._fds[f], [view[done:]], offset + done)
            if got <= 0:
                raise CheckpointError(f"{f}: tensor '{name}': the file ended while reading it (truncated?)")
            done += got

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> RowReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
