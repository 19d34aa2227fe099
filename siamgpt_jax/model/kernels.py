"""The `kernels` switch (model/config.py `Kernels`): which implementation of the layer ops a model runs.

It is threaded like `attention`: the model keeps the name and resolves it when it traces.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax

from siamgpt_jax.model import cpu_kernels, layer_ops
from siamgpt_jax.model.config import KERNEL_NAMES


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
    if name not in KERNEL_NAMES:
        raise ValueError(f"kernels={name!r} is not one of {list(KERNEL_NAMES)}")
    return name


def resolve_kernels(name: str) -> str:
    """'auto' -> 'cpu' when jax's default backend is the CPU, else 'xla'."""
    if validate_kernels(name) != "auto":
        return name
    return "cpu" if jax.default_backend() == "cpu" else "xla"


def layer_ops_for(name: str) -> LayerOps:
    return _OPS[resolve_kernels(name)]
