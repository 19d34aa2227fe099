import textwrap

import jax
import jax.numpy as jnp
import pytest

from siamgpt_jax.model.config import Qwen3Config
from siamgpt_jax.layout.compiled import bench_layouts, compile_report, count_collectives
from siamgpt_jax.parallel.mesh import MeshConfig
from siamgpt_jax.sharding import named_sharding
from siamgpt_jax.train.spec import StepSpec

TINY = Qwen3Config(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_window_layers=2)


def mlp_step_factory(model_config, mesh, rules, spec: StepSpec):
    """A small but real sharded train step (scan over layers of a SiLU MLP, SGD), honouring the
    step_factory contract, so the compile/bench machinery is tested without the SFT step."""
    L, D, F = model_config.num_hidden_layers, model_config.hidden_size, model_config.intermediate_size
    dt = jnp.dtype(spec.param_dtype)
    seq_len, global_batch = spec.seq_len, spec.global_batch

    def abstract(shape, axes, dtype):
        return jax.ShapeDtypeStruct(shape, dtype, sharding=named_sharding(axes, shape, mesh, rules))

    state = {"up": abstract((L, D, F), ("layers", "embed", "mlp"), dt),
             "down": abstract((L, F, D), ("layers", "mlp", "embed"), dt)}
    batch = {"x": abstract((global_batch, seq_len, D), ("batch", "seq", "act_embed"), jnp.float32)}

    def loss_fn(params, x):
        def layer(h, w):
            return h + jax.nn.silu(h @ w[0]) @ w[1], None
        h, _ = jax.lax.scan(jax.checkpoint(layer), x, (params["up"], params["down"]))
        return jnp.mean(h ** 2)

    def step(params, b):
        loss, grads = jax.value_and_grad(loss_fn)(params, b["x"])
        return jax.tree.map(lambda p, g: p - 0.01 * g, params, grads), {"loss": loss}

    return step, (state, batch)


def test_count_collectives_weights_loop_bodies_by_trip_count():
    hlo = textwrap.dedent("""\
        HloModule m

        %body (p: (s32[], f32[8])) -> (s32[], f32[8]) {
          %all-gather.1 = f32[16,4]{1,0} all-gather(%x), dimensions={0}
          %ags = (f32[2,4]{1,0}, f32[16,4]{1,0}) all-gather-start(%y), dimensions={0}
          %agd = f32[16,4]{1,0} all-gather-done(%ags)
        }

        %cond (p: (s32[], f32[8])) -> pred[] {
          ROOT %c = pred[] constant(true)
        }

        ENTRY %main (a: f32[8]) -> f32[8] {
          %w = (s32[], f32[8]) while(%t), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"5"}}
          %rs = bf16[4]{0} reduce-scatter(%a), dimensions={0}
          ROOT %ar = f32[8]{0} all-reduce(%a), to_apply=%add
        }
        """)
    c = count_collectives(hlo)
    assert c["all-gather"] == {"count": 2, "executed": 10, "bytes": 5 * (16 * 4 * 4) * 2}
    assert c["reduce-scatter"] == {"count": 1, "executed": 1, "bytes": 8}
    assert c["all-reduce"]["bytes"] == 32 and c["all-to-all"]["count"] == 0


@pytest.mark.parametrize("layout, gathers", [({"data": 1, "fsdp": 8}, True), ({"data": 8}, False)])
def test_compile_report_on_virtual_devices(layout, gathers):
    r = compile_report(TINY, MeshConfig(**layout), StepSpec(seq_len=8, global_batch=8, compute_dtype="float32"),
                       step_factory=mlp_step_factory)
    xm, coll = r["xla_memory_bytes"], r["xla_collectives"]
    params_per_device = 2 * 2 * 64 * 128 * 4 // (8 if gathers else 1)
    assert xm["argument"] >= params_per_device and xm["peak_estimate"] > 0
    assert (coll["all-gather"]["count"] > 0) == gathers
    assert coll["all-reduce"]["count"] + coll["reduce-scatter"]["count"] > 0  # grads are reduced
    assert r["planner_memory_bytes"]["total"] > 0 and r["memory_ratio_planner_over_xla"] > 0
    assert r["mesh"]["fsdp"] == layout.get("fsdp", 1)


def test_bench_layouts_side_by_side():
    w = StepSpec(seq_len=8, global_batch=8, compute_dtype="float32")
    res = bench_layouts(TINY, [MeshConfig(data=8), MeshConfig(data=2, fsdp=4)], w, steps=2, warmup=1,
                        step_factory=mlp_step_factory, log=lambda s: None)
    assert [r["mesh"]["fsdp"] for r in res] == [1, 4]
    assert min(r["relative_to_fastest"] for r in res) == 1.0
    assert all(r["median_step_s"] > 0 for r in res)


def test_compile_report_with_the_real_train_step():
    r = compile_report(TINY, MeshConfig(data=2, fsdp=4), StepSpec(seq_len=16, global_batch=8, compute_dtype="float32",
                                                                   attention="xla"))
    assert r["xla_collectives"]["all-gather"]["count"] > 0
    assert 0.5 < r["memory_ratio_planner_over_xla"] < 2.0
