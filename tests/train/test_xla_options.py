"""The train step's XLA:CPU options: YNNPACK keeps dots, XLA does the reductions; safe elsewhere."""

import re

import jax
import jax.numpy as jnp

from siamgpt_jax.train import xla_options


def _ynn_fusion_bodies(hlo: str) -> list[str]:
    """The called computations of every YNNPACK fusion in optimized HLO text."""
    called = re.findall(r"%ynn_fusion[\w.]* = .*?calls=%([\w.\-]+)", hlo)
    bodies = []
    for name in called:
        m = re.search(rf"^%{re.escape(name)} .*?^\}}", hlo, re.S | re.M)
        assert m, f"no body for {name}"
        bodies.append(m.group(0))
    return bodies


def test_cpu_steps_keep_ynnpack_for_dots_only():
    opts = xla_options.compiler_options()
    assert opts == xla_options.CPU_OPTIONS  # these tests run on CPU

    def f(x, w):
        return jnp.sum(jnp.exp(x @ w), axis=-1)

    args = (jnp.ones((64, 64)), jnp.ones((64, 64)))
    # (jax 0.10's default puts the exp and the reduce into the dot's YNNPACK fusion too)
    tuned = _ynn_fusion_bodies(jax.jit(f, compiler_options=opts).lower(*args).compile().as_text())
    assert tuned and all(" dot(" in b and " reduce(" not in b for b in tuned)
    np_default = jax.jit(f)(*args)
    np_tuned = jax.jit(f, compiler_options=opts)(*args)
    assert jnp.allclose(np_default, np_tuned)


def test_no_options_off_cpu_or_where_xla_rejects_them(monkeypatch):
    assert xla_options.compiler_options("gpu") is None
    monkeypatch.setattr(xla_options, "CPU_OPTIONS", {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_TYPE"})
    xla_options._cpu_options_accepted.cache_clear()
    try:
        assert xla_options.compiler_options() is None
    finally:
        xla_options._cpu_options_accepted.cache_clear()
