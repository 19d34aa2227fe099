"""TrainState and the bridge between the NNX model object and pure parameter pytrees.

Training is functional: the state is a pytree of (step, params, opt_state) where params is a plain
nested dict of arrays (what orbax saves and optax updates). `ModelDef` remembers the model's
structure so a pure function can rebuild the module from params inside `jit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from siamgpt_jax.model import qwen3
from siamgpt_jax.sharding import Rules


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class TrainState:
    step: jax.Array  # int32 scalar
    params: dict[str, Any]  # nested dict of arrays, the model's nnx.Param values
    opt_state: optax.OptState


@dataclass(frozen=True)
class ModelDef:
    """The static half of an NNX model: graph definition plus a template of its Param state."""

    graphdef: Any
    template: Any  # nnx.State of Params (abstract or concrete), metadata carries logical_axes
    rest: Any  # non-Param state (e.g. buffers), kept constant during training

    @classmethod
    def split(cls, model: nnx.Module) -> tuple["ModelDef", dict[str, Any]]:
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
        return cls(graphdef, abstract, rest), nnx.to_pure_dict(params)

    def merge(self, params: dict[str, Any]) -> nnx.Module:
        state = jax.tree.map(lambda x: x, self.template)  # fresh container, same metadata
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(self.graphdef, state, self.rest)

    def param_shardings(self, mesh: Mesh, rules: Rules) -> dict[str, Any]:
        """Nested dict (like params) of NamedShardings, by the model's own rule (qwen3.param_shardings)."""
        return nnx.to_pure_dict(qwen3.param_shardings(self.template, mesh, rules))


def _path_key(path) -> tuple:
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def opt_state_shardings(abstract_opt_state: Any, params_shardings: dict[str, Any], mesh: Mesh) -> Any:
    """Optimizer moments are sharded like the params they mirror; scalars are replicated.

    optax states embed copies of the params tree (mu, nu); a leaf whose path ends with a param's
    path gets that param's sharding.
    """
    by_path = {_path_key(p): s for p, s in jax.tree_util.tree_flatten_with_path(params_shardings)[0]}
    replicated = NamedSharding(mesh, PartitionSpec())

    def pick(path, leaf):
        key = _path_key(path)
        if getattr(leaf, "ndim", 0) > 0:
            for n in range(len(key)):
                if key[n:] in by_path:
                    return by_path[key[n:]]
        return replicated

    return jax.tree_util.tree_map_with_path(pick, abstract_opt_state)


def state_shardings(model_def: ModelDef, optimizer: optax.GradientTransformation, mesh: Mesh, rules: Rules) -> TrainState:
    params_sh = model_def.param_shardings(mesh, rules)
    abstract_params = nnx.to_pure_dict(model_def.template)
    abstract_opt = jax.eval_shape(optimizer.init, abstract_params)
    return TrainState(
        step=NamedSharding(mesh, PartitionSpec()),
        params=params_sh,
        opt_state=opt_state_shardings(abstract_opt, params_sh, mesh),
    )


def create_train_state(
    params: dict[str, Any], optimizer: optax.GradientTransformation, shardings: TrainState | None = None
) -> TrainState:
    """Wrap already-placed params; the optimizer state is created directly on its shardings."""
    init = jax.jit(optimizer.init, out_shardings=None if shardings is None else shardings.opt_state)
    step = jnp.zeros((), jnp.int32)
    if shardings is not None:
        step = jax.device_put(step, shardings.step)
    return TrainState(step=step, params=params, opt_state=init(params))


def abstract_train_state(model_def: ModelDef, optimizer: optax.GradientTransformation, shardings: TrainState | None) -> TrainState:
    """ShapeDtypeStructs (with shardings) of the whole state: the restore target and AOT input."""
    params = nnx.to_pure_dict(model_def.template)
    state = TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32),
        params=params,
        opt_state=jax.eval_shape(optimizer.init, params),
    )
    if shardings is None:
        return state
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings)
