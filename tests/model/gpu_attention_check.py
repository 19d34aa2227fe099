"""GPU-only check of the fused (cuDNN) attention path; not collected by pytest (needs a GPU).

Run: PYTHONPATH=. python3 tests/model/gpu_attention_check.py [OUT_JSON]
Checks, each on its own so one failure is reported and the rest still run: cuDNN compiles at the
training shapes (batch 2, seq 4096, packed segments, forward and backward) and 'auto' picks it for
bf16, and which cuDNN call it settles on (`packed`: segments as lengths and offsets, no [S, S] mask;
`dense`: a segment mask); each cuDNN call (packed, dense, and packed with more segments than its
slots, which takes the dense call) and the chunked path match the XLA reference (outputs and
gradients) with packed segments; packed == separate runs under cuDNN; and fwd+bwd times of the
three. Exits 1 if any failed.
"""

import json
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from siamgpt_jax.model import attention as attn
from siamgpt_jax.model.config import Qwen3Config
from siamgpt_jax.model.qwen3 import init_model

report = {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
          "failed": []}


def check(name):
    """Run one named check; record its failure (with the traceback's last lines) and go on."""
    def wrap(fn):
        try:
            fn()
            report.setdefault("passed", []).append(name)
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the others
            report["failed"].append({"check": name, "error": f"{type(e).__name__}: {e}"[:1500],
                                     "where": traceback.format_exc().splitlines()[-4:]})
            print(f"FAILED {name}: {type(e).__name__}: {e}"[:500], flush=True)
        return fn
    return wrap


assert report["backend"] == "gpu", report
rng = np.random.RandomState(0)
B, S, H, K, Dh = 2, 512, 8, 2, 128
q, k, v = (jnp.asarray(rng.randn(B, S, h, Dh), jnp.bfloat16) for h in (H, K, K))
segs = jnp.asarray(np.concatenate([np.full((B, 300), 1), np.full((B, 200), 2), np.zeros((B, 12))], 1), jnp.int32)


@check("cudnn_compiles_at_training_shapes")
def _():
    # Qwen3-1.7B's heads at the paper's sequence length, packed: what the train step will ask for.
    assert attn.cudnn_compiles(jnp.dtype(jnp.bfloat16), 128, 16, 8, 2, 4096, True), "see the warning above"
    assert attn.resolve("auto", jnp.zeros((2, 4096, 16, 128), jnp.bfloat16), 8, packed=True) == "cudnn"
    # "packed" (segments as lengths and offsets, no [S, S] mask) is the aim; "dense" is the fallback
    report["cudnn_variant_at_training_shapes"] = attn.cudnn_variant(jnp.dtype(jnp.bfloat16), 128, 16, 8, 2, 4096, True)


@check("cudnn_compiles_at_test_shapes")
def _():
    assert attn.cudnn_compiles(jnp.dtype(jnp.bfloat16), Dh, H, K, B, S, True), "see the warning above"
    assert attn.resolve("auto", q, K) == "cudnn"


def run(impl, segs=segs):
    def f(q, k, v):
        if impl == "cudnn_packed":
            out = attn.packed_cudnn_attention(q, k, v, segs, scale=Dh**-0.5)
        elif impl == "cudnn_dense":
            out = attn.fused_attention(q, k, v, segs, scale=Dh**-0.5)
        else:
            out = attn.attention(q, k, v, segs, scale=Dh**-0.5, impl=impl)
        return jnp.sum(out.astype(jnp.float32) ** 2), out
    (l, out), g = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))(q, k, v)
    return out.astype(jnp.float32), [x.astype(jnp.float32) for x in g]


o_x, g_x = run("xla")


@check("cudnn_matches_xla")
def _():
    o_c, g_c = run("cudnn")
    report["attn_out_maxdiff"] = float(jnp.abs(o_x - o_c).max())
    report["attn_grad_rel_maxdiff"] = [float(jnp.abs(a - b).max() / (jnp.abs(a).max() + 1e-6)) for a, b in zip(g_x, g_c)]
    assert report["attn_out_maxdiff"] < 0.05, report["attn_out_maxdiff"]
    assert max(report["attn_grad_rel_maxdiff"]) < 0.05, report["attn_grad_rel_maxdiff"]


def _close(name, o, g, o_ref=None, g_ref=None):
    o_ref, g_ref = (o_x, g_x) if o_ref is None else (o_ref, g_ref)
    report[f"{name}_out_maxdiff"] = float(jnp.abs(o_ref - o).max())
    report[f"{name}_grad_rel_maxdiff"] = [float(jnp.abs(a - b).max() / (jnp.abs(a).max() + 1e-6)) for a, b in zip(g_ref, g)]
    assert report[f"{name}_out_maxdiff"] < 0.05, report[f"{name}_out_maxdiff"]
    assert max(report[f"{name}_grad_rel_maxdiff"]) < 0.05, report[f"{name}_grad_rel_maxdiff"]


@check("packed_cudnn_matches_xla")
def _():
    _close("packed_cudnn", *run("cudnn_packed"))


@check("dense_cudnn_matches_xla")
def _():
    _close("dense_cudnn", *run("cudnn_dense"))


@check("packed_cudnn_with_too_many_segments_takes_the_dense_call")
def _():
    many = jnp.asarray(np.repeat(np.arange(1, S // 4 + 1), 4)[None].repeat(B, 0), jnp.int32)  # S/4 > 64 runs
    assert not bool(jnp.all(attn.packed_segments(many, attn.PACKED_MAX_SEGMENTS)[2]))
    _close("packed_cudnn_overflow", *run("cudnn_packed", many), *run("xla", many))


@check("chunked_matches_xla")
def _():
    o_k, g_k = run("chunked")  # the fallback when cuDNN does not compile
    report["chunked_attn_out_maxdiff"] = float(jnp.abs(o_x - o_k).max())
    report["chunked_attn_grad_rel_maxdiff"] = [float(jnp.abs(a - b).max() / (jnp.abs(a).max() + 1e-6))
                                               for a, b in zip(g_x, g_k)]
    assert report["chunked_attn_out_maxdiff"] < 0.05, report["chunked_attn_out_maxdiff"]
    assert max(report["chunked_attn_grad_rel_maxdiff"]) < 0.05, report["chunked_attn_grad_rel_maxdiff"]


cfg = Qwen3Config(vocab_size=1024, hidden_size=1024, intermediate_size=3072, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=2, head_dim=128)
model = init_model(cfg, remat="dots")
ids = jnp.asarray(rng.randint(0, 1024, (B, S)), jnp.int32)
pos = jnp.asarray(np.concatenate([np.arange(300), np.arange(200), np.arange(12)])[None].repeat(B, 0), jnp.int32)


def logits_for(impl, ids_, pos_, segs_):
    m = nnx.merge(*nnx.split(model))
    m.attention = impl
    return nnx.jit(lambda m, a, b, c: m(a, b, c))(m, ids_, pos_, segs_)


@check("model_auto_matches_xla_and_packed_equals_alone")
def _():
    lx = logits_for("xla", ids, pos, segs)
    lc = logits_for("auto", ids, pos, segs)
    report["model_logits_maxdiff_auto_vs_xla"] = float(jnp.abs(lx - lc).max())
    report["model_logits_absmax"] = float(jnp.abs(lx).max())
    alone = logits_for("cudnn", ids[:, 300:500], pos[:, 300:500], None)
    report["packed_vs_alone_maxdiff_cudnn"] = float(jnp.abs(lc[:, 300:500] - alone).max())
    tol = 0.1 * report["model_logits_absmax"] + 0.05
    assert report["model_logits_maxdiff_auto_vs_xla"] < tol, report["model_logits_maxdiff_auto_vs_xla"]
    assert report["packed_vs_alone_maxdiff_cudnn"] < tol, report["packed_vs_alone_maxdiff_cudnn"]


def step_time(impl, S2=2048, B2=4, reps=10):
    m = nnx.merge(*nnx.split(model))
    m.attention = impl
    ids2 = jnp.asarray(rng.randint(0, 1024, (B2, S2)), jnp.int32)
    seg2 = jnp.asarray(np.repeat(np.arange(1, 5), S2 // 4)[None].repeat(B2, 0), jnp.int32)

    @nnx.jit
    def step(m):
        return nnx.value_and_grad(lambda m: jnp.mean(jax.nn.logsumexp(m(ids2, None, seg2), -1)))(m)

    jax.block_until_ready(step(m))
    t = time.perf_counter()
    for _ in range(reps):
        out = step(m)
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / reps


for impl in ("xla", "cudnn", "chunked"):
    check(f"step_time_{impl}")(lambda impl=impl: report.__setitem__(f"step_s_{impl}", step_time(impl)))


def attention_time(fn, S2=4096, B2=2, heads=(16, 8), reps=10):
    """fwd+bwd of one attention call at Qwen3-1.7B's heads, 8 packed segments a row."""
    q2, k2, v2 = (jnp.asarray(rng.randn(B2, S2, h, 128), jnp.bfloat16) for h in (heads[0], heads[1], heads[1]))
    seg2 = jnp.asarray(np.repeat(np.arange(1, 9), S2 // 8)[None].repeat(B2, 0), jnp.int32)
    f = jax.jit(jax.grad(lambda q, k, v: jnp.sum(fn(q, k, v, seg2, scale=128**-0.5).astype(jnp.float32)),
                         argnums=(0, 1, 2)))
    jax.block_until_ready(f(q2, k2, v2))
    t = time.perf_counter()
    for _ in range(reps):
        out = f(q2, k2, v2)
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / reps


# the two cuDNN calls side by side: segments as lengths and offsets vs a [B, 1, S, S] mask
for name, fn in (("packed", attn.packed_cudnn_attention), ("dense", attn.fused_attention),
                 ("chunked", attn.chunked_attention)):
    check(f"attention_time_{name}")(
        lambda name=name, fn=fn: report.__setitem__(f"attention_fwd_bwd_s_{name}_seq4096", attention_time(fn)))
for impl in ("cudnn", "chunked"):
    if f"step_s_{impl}" in report and "step_s_xla" in report:
        report[f"{impl}_over_xla"] = report[f"step_s_{impl}"] / report["step_s_xla"]
print(json.dumps(report, indent=2))
if len(sys.argv) > 1:
    open(sys.argv[1], "w").write(json.dumps(report, indent=2))
print("GPU ATTENTION CHECK " + ("OK" if not report["failed"] else f"FAILED: {[f['check'] for f in report['failed']]}"))
sys.exit(1 if report["failed"] else 0)
