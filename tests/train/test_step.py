import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from siamgpt_jax.model.qwen3 import init_model
from siamgpt_jax.train.optimizer import OptimConfig, make_optimizer
from siamgpt_jax.train.state import ModelDef, create_train_state
from siamgpt_jax.train.spec import StepSpec
from siamgpt_jax.train.step import jit_train_step, make_train_step

from .helpers import TINY, packed_batch


def _state_and_def(seed=0):
    model = init_model(TINY, seed=seed, param_dtype=jnp.float32, dtype=jnp.float32, remat="none", attention="xla")
    model_def, params = ModelDef.split(model)
    opt = make_optimizer(OptimConfig(learning_rate=1e-2, warmup_steps=0, decay="constant"), 10)
    return model_def, opt, params


def _one_step(micro: int):
    model_def, _, params = _state_and_def()
    # plain SGD (lr 1): the param change is the gradient itself, so this compares gradients
    # without Adam's 1/|g| amplifying rounding noise in near-zero entries
    opt = optax.sgd(1.0)
    state = create_train_state(params, opt)
    step = jit_train_step(make_train_step(model_def, opt, StepSpec(seq_len=32, global_batch=4, micro_batches=micro, loss_chunk=16)), None, None, None)
    batch = {k: jnp.asarray(v) for k, v in packed_batch(0, batch=4, seq_len=32).items()}
    new_state, metrics = step(state, batch)
    return new_state, jax.device_get(metrics)


def test_grad_accumulation_equals_one_big_batch():
    # loss is normalised by the loss tokens of the whole global batch, so micro-batching is exact
    s1, m1 = _one_step(1)
    s4, m4 = _one_step(4)
    np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-6)
    np.testing.assert_allclose(m1["grad_norm"], m4["grad_norm"], rtol=1e-5)
    assert float(m1["loss_tokens"]) == float(m4["loss_tokens"])
    for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s4.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert int(s1.step) == 1


def test_loss_is_masked_token_mean_of_model_cross_entropy():
    model_def, _, params = _state_and_def()
    _, m = _one_step(1)
    model = model_def.merge(params)
    b = packed_batch(0, batch=4, seq_len=32)
    logits = np.asarray(model(jnp.asarray(b["inputs"]), positions=jnp.asarray(b["positions"]),
                              segment_ids=jnp.asarray(b["segment_ids"])), np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    nll = -np.take_along_axis(logp, b["targets"][..., None], -1)[..., 0]
    expected = (nll * b["loss_mask"]).sum() / b["loss_mask"].sum()
    np.testing.assert_allclose(m["loss"], expected, rtol=1e-5)


def test_loss_falls_when_fitting_a_fixed_batch():
    model_def, opt, params = _state_and_def()
    state = create_train_state(params, opt)
    step = jit_train_step(make_train_step(model_def, opt, StepSpec(seq_len=32, global_batch=2, loss_chunk=16)),
                          None, None, None)
    batch = {k: jnp.asarray(v) for k, v in packed_batch(2, batch=2, seq_len=32).items()}
    losses = []
    for _ in range(8):
        state, m = step(state, batch)
        losses.append(float(m["loss"]))
    assert losses[-1] < 0.7 * losses[0], losses


def test_micro_batches_must_divide_the_batch():
    with pytest.raises(ValueError, match="not divisible by micro_batches=3"):
        StepSpec(seq_len=16, global_batch=4, micro_batches=3)


def test_a_batch_of_another_shape_than_the_spec_is_refused_when_traced():
    model_def, opt, params = _state_and_def()
    state = create_train_state(params, opt)
    step = jit_train_step(make_train_step(model_def, opt, StepSpec(seq_len=16, global_batch=2)), None, None, None)
    batch = {k: jnp.asarray(v) for k, v in packed_batch(0, batch=4, seq_len=16).items()}
    with pytest.raises(ValueError, match=r"batch has shape \[4, 16\] but the step spec says \[global_batch=2, seq_len=16\]"):
        step(state, batch)


def test_the_spec_validates_its_choices_and_the_setup_checks_the_model_against_it():
    from siamgpt_jax.model.qwen3 import abstract_model
    from siamgpt_jax.train.optimizer import OptimConfig
    from siamgpt_jax.train.setup import setup_from_model

    with pytest.raises(ValueError, match="attention 'flash' is not one of"):
        StepSpec(seq_len=16, global_batch=2, attention="flash")
    with pytest.raises(ValueError, match="compute_dtype 'fp16' is not one of"):
        StepSpec(seq_len=16, global_batch=2, compute_dtype="fp16")
    spec = StepSpec(seq_len=16, global_batch=2, remat="dots", compute_dtype="float32")
    assert spec.remat == "dots" and spec.micro_batch == 2
    assert spec.describe() == ("2 rows x 16 tokens, float32 compute / float32 params, remat dots, attention auto, "
                               "kernels auto, loss chunk 1024")
    model = abstract_model(TINY, **spec.replace(remat="none").model_options())
    with pytest.raises(ValueError, match=r"remat=none \(spec: dots\)"):
        setup_from_model(model, OptimConfig(), 10, spec, None, None)
