"""pythainlp's newmm word segmentation, loaded once per process and cached per chunk: the one
segmenter the word counts (thai_text) and the CRF sentence cutter (crf_sentences) share."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _newmm():
    from pythainlp.tokenize import newmm  # slow import: load once per process, only when needed

    return newmm.segment


@functools.lru_cache(maxsize=200_000)
def segment_chunk(chunk: str) -> tuple[str, ...]:
    """newmm's tokens of one whitespace-free chunk."""
    return tuple(_newmm()(chunk))
