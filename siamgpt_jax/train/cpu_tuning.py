"""CPU-only speed settings for training: XLA compiler options, and how glibc hands out memory.

Measurements behind each choice: docs/benchmarks/model.md ("CPU tuning").

1. Compiler options. On CPU, XLA hands dots *and* elementwise ops and reductions to its YNNPACK
library by default. For a training step that is a loss: the library's reductions and transposing
elementwise fusions run far below memory speed, and XLA's own loop emitter does them better. We
hand YNNPACK each dot alone (`INDIVIDUAL_DOT`): with the `DOT` type XLA still fuses neighbouring
elementwise ops, and sometimes a second dot, into the library's graph, and those fusions run well
below the plain matmul's speed. That needs every weight grad to contract one merged token dim
(model/cpu_kernels.py, which the `kernels` switch picks on CPU); with autodiff's two-dim weight
grads the type made the train step slower. The option is experimental, so it is probed once: a jax
that does not know that type gets `DOT`, and one that knows neither gets no options (and a logged
note) instead of a failed compile. GPU and other backends get no options.

2. Host memory (`keep_freed_host_memory`). XLA:CPU allocates each execution's buffers afresh, from
the malloc arena of the thread that runs it. glibc serves big blocks with mmap and hands freed ones
back to the kernel, so every step faults its pages in again. One arena, no mmap and no trimming
keep freed blocks in the process for the next step (no faults). It only works for threads that
have not allocated yet, so it must run before jax starts its backend; the `train` and `demo`
commands call it when jax can only run on CPU (no accelerator plugin installed, or
JAX_PLATFORMS=cpu). The cost is that the process keeps its peak heap, which a training run reaches
every step anyway.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import importlib.util
import logging
import os
import sys

log = logging.getLogger(__name__)

_FUSION_TYPE = "xla_cpu_experimental_ynn_fusion_type"
# Best first. A jax whose XLA predates one-dot-per-call still gets YNNPACK for dots only.
CPU_OPTION_CANDIDATES = (
    {_FUSION_TYPE: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"},
    {_FUSION_TYPE: "LIBRARY_FUSION_TYPE_DOT"},
)


@functools.cache
def _accepted_cpu_options() -> dict[str, str] | None:
    """The first candidate this jax's XLA:CPU compiles with, or None."""
    import jax
    import jax.numpy as jnp

    for options in CPU_OPTION_CANDIDATES:
        try:
            jax.jit(lambda x: x * 2, compiler_options=options).lower(jnp.float32(1)).compile()
            return options
        except Exception as e:  # noqa: BLE001 - an unknown option just means "try the next one"
            log.info("XLA:CPU options %s not accepted here (%s)", options, e)
    log.info("no XLA:CPU options accepted; using XLA defaults")
    return None


def compiler_options(backend: str | None = None) -> dict[str, str] | None:
    """Options for `jax.jit(..., compiler_options=...)` on `backend` (default: jax's default)."""
    import jax

    if (backend or jax.default_backend()) != "cpu":
        return None
    options = _accepted_cpu_options()
    return None if options is None else dict(options)


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def jax_runs_on_cpu_only() -> bool:
    """Whether jax can only pick its CPU backend here, decided without starting any backend."""
    platforms = os.environ.get("JAX_PLATFORMS") or os.environ.get("JAX_PLATFORM_NAME") or ""
    if platforms.strip():
        return platforms.split(",")[0].strip().lower() == "cpu"
    if importlib.util.find_spec("libtpu") is not None or importlib.util.find_spec("jax_plugins") is not None:
        return False  # jax_plugins is where the CUDA / ROCm plugins live
    return not list(importlib.metadata.entry_points(group="jax_plugins"))


def keep_freed_host_memory() -> bool:
    """One malloc arena, no mmap'd blocks, no trimming (glibc only). True if glibc took all three."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))
    return all(mallopt(param, value) == 1 for param, value in settings)


# SIAMGPT_KEEP_FREED_MEMORY=0 leaves glibc's malloc at its defaults (e.g. to compare, or for a CPU
# run whose allocation pattern changes over time and should give memory back)
KEEP_FREED_MEMORY_ENV = "SIAMGPT_KEEP_FREED_MEMORY"


def tune_process_for_cpu_training() -> bool:
    """Call first thing in a training process: applies the host-memory setting if jax is CPU-only
    (and SIAMGPT_KEEP_FREED_MEMORY is not 0)."""
    if os.environ.get(KEEP_FREED_MEMORY_ENV, "1").strip() in ("0", "false", "no"):
        return False
    if jax_runs_on_cpu_only() and keep_freed_host_memory():
        log.debug("glibc malloc: one arena, no mmap, no trim (CPU training)")
        return True
    return False
