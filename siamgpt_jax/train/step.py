"""The pure SFT step: (state, batch) -> (state, metrics), jit-compiled with the state donated.

Gradient accumulation runs inside the step as a scan over micro-batches. The loss is normalised
by the number of loss tokens in the whole global batch (sum of token losses / sum of tokens), not a
mean of per-micro-batch means, so micro-batching never changes the result.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from siamgpt_jax.sharding import Rules, constrain, logical_to_spec, use_mesh_rules
from siamgpt_jax.train.loss import chunked_cross_entropy
from siamgpt_jax.train.state import ModelDef, TrainState
from siamgpt_jax.train.cpu_tuning import compiler_options
from siamgpt_jax.train.spec import StepSpec
from siamgpt_jax.loader import BATCH_KEYS

Batch = dict[str, jax.Array]  # inputs, targets, loss_mask, segment_ids, positions: [B, S]


def _loss_sums(model_def: ModelDef, params, batch: Batch, spec: StepSpec):
    model = model_def.merge(params)
    hidden = model.hidden_states(batch["inputs"], positions=batch["positions"], segment_ids=batch["segment_ids"])
    sums = chunked_cross_entropy(
        hidden, model.lm_head_kernel(), batch["targets"], batch["loss_mask"], chunk=spec.loss_chunk, z_loss=spec.z_loss,
        kernels=model.kernels,
    )
    return sums.total, (sums.ce, sums.tokens, sums.z)


def _split_micro(batch: Batch, micro: int) -> Batch:
    """[B, S] -> [micro, B/micro, S]; rows are strided so every micro-batch spans all data shards."""

    def split(x):
        b = x.shape[0]
        if b % micro:
            raise ValueError(f"global batch {b} is not divisible by micro_batches={micro}")
        return x.reshape(b // micro, micro, *x.shape[1:]).swapaxes(0, 1)

    return jax.tree.map(split, batch)


def global_norm(tree) -> jax.Array:
    """L2 norm over every leaf, accumulated in fp32."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))


def make_grad_fn(model_def: ModelDef, spec: StepSpec) -> Callable[[dict, Batch], tuple[dict, tuple]]:
    """(params, batch) -> (grads of the summed token loss, (ce_sum, n_tokens, z_sum)), all fp32.

    Sums, not means: divide by n_tokens for the mean. Micro-batches are accumulated inside (a scan),
    so the result does not depend on `spec.micro_batches`. The train step and the layout
    equivalence tests share this function. A batch of another shape than the spec's is a
    StepSpecError when the step is traced.
    """
    grad_fn = jax.grad(lambda p, b: _loss_sums(model_def, p, b, spec), has_aux=True)

    def grads_and_sums(params, batch: Batch):
        spec.check_batch_shape(batch["inputs"].shape)
        batch = {k: constrain(batch[k], ("batch", "seq")) for k in BATCH_KEYS}
        if spec.micro_batches == 1:
            return grad_fn(params, batch)

        def accumulate(carry, micro_batch):
            micro_batch = {k: constrain(v, ("batch", "seq")) for k, v in micro_batch.items()}
            g, aux = grad_fn(params, micro_batch)
            return jax.tree.map(jnp.add, carry, (g, aux)), None

        zeros = (
            jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params),
            (jnp.float32(0), jnp.float32(0), jnp.float32(0)),
        )
        out, _ = jax.lax.scan(accumulate, zeros, _split_micro(batch, spec.micro_batches))
        return out

    return grads_and_sums


def make_train_step(
    model_def: ModelDef, optimizer: optax.GradientTransformation, spec: StepSpec, schedule: Callable | None = None
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """The pure step function (not yet jitted)."""
    grads_and_sums = make_grad_fn(model_def, spec)

    def train_step(state: TrainState, batch: Batch):
        grads, (ce, n_tokens, z) = grads_and_sums(state.params, batch)
        denom = jnp.maximum(n_tokens, 1.0)
        grads = jax.tree.map(lambda g, p: (g / denom).astype(p.dtype), grads, state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": ce / denom,
            "z_loss": z / denom,
            "loss_tokens": n_tokens,
            "grad_norm": global_norm(grads),
            "param_norm": global_norm(params),
        }
        if schedule is not None:
            metrics["learning_rate"] = schedule(state.step)
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return train_step


def make_eval_step(model_def: ModelDef, spec: StepSpec) -> Callable[[dict, Batch], dict[str, jax.Array]]:
    def eval_step(params, batch: Batch):
        spec.check_batch_shape(batch["inputs"].shape, "eval batch")
        batch = {k: constrain(batch[k], ("batch", "seq")) for k in BATCH_KEYS}
        _, (ce, n_tokens, _) = _loss_sums(model_def, params, batch, spec)
        return {"loss_sum": ce, "loss_tokens": n_tokens}

    return eval_step


def batch_sharding(mesh: Mesh, rules: Rules) -> NamedSharding:
    return NamedSharding(mesh, logical_to_spec(("batch", "seq"), rules, mesh))


def _with_rules(fn: Callable, mesh: Mesh | None, rules: Rules | None) -> Callable:
    """Trace `fn` with activation constraints bound to `mesh` (a no-op without one)."""

    def wrapped(*args):
        with use_mesh_rules(mesh, rules):
            return fn(*args)

    return wrapped


def _step_compiler_options(mesh: Mesh | None, cpu_tuning: bool = True) -> dict[str, str] | None:
    """train/cpu_tuning.py's options for the mesh's platform (jax's default without a mesh)."""
    if not cpu_tuning:
        return None
    return compiler_options(None if mesh is None else mesh.devices.flat[0].platform)


def jit_train_step(step_fn: Callable, mesh: Mesh | None, rules: Rules | None, state_sh: TrainState | None,
                   cpu_tuning: bool = True):
    """cpu_tuning=False compiles with XLA's defaults (train/cpu_tuning.py has what it changes on CPU)."""
    options = _step_compiler_options(mesh, cpu_tuning)
    if mesh is None:
        return jax.jit(step_fn, donate_argnums=0, compiler_options=options)
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        _with_rules(step_fn, mesh, rules),
        in_shardings=(state_sh, batch_sharding(mesh, rules)),
        out_shardings=(state_sh, replicated),
        donate_argnums=0,
        compiler_options=options,
    )


def jit_eval_step(eval_fn: Callable, mesh: Mesh | None, rules: Rules | None, params_sh: Any | None):
    options = _step_compiler_options(mesh)
    if mesh is None:
        return jax.jit(eval_fn, compiler_options=options)
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        _with_rules(eval_fn, mesh, rules),
        in_shardings=(params_sh, batch_sharding(mesh, rules)),
        out_shardings=replicated,
        compiler_options=options,
    )
