import itertools

import pytest

from siamgpt_jax.model.config import Qwen3Config, param_count, param_logical_axes, param_shapes
from siamgpt_jax.parallel.mesh import MeshConfig
from siamgpt_jax.config import parse_size
from siamgpt_jax.layout.planner import Hardware, candidate_layouts, plan_all, plan_layout
from siamgpt_jax.train.spec import StepSpec

# 106,880 params: 106,496 in matrices (all carry `embed`, so FSDP splits them) + 384 in norms.
TINY = Qwen3Config(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=False,
                   max_window_layers=2)
W = StepSpec(seq_len=16, global_batch=8, param_dtype="float32", compute_dtype="float32", remat="full",
             attention="cudnn")
HW = Hardware()


def test_logical_axes_table_matches_shapes():
    shapes, axes = param_shapes(TINY), param_logical_axes(TINY)
    assert set(shapes) == set(axes)
    assert all(len(shapes[k]) == len(axes[k]) for k in shapes)
    assert param_count(TINY) == 106_880


def test_fsdp8_vs_data8_params_grads_optimizer_by_hand():
    fsdp = plan_layout(TINY, MeshConfig(data=1, fsdp=8), W, HW, 8)
    local = 106_496 // 8 + 384  # matrices split 8 ways, norms replicated
    assert fsdp.memory["params"] == local * 4 == 54_784
    assert fsdp.memory["grads"] == 54_784
    assert fsdp.memory["optimizer"] == 2 * local * 4 == 109_568
    data = plan_layout(TINY, MeshConfig(data=8), W, HW, 8)
    assert data.memory["params"] == 106_880 * 4
    assert data.memory["optimizer"] == 2 * 106_880 * 4
    assert data.memory["gathered_weights"] == 0
    # tensor=2 halves every matrix (vocab, heads, kv heads, mlp all divide by 2)
    tp = plan_layout(TINY, MeshConfig(data=4, tensor=2), W, HW, 8)
    assert tp.memory["params"] == (106_496 // 2 + 384) * 4


def test_micro_batching_adds_a_grad_accumulator():
    p = plan_layout(TINY, MeshConfig(data=8), StepSpec(seq_len=16, global_batch=16, micro_batches=2), HW, 8)
    assert p.memory["grads"] == 2 * 106_880 * 4


def test_collective_bytes_by_hand():
    fsdp = plan_layout(TINY, MeshConfig(data=1, fsdp=8), W, HW, 8).collective_bytes()
    shard = 106_496 // 8 * 4
    assert fsdp["all-gather"] == 2 * shard * 7  # forward + backward, ring: (n-1) shards in
    assert fsdp["reduce-scatter"] == shard * 7
    assert fsdp["all-reduce"] == pytest.approx(2 * 384 * 4 * 7 / 8)  # replicated norms
    data = plan_layout(TINY, MeshConfig(data=8), W, HW, 8).collective_bytes()
    assert set(data) == {"all-reduce"} and data["all-reduce"] == pytest.approx(2 * 106_880 * 4 * 7 / 8)
    tp = plan_layout(TINY, MeshConfig(data=4, tensor=2), W, HW, 8)
    resid = (8 // 4) * 16 * 64 * 4  # tokens per device x hidden x fp32
    # an all-reduce of the residual over 2 devices sends 2 * resid * (2-1)/2 = resid bytes.
    # per layer: o_proj + down_proj, each in forward, full-remat replay and backward = 6;
    # plus embedding forward and lm_head input-grad backward = 2. Two layers: 2*6 + 2 = 14.
    tp_rows = [c for c in tp.collectives if c.axis == "tensor"]
    assert len(tp_rows) == 1 and not tp_rows[0].overlapped
    assert tp_rows[0].bytes == 14 * resid
    seq = plan_layout(TINY, MeshConfig(data=4, sequence=2), W, HW, 8).collective_bytes()
    kv_local = 2 * 8 * 2 * 16 * 4  # [batch 2, seq 8, kv 2, head_dim 16] fp32
    # 2 layers x (forward, full-remat replay, backward dK/dV) x (K, V) x (n-1)=1 ring hops
    assert seq["collective-permute"] == 2 * 3 * 2 * kv_local


def test_activations_and_logits_by_hand():
    p = plan_layout(TINY, MeshConfig(data=8), W, HW, 8)
    assert p.tokens_per_device == 16
    saved = 2 * 16 * 64 * 4  # full remat: each of 2 layers keeps its input
    # every layer reads the RoPE tables: cos and sin [B=1, S=16, Dh=16] fp32
    per_step = 2 * 16 * 16 * 4
    # one layer rebuilt for backward: 6 [B,S,D] (input, 2 norms, o_proj, residual, down_proj),
    # 4 q-sized (proj, norm, rope, attention out), 4 kv-sized, 3 mlp-sized (gate, up, sigmoid; XLA
    # computes the hidden inside the backward's fusions), one fp32 rsqrt per normalised row
    # ([1,16,1] x 2 norms, [1,16,4,1], [1,16,2,1]) and the lse
    stats = 2 * 16 * 4 + 16 * 4 * 4 + 16 * 2 * 4
    working = 6 * 4096 + 4 * 4096 + 4 * 2048 + 3 * 8192 + stats + 4 * 16 * 4  # = 74,496
    # MLP backward: 2 [B,S,D] cotangents (4,096 B each) + 5 [B,S,F] cotangents and the hidden
    # rebuilt for the down projection's weight grad (16 x 128 x 4 = 8,192 B each)
    backward = 2 * 4096 + 6 * 8192  # = 57,344
    assert p.memory["activations"] == saved + per_step + working + backward == 142_080
    # fused loss, one chunk = all 16 tokens: fp32 logits + fp32 exp + fp32 dlogits over 256 vocab,
    # dh [1,16,64] fp32 and dW [64,256] fp32 = 49,152 + 4,096 + 65,536 = 118,784 < the layer's
    # 74,496 + 57,344 = 131,840, so the loss adds nothing to the peak
    loss_phase = 16 * 256 * (4 + 4 + 4) + 16 * 64 * 4 + 64 * 256 * 4
    assert loss_phase == 118_784 and p.memory["logits"] == 0
    assert p.memory["total"] == sum(p.memory[k] for k in ("params", "grads", "optimizer", "activations",
                                                          "logits", "gathered_weights"))
    none = plan_layout(TINY, MeshConfig(data=8), StepSpec(seq_len=16, global_batch=8, param_dtype="float32",
                                                          compute_dtype="float32", remat="none", kernels="cpu"), HW, 8)
    # no remat: every layer keeps 4 [B,S,D] (input, 2 norms, residual), 3 q-sized (proj, rope,
    # attention out), 3 kv-sized (k proj, k rope, v), 2 mlp-sized (gate, up), the rsqrt per row
    # and the lse: the norms and the MLP end keep only their inputs (model/cpu_kernels.py).
    # The layer backward copies the saved tensors it feeds to matmuls out of the stacks (all but
    # the mlp-sized ones, read in place) and has the MLP backward
    kept = 4 * 4096 + 3 * 4096 + 3 * 2048 + 2 * 8192 + stats + 4 * 16 * 4  # = 51,968
    sliced = kept - 2 * 8192  # = 35,584
    assert none.memory["activations"] == 2 * kept + per_step + sliced + backward == 198_912
    # the loss phase (118,784) exceeds that layer phase (92,928) by 25,856
    assert none.memory["logits"] == 118_784 - (sliced + backward) == 25_856
    # chunk of 4 tokens: 4 x 256 x 12 + 4,096 + 65,536 = 81,920, under the layer phase
    chunked = plan_layout(TINY, MeshConfig(data=8), StepSpec(seq_len=16, global_batch=8, compute_dtype="float32",
                                                             remat="none", loss_chunk=4, kernels="cpu"), HW, 8)
    assert chunked.memory["logits"] == 0 and chunked.memory["activations"] == none.memory["activations"]
    xla = plan_layout(TINY, MeshConfig(data=8), StepSpec(seq_len=16, global_batch=8, compute_dtype="float32",
                                                         remat="none", attention="xla", kernels="cpu"), HW, 8)
    # per layer: [B,H,S,S] scores + probs (fp32) and the softmax's row max and sum [1,4,16] x 2
    # (fp32) instead of the lse, kept and sliced alike; once per step the [B,H,S,S] bool mask
    per_layer = 4 * 16 * 16 * (4 + 4) + 4 * 16 * 2 * 4 - 4 * 16 * 4
    assert xla.memory["activations"] - none.memory["activations"] == 2 * per_layer + per_layer + 4 * 16 * 16
    # chunked keeps what flash keeps; its backward adds one query block's fp32 probabilities:
    # [1, 4, block 16, 16] x 4
    chunk = plan_layout(TINY, MeshConfig(data=8), StepSpec(seq_len=16, global_batch=8, compute_dtype="float32",
                                                           remat="none", attention="chunked", kernels="cpu"), HW, 8)
    assert chunk.memory["activations"] - none.memory["activations"] == 4 * 16 * 16 * 4


def test_embedding_table_and_lm_head_terms():
    none = StepSpec(seq_len=16, global_batch=8, param_dtype="float32", compute_dtype="float32", remat="none", kernels="cpu")
    base = plan_layout(TINY, MeshConfig(data=8), none, HW, 8)
    # tied: the loss's dW residual [64, 256] fp32 outlives the layer backward (it joins the
    # embedding grad after it); the loss phase no longer counts it separately
    tied = plan_layout(TINY.replace(tie_word_embeddings=True), MeshConfig(data=8), none, HW, 8)
    assert tied.memory["activations"] - base.memory["activations"] == 64 * 256 * 4
    assert tied.memory["logits"] == 0  # 118,784 - 65,536 < the layer phase
    # FSDP splits the embed dim: the table the gather reads is [256, 64] whole, and its grad (the
    # scatter-add's target, fp32 here) lives through the layer backward; the loss multiplies by a
    # [64, 256] copy of the LM head with D whole
    fsdp = plan_layout(TINY, MeshConfig(data=1, fsdp=8), none, HW, 8)
    assert fsdp.memory["activations"] - base.memory["activations"] == 256 * 64 * 4
    layer_phase = 35_584 + 57_344 + 256 * 64 * 4
    assert fsdp.memory["logits"] == max(0, 118_784 + 64 * 256 * 4 - layer_phase) == 25_856
    # bf16 compute without FSDP: the table and the head are bf16 casts of the fp32 params
    bf16 = plan_layout(TINY, MeshConfig(data=8), StepSpec(seq_len=16, global_batch=8, compute_dtype="bfloat16",
                                                          remat="none", kernels="cpu"), HW, 8)
    half = plan_layout(TINY, MeshConfig(data=8), StepSpec(seq_len=16, global_batch=8, compute_dtype="bfloat16",
                                                          param_dtype="bfloat16", remat="none", kernels="cpu"), HW, 8)
    # (and, without remat, the layers' bf16 weight casts kept for the backward: 73,728 x 2 B,
    # test_remat_none_keeps_the_compute_dtype_weight_copies)
    assert bf16.memory["activations"] - half.memory["activations"] == 256 * 64 * 2 + 73_728 * 2


def test_gathered_weights_per_layer_or_per_matrix():
    # FSDP over 8: one layer's matrices gathered, fp32: q 64x64, k 64x32, v 64x32, o 64x64,
    # gate/up 64x128, down 128x64 = 36,864 params = 147,456 B; the largest matrix 8,192 x 4 = 32,768 B
    gpu = plan_layout(TINY, MeshConfig(data=1, fsdp=8), W, HW, 8)
    assert gpu.memory["gathered_weights"] == 2 * 147_456  # next layer prefetched
    cpu = plan_layout(TINY, MeshConfig(data=1, fsdp=8), W, Hardware(weight_gather_buffers=1), 8)
    assert cpu.memory["gathered_weights"] == 147_456  # XLA:CPU: no prefetch, one layer at a time
    one = plan_layout(TINY, MeshConfig(data=1, fsdp=8), W,
                      Hardware(weight_gather_buffers=1, weight_gather_unit="matrix"), 8)
    assert one.memory["gathered_weights"] == 32_768  # the largest matrix only


def test_time_and_fit():
    tight = Hardware(device_memory=1000)
    p = plan_layout(TINY, MeshConfig(data=8), W, tight, 8)
    assert not p.fits and p.memory["total"] > 1000
    roomy = plan_layout(TINY, MeshConfig(data=8), W, HW, 8)
    assert roomy.fits and 0 < roomy.mfu < 1 and roomy.step_s >= roomy.compute_s


def test_candidates_respect_divisibility_and_hosts():
    layouts = candidate_layouts(TINY, W, num_devices=8, num_hosts=2)
    got = {(m.data, m.fsdp, m.tensor, m.sequence, m.dcn.get("data", 1), m.dcn.get("fsdp", 1)) for m in layouts}
    expected = set()
    for d, f, t, s in itertools.product([1, 2, 4, 8], repeat=4):
        if d * f * t * s != 8 or 4 % t or 2 % t or 128 % t or 16 % s or 8 % (d * f) or 4 % (t * s):
            continue
        for hd, hf in ((1, 2), (2, 1)):
            if d % hd == 0 and f % hf == 0:
                expected.add((d, f, t, s, hd, hf))
    assert got == expected and len(got) > 5
    assert all(m.tensor <= 2 for m in layouts)  # 2 KV heads cap tensor parallelism
    plans = plan_all(TINY, W, Hardware(device_memory=1_000_000), 8, 2)
    fits = [p.fits for p in plans]
    assert fits == sorted(fits, reverse=True) and any(fits) and not all(fits)


def test_errors_and_sizes():
    with pytest.raises(ValueError, match="batch=4 is not divisible"):  # micro-batch of 4 over fsdp=8
        plan_layout(TINY, MeshConfig(data=1, fsdp=8), StepSpec(seq_len=16, global_batch=8, micro_batches=2), HW, 8)
    with pytest.raises(ValueError, match="not divisible by micro_batches"):
        StepSpec(seq_len=16, global_batch=9, micro_batches=2)
    with pytest.raises(ValueError, match="remat 'some' is not one of"):
        StepSpec(seq_len=16, global_batch=8, remat="some")
    assert parse_size("80GiB") == 80 * 2**30 and parse_size("450GB/s") == 450e9 and parse_size("1e3") == 1000
    with pytest.raises(ValueError, match="cannot parse size"):
        parse_size("80 parsecs")


def test_plain_autodiff_keeps_more_than_the_cpu_kernels_without_remat():
    """kernels auto (planned as xla, the GPU path) adds what plain autodiff keeps per layer
    (_autodiff_residuals); with a remat policy nothing changes."""
    def plan(kernels, remat):
        return plan_layout(TINY, MeshConfig(data=8), StepSpec(seq_len=16, global_batch=8, compute_dtype="float32",
                                                              remat=remat, kernels=kernels), HW, 8)

    # per layer (B=1, S=16, fp32): two normalised [S, 64] + normalised q [S, 4, 16] and k [S, 2, 16]
    # = 4,096 + 4,096 + 4,096 + 2,048, their second stats 128 + 256 + 128, and four [S, 128] MLP terms
    per_layer = 4_096 * 3 + 2_048 + 128 + 256 + 128 + 4 * 16 * 128 * 4
    assert per_layer == 47_616
    cpu, xla, auto = plan("cpu", "none"), plan("xla", "none"), plan("auto", "none")
    assert auto.memory == xla.memory
    # the non-MLP ones are also sliced out of the stacks in the layer backward (14,848), which
    # the loss phase then exceeds by that much less
    assert xla.memory["activations"] - cpu.memory["activations"] == 2 * per_layer + 14_848
    assert xla.memory["total"] - cpu.memory["total"] == 2 * per_layer
    assert plan("xla", "full").memory == plan("cpu", "full").memory


def test_remat_none_keeps_the_compute_dtype_weight_copies():
    # Without remat the backward reads each layer's weights as cast to the compute dtype, and the
    # forward scan stacks those casts as residuals (seen in the compiled step: bf16[L, ...] stacks
    # shaped like the local weight shards). TINY's layer matrices: 2 layers x (q 4,096 + k 2,048 +
    # v 2,048 + o 4,096 + gate/up/down 3 x 8,192) = 73,728 elements; norms stay fp32, uncast.
    def activations(mesh, param_dtype, remat):
        w = StepSpec(seq_len=16, global_batch=8, param_dtype=param_dtype, compute_dtype="bfloat16", remat=remat)
        return plan_layout(TINY, mesh, w, HW, 8).memory["activations"]

    # without FSDP fp32 params also cost the embedding table's bf16 cast [256, 64] (with FSDP the
    # table is gathered whole in either case): test_embedding_table_and_lm_head_terms
    for mesh, shards, table in ((MeshConfig(data=8), 1, 256 * 64 * 2), (MeshConfig(data=1, fsdp=8), 8, 0)):
        copies = activations(mesh, "float32", "none") - activations(mesh, "bfloat16", "none")
        assert copies == 73_728 // shards * 2 + table
        # a remat policy recasts the weights in the backward: nothing extra is kept
        assert activations(mesh, "float32", "full") - activations(mesh, "bfloat16", "full") == table
