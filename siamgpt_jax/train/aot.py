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

from siamgpt_jax.model.config import Qwen3Config, dtype_of
from siamgpt_jax.sharding import Rules
from siamgpt_jax.train.optimizer import OptimConfig
from siamgpt_jax.train.setup import abstract_setup
from siamgpt_jax.train.step import BATCH_KEYS, StepConfig



@dataclass
class LoweredStep:
    lowered: Any  # jax.stages.Lowered
    abstract_state: Any
    abstract_batch: dict[str, jax.ShapeDtypeStruct]

    def compile(self):
        return self.lowered.compile()


def lower_train_step(
    arch: Qwen3Config,
    mesh: Mesh,
    rules: Rules,
    *,
    seq_len: int,
    global_batch: int,
    micro_batches: int = 1,
    remat: str = "full",
    dtype: str = "bfloat16",
    param_dtype: str = "float32",
    attention: str = "xla",
    loss_chunk: int = 1024,
    optim: OptimConfig | None = None,
) -> LoweredStep:
    from siamgpt_jax.model.qwen3 import abstract_model

    model = abstract_model(arch, param_dtype=dtype_of(param_dtype), dtype=dtype_of(dtype), remat=remat, attention=attention)
    # Virtual CPU devices stand in for GPUs here, so compile as a GPU would: without the CPU-only
    # speed options (they change XLA:CPU's fusion and with it the peak the planner is checked on).
    setup, abstract_state = abstract_setup(model, optim or OptimConfig(), 1000, StepConfig(micro_batches, loss_chunk),
                                           mesh, rules, cpu_tuning=False)
    batch = {
        k: jax.ShapeDtypeStruct((global_batch, seq_len), jnp.float32 if k == "loss_mask" else jnp.int32,
                                sharding=setup.batch_sharding)
        for k in BATCH_KEYS
    }
    return LoweredStep(setup.step.lower(abstract_state, batch), abstract_state, batch)
