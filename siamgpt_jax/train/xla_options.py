"""Per-backend XLA compiler options for the jitted steps.

On CPU, XLA hands dots *and* elementwise ops and reductions to its YNNPACK library by default. For
a training step that is a loss: the library's reductions and transposing elementwise fusions run
far below memory speed (the attention softmax backward alone took ~12 ms per layer at S=512), and
XLA's own loop emitter does them better. Keeping YNNPACK for dots only made the CPU fwd+bwd step
~20% faster (docs/benchmarks/model.md). The option is experimental, so it is probed once: a jax
that does not know it gets no options (and a logged note) instead of a failed compile.
GPU and other backends get no options.
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp

log = logging.getLogger(__name__)

CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


@functools.cache
def _cpu_options_accepted() -> bool:
    try:
        jax.jit(lambda x: x * 2, compiler_options=CPU_OPTIONS).lower(jnp.float32(1)).compile()
        return True
    except Exception as e:  # noqa: BLE001 - an unknown option just means "compile with defaults"
        log.info("XLA:CPU options %s not accepted here (%s); using XLA defaults", CPU_OPTIONS, e)
        return False


def compiler_options(backend: str | None = None) -> dict[str, str] | None:
    """Options for `jax.jit(..., compiler_options=...)` on `backend` (default: jax's default)."""
    if (backend or jax.default_backend()) != "cpu" or not _cpu_options_accepted():
        return None
    return dict(CPU_OPTIONS)
