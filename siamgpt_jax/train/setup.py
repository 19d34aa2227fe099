"""The one place that wires a model into a runnable SFT step: split the model, build the optimizer,
derive every sharding, create (or describe) the train state, and jit the step.

The trainer (train/loop.py), AOT lowering for layouts (train/aot.py), the GPU check and the CPU
benchmarks all build their step here, so they measure and compile the step that training runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from siamgpt_jax.sharding import Rules
from siamgpt_jax.train.optimizer import OptimConfig, make_optimizer
from siamgpt_jax.train.state import ModelDef, TrainState, abstract_train_state, create_train_state, state_shardings
from siamgpt_jax.train.spec import StepSpec, StepSpecError
from siamgpt_jax.train.step import (
    batch_sharding,
    jit_eval_step,
    jit_train_step,
    make_eval_step,
    make_train_step,
)


@dataclasses.dataclass
class TrainSetup:
    model_def: ModelDef
    optimizer: optax.GradientTransformation
    shardings: TrainState | None  # NamedShardings (None without a mesh)
    step: Callable  # jitted (state, batch) -> (state, metrics); donates the state
    batch_sharding: NamedSharding | None
    mesh: Mesh | None
    rules: Rules | None
    spec: StepSpec

    def eval_step(self) -> Callable:
        """Jitted (params, batch) -> metrics, with the step's shardings."""
        return jit_eval_step(make_eval_step(self.model_def, self.spec), self.mesh, self.rules,
                             None if self.shardings is None else self.shardings.params)


def make_setup(model_def: ModelDef, optim: OptimConfig, total_steps: int, spec: StepSpec,
               mesh: Mesh | None, rules: Rules | None, *, schedule: Callable | None = None,
               cpu_tuning: bool = True) -> TrainSetup:
    """Optimizer, shardings and the jitted step for a model definition (no parameters touched)."""
    optimizer = make_optimizer(optim, total_steps)
    shardings = None if mesh is None else state_shardings(model_def, optimizer, mesh, rules)
    step = jit_train_step(make_train_step(model_def, optimizer, spec, schedule), mesh, rules, shardings,
                          cpu_tuning=cpu_tuning)
    return TrainSetup(model_def, optimizer, shardings, step, None if mesh is None else batch_sharding(mesh, rules),
                      mesh, rules, spec)


def check_model_matches(model: nnx.Module, spec: StepSpec) -> None:
    """A StepSpecError when the model was built with other choices than the spec's (build it with
    `spec.model_options()`), so a step never runs a model its spec does not describe."""
    built = {"param_dtype": model.param_dtype, "dtype": model.dtype, "remat": model.remat,
             "attention": model.attention, "kernels": model.kernels}
    wrong = [f"{k}={built[k]!s} (spec: {v!s})" for k, v in spec.model_options().items() if str(built[k]) != str(v)]
    if wrong:
        raise StepSpecError("the model was built with " + ", ".join(wrong) + "; build it from spec.model_options()")


def setup_from_model(model: nnx.Module, optim: OptimConfig, total_steps: int, spec: StepSpec,
                     mesh: Mesh | None, rules: Rules | None, **kwargs: Any) -> tuple[TrainSetup, TrainState]:
    """make_setup for a built model, plus its train state (params moved in, optimizer state created)."""
    check_model_matches(model, spec)
    model_def, params = ModelDef.split(model)
    setup = make_setup(model_def, optim, total_steps, spec, mesh, rules, **kwargs)
    return setup, create_train_state(params, setup.optimizer, setup.shardings)


def abstract_setup(model: nnx.Module, optim: OptimConfig, total_steps: int, spec: StepSpec,
                   mesh: Mesh, rules: Rules, **kwargs: Any) -> tuple[TrainSetup, TrainState]:
    """make_setup for an abstract (eval_shape) model, plus the train state as ShapeDtypeStructs."""
    check_model_matches(model, spec)
    model_def, _ = ModelDef.split(model)
    setup = make_setup(model_def, optim, total_steps, spec, mesh, rules, **kwargs)
    return setup, abstract_train_state(model_def, setup.optimizer, setup.shardings)
