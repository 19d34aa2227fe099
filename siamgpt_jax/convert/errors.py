"""Errors of the HF converters: each names the file and, where there is one, the tensor."""

from __future__ import annotations

from siamgpt_jax.errors import UserError
from siamgpt_jax.model.config import UnsupportedConfigError


class CheckpointError(UserError):
    """A checkpoint folder or file is unreadable, incomplete or does not match its config."""


class UnsupportedCheckpointError(CheckpointError, UnsupportedConfigError):
    """The checkpoint's config.json asks for a model or feature this implementation lacks."""
