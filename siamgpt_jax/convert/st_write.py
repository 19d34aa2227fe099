"""Write one safetensors file a tensor at a time, its header first.

`safetensors.numpy.save_file` needs every tensor of a file in memory at once and copies each to
bytes. The export knows every name, dtype and shape before reading any weight, so it can write the
header up front and then each tensor's bytes as it arrives: host memory is one tensor, not a shard.
The layout is the format's own: u64 header length, JSON header (padded with spaces to 8 bytes),
then the tensors' bytes back to back in header order; tests read the files back with safetensors
and transformers.
"""

from __future__ import annotations

import json
import os
from math import prod
from pathlib import Path
from typing import Iterable

import numpy as np

ST_DTYPE = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64"}


class SafetensorsWriter:
    """with SafetensorsWriter(path, [(name, shape, dtype), ...], metadata) as w: w.write(name, array) in order."""

    def __init__(self, path: str | Path, tensors: Iterable[tuple[str, tuple[int, ...], np.dtype]],
                 metadata: dict[str, str] | None = None):
        self.path = Path(path)
        self._order: list[tuple[str, tuple[int, ...], np.dtype]] = [(n, tuple(s), np.dtype(d)) for n, s, d in tensors]
        header: dict = {"__metadata__": metadata} if metadata else {}
        offset = 0
        for name, shape, dtype in self._order:
            n = prod(shape) * dtype.itemsize
            header[name] = {"dtype": ST_DTYPE[dtype.name], "shape": list(shape), "data_offsets": [offset, offset + n]}
            offset += n
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        self._next = 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._put(len(raw).to_bytes(8, "little") + raw)

    def _put(self, data) -> None:
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(self._fd, view):]

    def write(self, name: str, array: np.ndarray) -> None:
        want, shape, dtype = self._order[self._next]
        if (name, tuple(array.shape), array.dtype) != (want, shape, dtype):
            raise ValueError(f"{self.path}: expected tensor {want} {shape} {dtype}, got {name} {array.shape} {array.dtype}")
        self._put(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
        self._next += 1

    def close(self) -> None:
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        if self._next != len(self._order):
            raise ValueError(f"{self.path}: closed after {self._next} of {len(self._order)} tensors")

    def __enter__(self) -> SafetensorsWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        elif self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
