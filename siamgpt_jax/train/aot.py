"""The real train step, lowered ahead of time for a layout, without allocating a single parameter.

`mesh compile` and the planner-vs-XLA comparison use this: the model is built with
`nnx.eval_shape`, so even a 32B-shaped step compiles on virtual CPU devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from siamgpt_jax.loader import BATCH_KEYS
from siamgpt_jax.model.config import Kernels, Qwen3Config
from siamgpt_jax.model.qwen3 import abstract_model
from siamgpt_jax.sharding import Rules
from siamgpt_jax.train.optimizer import OptimConfig
from siamgpt_jax.train.setup import abstract_setup
from siamgpt_jax.train.spec import StepSpec


@dataclass
class LoweredStep:
    lowered: Any  # jax.stages.Lowered
    abstract_state: Any
    abstract_batch: dict[str, jax.ShapeDtypeStruct]

    def compile(self):
        return self.lowered.compile()


def lower_train_step(arch: Qwen3Config, mesh: Mesh, rules: Rules, spec: StepSpec,
                     optim: OptimConfig | None = None) -> LoweredStep:
    """The step `spec` describes, lowered for `mesh` from abstract shapes.

    Virtual CPU devices stand in for GPUs here, so it compiles as a GPU would: the layer ops'
    `auto` takes the GPU path (plain XLA, whose saved tensors the planner models) and the CPU-only
    compiler options are off (they change XLA:CPU's fusion and with it the peak the planner is
    checked on). Name `kernels: cpu` in the spec to lower the CPU kernels instead.
    """
    if spec.kernels == Kernels.AUTO:
        spec = spec.replace(kernels=Kernels.XLA)
    model = abstract_model(arch, **spec.model_options())
    setup, abstract_state = abstract_setup(model, optim or OptimConfig(), 1000, spec, mesh, rules, cpu_tuning=False)
    batch = {
        k: jax.ShapeDtypeStruct((spec.global_batch, spec.seq_len), jnp.float32 if k == "loss_mask" else jnp.int32,
                                sharding=setup.batch_sharding)
        for k in BATCH_KEYS
    }
    return LoweredStep(setup.step.lower(abstract_state, batch), abstract_state, batch)
