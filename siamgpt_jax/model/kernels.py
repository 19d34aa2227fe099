"""The `kernels` switch: which implementation of the layer ops a model runs.

    xla   model/layer_ops.py: plain jnp / dot_general with autodiff (the GPU path)
    cpu   model/cpu_kernels.py: the same forwards with hand-written backwards tuned for XLA:CPU
    auto  cpu on the CPU backend, xla elsewhere

It is threaded like `attention`: the model keeps the name and resolves it when it traces.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax

from siamgpt_jax.model import cpu_kernels, layer_ops

KERNELS = ("auto", "xla", "cpu")


class LayerOps(NamedTuple):
    rms_norm: Callable  # (x, weight, eps) -> x normalised
    dense: Callable  # (x [B,S,*in], w [*out,*in]) -> [B,S,*out]
    swiglu_down: Callable  # (gate, up, down_proj) -> the MLP's output
    weight_grad: Callable  # ([B,S,X], [B,S,Y], **einsum_kwargs) -> [X,Y], summed over tokens
    remat_names: tuple[str, ...]  # names the `dots` remat policy saves besides plain weight matmuls


_OPS = {
    "xla": LayerOps(layer_ops.rms_norm, layer_ops.dense, layer_ops.swiglu_down, layer_ops.weight_grad, ()),
    "cpu": LayerOps(cpu_kernels.rms_norm, cpu_kernels.dense, cpu_kernels.swiglu_down, cpu_kernels.sum_over_tokens,
                    (cpu_kernels.PROJECTION,)),
}


def validate_kernels(name: str) -> str:
    if name not in KERNELS:
        raise ValueError(f"kernels={name!r} is not one of {list(KERNELS)}")
    return name


def resolve_kernels(name: str) -> str:
    """'auto' -> 'cpu' when jax's default backend is the CPU, else 'xla'."""
    if validate_kernels(name) != "auto":
        return name
    return "cpu" if jax.default_backend() == "cpu" else "xla"


def layer_ops_for(name: str) -> LayerOps:
    return _OPS[resolve_kernels(name)]
