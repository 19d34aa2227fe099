"""Mesh-layout planner: per-device memory, collective traffic and step time of a layout, on paper.

Everything is derived from the model's own shape table (model/config.param_shapes +
param_logical_axes) and the ONE rules table, so a layout the planner likes is exactly the sharding
the trainer will use. The model is a first-order one; docs/MESH.md states every assumption:

* memory: params, grads (plus an accumulator when micro-batching), AdamW's two moments,
  activations saved for backward under the remat policy, plus the larger of a layer's backward
  (its recomputed forward under remat + the MLP cotangents) and the fused loss's chunk work and
  residuals, and the FSDP-gathered weights in flight;
* collectives per step and device, in bytes each device sends (ring algorithms): FSDP all-gathers
  weights twice per micro-batch (forward, backward) and reduce-scatters grads once; axes that split
  tokens but not a weight all-reduce its grads once per step; tensor parallelism all-reduces the
  residual stream; sequence parallelism passes K/V blocks around a ring (collective-permute);
* time: compute at `matmul_efficiency` of peak (recompute included), exposed tensor/sequence
  traffic added, FSDP/data traffic overlapped with compute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

from siamgpt_jax.model.config import (
    DTYPE_NAMES, LAYER_NORM_KEYS, Qwen3Config, attention_block_size, flops_per_token,
    param_logical_axes, param_shapes,
)
from siamgpt_jax.parallel.mesh import MeshConfig, MeshShape, resolve
from siamgpt_jax.sharding import MESH_AXES, Rules, local_shape, logical_to_spec, divisible_spec
from siamgpt_jax.train.spec import StepSpec

# The share of each GPU's memory XLA may allocate (XLA_PYTHON_CLIENT_MEM_FRACTION): `siamgpt-jax
# train` sets it (siamgpt_jax/cli.py) unless the environment already does, and a plan fits when its
# total is within device memory x this fraction. XLA's own default, 0.75, would waste 20 GB of an
# H100; the rest is left to cuDNN/NCCL workspaces and the CUDA context, which XLA does not count.
GPU_MEMORY_FRACTION = 0.92

DTYPE_BYTES = {"float32": 4, "bfloat16": 2}  # per element of each dtype a step spec may name
assert tuple(DTYPE_BYTES) == DTYPE_NAMES
PARTS = ("params", "grads", "optimizer", "activations", "logits", "gathered_weights")
KINDS = ("all-gather", "reduce-scatter", "all-reduce", "collective-permute")


def dtype_bytes(name: str) -> int:
    try:
        return DTYPE_BYTES[name]
    except KeyError:
        raise ValueError(f"unknown dtype '{name}' (known: {', '.join(DTYPE_BYTES)})") from None


@dataclass(frozen=True)
class Hardware:
    device_memory: float = 80 * 2**30  # bytes
    memory_fraction: float = GPU_MEMORY_FRACTION  # of device_memory that XLA may use
    peak_flops: float = 989e12  # dense bf16 FLOP/s per device (H100 SXM)
    ici_bandwidth: float = 450e9  # bytes/s per device, one direction, inside a host (NVLink 4)
    dcn_bandwidth: float = 50e9  # bytes/s per device across hosts (400 Gb/s InfiniBand per GPU)
    matmul_efficiency: float = 0.7  # fraction of peak the matmuls reach
    # FSDP weights gathered at once, in units of `weight_gather_unit`: 2 layers on GPUs/TPUs (the
    # next layer's gather overlaps this layer's compute); XLA:CPU's collectives are synchronous (no
    # prefetch), and its backward peak holds the whole layer's gathered matrices: 1 layer there.
    # "matrix" (the largest one) models a runtime that frees each gather right after its matmul
    weight_gather_buffers: int = 2
    weight_gather_unit: Literal["layer", "matrix"] = "layer"

    @property
    def memory_budget(self) -> float:
        """Bytes a plan may use per device."""
        return self.device_memory * self.memory_fraction

    def __post_init__(self) -> None:
        if not 0 < self.memory_fraction <= 1:
            raise ValueError(f"memory_fraction {self.memory_fraction} is not in (0, 1]")
        if self.weight_gather_unit not in ("layer", "matrix"):
            raise ValueError(f"weight_gather_unit '{self.weight_gather_unit}' is not one of layer, matrix")


@dataclass
class Collective:
    kind: str
    axis: str
    bytes: float  # per device per step
    link: str  # "ici" or "dcn"
    overlapped: bool  # hidden behind compute (weight/grad traffic) or on the critical path
    what: str


@dataclass
class Plan:
    mesh: MeshShape
    memory: dict[str, float]  # bytes per device by part, plus "total"
    collectives: list[Collective]
    compute_s: float
    exposed_comm_s: float
    overlapped_comm_s: float
    step_s: float
    mfu: float
    fits: bool
    tokens_per_device: int  # per micro-batch
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        s, d = self.mesh.shape, self.mesh.dcn
        parts = []
        for n in MESH_AXES:
            if s[n] > 1:
                parts.append(f"{n[0] if n != 'sequence' else 'sq'}{s[n]}" + (f"({d[n]}h)" if d[n] > 1 else ""))
        return " ".join(parts) or "1"

    def collective_bytes(self, by: str = "kind") -> dict[str, float]:
        out: dict[str, float] = {}
        for c in self.collectives:
            key = getattr(c, by)
            out[key] = out.get(key, 0.0) + c.bytes
        return out

    def to_json(self) -> dict:
        return {
            "layout": self.label,
            "mesh": dict(self.mesh.shape),
            "dcn": dict(self.mesh.dcn),
            "memory_bytes": dict(self.memory),
            "collective_bytes_by_kind": {k: self.collective_bytes().get(k, 0.0) for k in KINDS},
            "collective_bytes_by_link": self.collective_bytes("link"),
            "collectives": [asdict(c) for c in self.collectives],
            "compute_s": self.compute_s,
            "exposed_comm_s": self.exposed_comm_s,
            "overlapped_comm_s": self.overlapped_comm_s,
            "step_s": self.step_s,
            "mfu": self.mfu,
            "fits": self.fits,
            "tokens_per_device": self.tokens_per_device,
            "notes": list(self.notes),
        }


def _numel(shape) -> int:
    return math.prod(shape)


def _spec_axes(logical, shape, sizes: Mapping[str, int], rules: Rules) -> set[str]:
    """Mesh axes a tensor is actually split over (after dropping axes that do not divide)."""
    spec = divisible_spec(logical_to_spec(logical, rules, sizes), shape, sizes)
    out: set[str] = set()
    for entry in spec:
        if entry is not None:
            out.update((entry,) if isinstance(entry, str) else entry)
    return out


def planned_kernels(w: StepSpec) -> str:
    """The layer ops a plan assumes: `auto` is planned as `xla`, since plans are for GPUs (as
    `auto` attention is planned as cudnn)."""
    return "xla" if w.kernels == "auto" else str(w.kernels)


def _autodiff_residuals(c: Qwen3Config, w: StepSpec, micro_batch: int):
    """What plain autodiff (the `xla` layer ops, model/layer_ops.py) keeps per layer without remat
    on top of `_activation_tensors`' `none` set, which follows the CPU kernels' hand-written
    backwards: name -> (logical axes, global shape, bytes/elem). Read from the compiled step's
    forward-scan stacks (scaled Qwen3, 8 virtual CPU devices): each RMSNorm also keeps its
    normalised input before the scale and a second per-row fp32 statistic, and the MLP keeps four
    more [B,S,F] tensors (sigmoid(gate), silu(gate), the hidden silu(gate) * up and one more
    factor of the silu derivative) instead of rebuilding them in the backward."""
    B, S, D, F = micro_batch, w.seq_len, c.hidden_size, c.intermediate_size
    H, K, Dh = c.num_attention_heads, c.num_key_value_heads, c.head_dim
    cb = dtype_bytes(w.compute_dtype)
    bsd = ("batch", "seq", "act_embed")
    return {
        "attn_norm_normalised": (bsd, (B, S, D), cb),
        "mlp_norm_normalised": (bsd, (B, S, D), cb),
        "q_norm_normalised": (("batch", "seq", "act_heads", "act_head_dim"), (B, S, H, Dh), cb),
        "k_norm_normalised": (("batch", "seq", "act_kv_heads", "act_head_dim"), (B, S, K, Dh), cb),
        "norm_stats_2": (("batch", "seq", None), (B, S, 2), 4),
        "q_norm_stats_2": (("batch", "seq", "act_heads", None), (B, S, H, 1), 4),
        "k_norm_stats_2": (("batch", "seq", "act_kv_heads", None), (B, S, K, 1), 4),
        "mlp_silu_terms": (("batch", "seq", "act_mlp"), (B, S, 4 * F), cb),
    }


def _activation_tensors(c: Qwen3Config, w: StepSpec, micro_batch: int):
    """Per-layer tensors alive for backward: name -> (logical axes, global shape, bytes/elem, saved_by).

    saved_by lists the remat policies that keep the tensor between forward and backward; a layer
    replayed under remat builds all of them. Without remat the saved ones are the forward layer
    scan's stacked outputs in the compiled step (one [L, ...] buffer each, written by a
    dynamic-update-slice per layer); docs/MESH.md names them.
    """
    B, S, D, F = micro_batch, w.seq_len, c.hidden_size, c.intermediate_size
    H, K, Dh = c.num_attention_heads, c.num_key_value_heads, c.head_dim
    cb = dtype_bytes(w.compute_dtype)
    bsd = (("batch", "seq", "act_embed"), (B, S, D), cb)
    q = (("batch", "seq", "act_heads", "act_head_dim"), (B, S, H, Dh), cb)
    kv = (("batch", "seq", "act_kv_heads", "act_head_dim"), (B, S, K, Dh), cb)
    mlp = (("batch", "seq", "act_mlp"), (B, S, F), cb)
    t = {
        "layer_input": (*bsd, ("none", "dots", "full")),
        "attn_norm": (*bsd, ("none",)),
        "q_proj": (*q, ("none", "dots")),
        "k_proj": (*kv, ("none", "dots")),
        "v_proj": (*kv, ("none", "dots")),
        # Without remat the backward also keeps q/k after RoPE (the attention's inputs), the
        # attention output and the residual after attention. The RMSNorms and the MLP's
        # down_proj(silu(gate) * up) have hand-written backwards (model/cpu_kernels.py) that keep only
        # their inputs and, per normalised row, one fp32 rsqrt; the backward rebuilds the hidden
        # (counted with the MLP backward below). A replayed layer (remat) also builds q/k after
        # their norm and sigmoid(gate) on the way.
        "q_norm": (*q, ()),
        "k_norm": (*kv, ()),
        "q_rope": (*q, ("none",)),
        "k_rope": (*kv, ("none",)),
        "attn_out": (*q, ("none",)),
        "o_proj": (*bsd, ("dots",)),
        "attn_residual": (*bsd, ("none",)),
        "mlp_norm": (*bsd, ("none",)),
        "gate_proj": (*mlp, ("none", "dots")),
        "up_proj": (*mlp, ("none", "dots")),
        "gate_sigmoid": (*mlp, ()),
        "down_proj": (*bsd, ("dots",)),
        # the fp32 rsqrt of each normalised row's mean square, for the four RMSNorms
        "attn_norm_stats": (("batch", "seq", None), (B, S, 1), 4, ("none",)),
        "mlp_norm_stats": (("batch", "seq", None), (B, S, 1), 4, ("none",)),
        "q_norm_stats": (("batch", "seq", "act_heads", None), (B, S, H, 1), 4, ("none",)),
        "k_norm_stats": (("batch", "seq", "act_kv_heads", None), (B, S, K, 1), 4, ("none",)),
    }
    if w.attention == "xla":  # fp32 scores and compute-dtype probabilities, [B, H, S, S]
        scores = ("batch", "act_heads", "seq", None)
        t["attn_scores"] = (scores, (B, H, S, S), 4, ("none",))
        t["attn_probs"] = (scores, (B, H, S, S), cb, ("none",))
        # the softmax's row max and row sum, fp32
        t["softmax_stats"] = (("batch", "act_heads", "seq", None), (B, H, S, 2), 4, ("none",))
    else:  # cudnn (auto) and chunked keep only the log-sum-exp per query
        t["attn_lse"] = (("batch", "act_heads", "seq"), (B, H, S), 4, ("none",))
    return t


def _step_tensors(c: Qwen3Config, w: StepSpec, micro_batch: int):
    """Tensors made once per micro-batch and alive through the whole layer backward (not per layer):
    name -> (logical axes, global shape, bytes/elem)."""
    B, S, D, H, Dh = micro_batch, w.seq_len, c.hidden_size, c.num_attention_heads, c.head_dim
    t = {
        # RoPE cos and sin for every position, fp32 (model/rope.py), read by every layer
        "rope_cos": (("batch", "seq", None), (B, S, Dh), 4),
        "rope_sin": (("batch", "seq", None), (B, S, Dh), 4),
    }
    if w.attention == "xla":  # the segment mask, bool; without remat broadcast over the heads once
        heads = H if w.remat == "none" else 1  # (a replayed layer broadcasts it inside the layer)
        t["attn_mask"] = (("batch", "act_heads", "seq", None), (B, heads, S, S), 1)
    if c.tie_word_embeddings:
        # the fused loss's dW residual (fp32, [D, vocab shard]): with tied embeddings it is summed
        # into the embedding's grad only after the layer backward, so it lives through it
        t["loss_dw_residual"] = ((None, "act_vocab"), (D, c.vocab_size), 4)
    return t


def plan_layout(c: Qwen3Config, mesh_cfg: MeshConfig, w: StepSpec, hw: Hardware,
                num_devices: int, num_hosts: int = 1) -> Plan:
    """Memory, traffic and time of one layout. Raises MeshError/ValueError if it cannot run at all."""
    ms = resolve(mesh_cfg, num_devices, num_hosts)
    sizes, rules = ms.shape, mesh_cfg.rules
    notes: list[str] = []
    pb, cb = dtype_bytes(w.param_dtype), dtype_bytes(w.compute_dtype)
    ob = pb  # AdamW's two moments: optax keeps them in the params' dtype
    micro_batch = w.global_batch // w.micro_batches
    token_axes = _spec_axes(("batch", "seq"), (micro_batch, w.seq_len), sizes, rules)
    for logical, dim in (("batch", micro_batch), ("seq", w.seq_len)):
        want = {a for a in rules.get(logical, ()) if sizes.get(a, 1) > 1}
        got = _spec_axes((logical,), (dim,), sizes, rules)
        if want - got:
            raise ValueError(f"{logical}={dim} is not divisible by mesh axes {sorted(want)} "
                             f"({' x '.join(str(sizes[a]) for a in sorted(want))}); the layout cannot shard it")
    tokens_dev = micro_batch * w.seq_len // math.prod(sizes[a] for a in token_axes)

    # ---- parameters, grads, optimizer -----------------------------------------------------------
    shapes, axes = param_shapes(c), param_logical_axes(c)
    local_params = 0
    collectives: list[Collective] = []
    link = {a: "dcn" if ms.dcn[a] > 1 else "ici" for a in MESH_AXES}
    gathered_layer, gathered_matrix = 0.0, 0.0
    local_layer_matrices = 0  # this device's elements of the stacked layer weights the layer casts
    for name, shape in shapes.items():
        loc = _numel(local_shape(axes[name], shape, sizes, rules))
        local_params += loc
        if name.startswith("layers.") and name.split(".", 1)[1] not in LAYER_NORM_KEYS:
            local_layer_matrices += loc
        split = _spec_axes(axes[name], shape, sizes, rules)
        for a in MESH_AXES:
            n = sizes[a]
            if n == 1 or a not in token_axes:
                continue
            if a in split:  # FSDP-style: gather the weight for use, scatter its grad
                collectives.append(Collective("all-gather", a, 2 * w.micro_batches * loc * pb * (n - 1), link[a], True, name))
                collectives.append(Collective("reduce-scatter", a, w.micro_batches * loc * pb * (n - 1), link[a], True, name))
            else:  # replicated over a token axis: average its grad
                collectives.append(Collective("all-reduce", a, 2 * loc * pb * (n - 1) / n, link[a], True, name))
        fsdp_factor = math.prod(sizes[a] for a in split if a in token_axes)
        if name.startswith("layers.") and fsdp_factor > 1:  # one layer's weights gathered in compute dtype
            one = loc * fsdp_factor / c.num_hidden_layers * cb
            gathered_layer += one
            gathered_matrix = max(gathered_matrix, one)
    memory = {
        "params": local_params * pb,
        "grads": local_params * pb * (2 if w.micro_batches > 1 else 1),
        "optimizer": 2 * local_params * ob,
        "gathered_weights": hw.weight_gather_buffers * (gathered_layer if hw.weight_gather_unit == "layer"
                                                        else gathered_matrix),
    }
    if w.micro_batches > 1:
        notes.append("grads include an accumulator for micro-batching")

    # ---- activations and the loss head ----------------------------------------------------------
    # The step's peak is the larger of two moments, both on top of the per-layer saved activations
    # and the per-step tensors every layer reads (RoPE tables, the attention mask, ...):
    # (a) the backward of a layer: its recomputed forward (remat) or, without remat, the per-layer
    #     copies of its saved tensors the backward body slices out of the scan's stacks, plus the
    #     MLP backward's cotangents;
    # (b) the fused loss's forward: one chunk's logits work plus the residuals it forms for backward.
    def act_bytes(logical, shape, eb) -> float:
        return float(_numel(local_shape(logical, shape, sizes, rules)) * eb)

    tensors = _activation_tensors(c, w, micro_batch).values()
    recomputed = sum(act_bytes(logical, shape, eb) for logical, shape, eb, _ in tensors)
    saved = [(logical, shape, eb) for logical, shape, eb, saved_by in tensors if w.remat in saved_by]
    if w.remat == "none" and planned_kernels(w) == "xla":
        saved += _autodiff_residuals(c, w, micro_batch).values()
    per_layer_saved = sum(act_bytes(logical, shape, eb) for logical, shape, eb in saved)
    # the [B,S,F] MLP residuals are read in place by fused elementwise backward ops; the others
    # feed matmuls and reductions from a per-layer dynamic-slice copy
    sliced = sum(act_bytes(logical, shape, eb) for logical, shape, eb in saved if "act_mlp" not in logical)
    per_step = sum(act_bytes(lg, sh, eb) for lg, sh, eb in _step_tensors(c, w, micro_batch).values())
    if w.remat == "none" and cb != pb:
        # Without remat the backward's matmuls read the compute-dtype copy each layer cast its
        # weights to (model/qwen3.py `_layer`), so the forward scan stacks those copies as
        # residuals, [L, ...] and sharded like the params; a remat policy recasts them instead
        per_step += float(local_layer_matrices * cb)
    L = c.num_hidden_layers
    B, S, D, F = micro_batch, w.seq_len, c.hidden_size, c.intermediate_size
    bsd, bsf = ("batch", "seq", "act_embed"), ("batch", "seq", "act_mlp")
    # MLP backward (read from the compiled step's peak): cotangents of the MLP output and its norm
    # input ([B,S,D]), of the hidden, gate and up, the two products of the silu derivative, and
    # the hidden rebuilt from gate and up for the down projection's weight grad
    backward = 2 * act_bytes(bsd, (B, S, D), cb) + 6 * act_bytes(bsf, (B, S, F), cb)
    # The embedding gather reads a table with the embed dim whole, in compute dtype (model/qwen3.py):
    # where that is not the param shard itself (FSDP splits D, or a dtype cast), the forward gathers
    # it and the backward scatter-adds into a zeroed table of that shape, alive through the layer
    # backward until it is reduce-scattered into the embedding's grad
    emb_local = _numel(local_shape(axes["embed"], shapes["embed"], sizes, rules))
    table_local = _numel(local_shape(("vocab", None), shapes["embed"], sizes, rules))
    table_grad = float(table_local * cb) if (table_local != emb_local or cb != pb) else 0.0
    if w.attention == "chunked":
        # the last query block's backward (it attends to every key): its fp32 probabilities,
        # [B, H, block, S]. XLA fuses the scores, the probability cotangent and the score cotangent
        # into the ops around it; since the backward contracts the block's slabs as they lie
        # (no transposed copies) the compiled step's peak holds that one slab (fit on
        # scripts/compare_planner_xla.py --attention chunked)
        blk = attention_block_size(S)
        backward += act_bytes(("batch", "act_heads", None, "seq"), (B, c.num_attention_heads, blk, S), 4)
    layer_phase = (recomputed if w.remat != "none" else sliced) + backward + table_grad
    # train/loss.py: a scan over chunks of `loss_chunk` tokens per sequence keeps one chunk's fp32
    # logits and fp32 exp(logits - lse), and its dlogits in compute dtype; the residuals for the
    # backward are dh [B,S,D] in compute dtype and dW [D,V] accumulated in fp32; the LM head it
    # multiplies by is a compute-dtype [D, vocab shard] copy with D whole unless the param shard is it
    vocab_local = _numel(local_shape(("act_vocab",), (c.vocab_size,), sizes, rules))
    head = "lm_head" if "lm_head" in shapes else "embed"
    head_local = _numel(local_shape(axes[head], shapes[head], sizes, rules))
    head_copy = float(D * vocab_local * cb) if (head_local != D * vocab_local or cb != pb) else 0.0
    # a chunk spans every row of the device's micro-batch: its share chunk/seq_len of the tokens
    chunk_tokens = tokens_dev * min(1.0, w.loss_chunk / w.seq_len)
    # (with tied embeddings the dW accumulator is the per-step loss_dw_residual, counted above)
    loss_phase = (chunk_tokens * vocab_local * (4 + 4 + cb) + act_bytes(bsd, (B, S, D), cb)
                  + (0.0 if c.tie_word_embeddings else D * vocab_local * 4) + head_copy)
    memory["activations"] = L * per_layer_saved + per_step + layer_phase
    memory["logits"] = max(0.0, loss_phase - layer_phase)  # what the loss adds on top, if anything
    memory = {p: float(memory[p]) for p in PARTS}
    memory["total"] = sum(memory.values())

    # ---- activation collectives (critical path) -------------------------------------------------
    act_axes = set()
    for logical in ("act_heads", "act_mlp", "act_vocab"):
        act_axes |= {a for a in rules.get(logical, ()) if sizes.get(a, 1) > 1 and a not in token_axes}
    resid = tokens_dev * c.hidden_size * cb
    fwd_passes = 2 if w.remat == "full" else 1  # full remat replays the forward reductions
    for a in sorted(act_axes):
        n = sizes[a]
        per_layer = (2 * fwd_passes + 2) * 2 * resid * (n - 1) / n  # o_proj + down_proj, fwd(+replay)+bwd
        head = 2 * 2 * resid * (n - 1) / n  # embedding lookup fwd, lm_head input grad bwd
        collectives.append(Collective("all-reduce", a, w.micro_batches * (L * per_layer + head), link[a], False,
                                      "residual stream (tensor parallel)"))
    for a in sorted(token_axes & {x for x in rules.get("seq", ()) if sizes.get(x, 1) > 1}):
        n = sizes[a]
        kv_local = _numel(local_shape(("batch", "seq", "act_kv_heads", "act_head_dim"),
                                      (micro_batch, w.seq_len, c.num_key_value_heads, c.head_dim), sizes, rules))
        per_layer = (fwd_passes + 1) * 2 * kv_local * cb * (n - 1)  # K and V around the ring; dK, dV back
        collectives.append(Collective("collective-permute", a, w.micro_batches * L * per_layer, link[a], False,
                                      "K/V ring (sequence parallel)"))

    # ---- time ------------------------------------------------------------------------------------
    fwd = flops_per_token(c, w.seq_len, training=False)
    attn_fwd = fwd - flops_per_token(c, 0, training=False)
    recompute = {"none": 0.0, "dots": attn_fwd, "full": fwd}[w.remat]
    tokens_step = w.global_batch * w.seq_len
    model_flops = flops_per_token(c, w.seq_len) * tokens_step
    hw_flops_dev = (3 * fwd + recompute) * tokens_step / num_devices
    compute_s = hw_flops_dev / (hw.peak_flops * hw.matmul_efficiency)
    bw = {"ici": hw.ici_bandwidth, "dcn": hw.dcn_bandwidth}
    exposed = sum(x.bytes / bw[x.link] for x in collectives if not x.overlapped)
    overlapped = sum(x.bytes / bw[x.link] for x in collectives if x.overlapped)
    step_s = compute_s + exposed + max(0.0, overlapped - compute_s)
    mfu = model_flops / (step_s * num_devices * hw.peak_flops)
    return Plan(ms, memory, collectives, compute_s, exposed, overlapped, step_s, mfu,
                memory["total"] <= hw.memory_budget, tokens_dev, notes)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def candidate_layouts(c: Qwen3Config, w: StepSpec, num_devices: int, num_hosts: int = 1,
                      rules: Rules | None = None) -> list[MeshConfig]:
    """Every data x fsdp x tensor x sequence factorisation that can run this model and batch.

    tensor must divide the query heads, KV heads and MLP width; sequence the sequence length;
    data*fsdp the micro-batch. tensor and sequence stay inside a host (their traffic is on the
    critical path); the hosts are split over data and fsdp in every way that divides.
    """
    if num_devices % num_hosts:
        raise ValueError(f"{num_devices} devices cannot be split evenly over {num_hosts} hosts")
    per_host = num_devices // num_hosts
    micro_batch = w.global_batch // w.micro_batches
    extra = {} if rules is None else {"rules": dict(rules)}
    out = []
    for tensor in _divisors(per_host):
        if c.num_attention_heads % tensor or c.num_key_value_heads % tensor or c.intermediate_size % tensor:
            continue
        for sequence in _divisors(per_host // tensor):
            if w.seq_len % sequence:
                continue
            rest = num_devices // (tensor * sequence)
            for fsdp in _divisors(rest):
                data = rest // fsdp
                if micro_batch % (data * fsdp):
                    continue
                for dcn_data in _divisors(num_hosts):
                    dcn_fsdp = num_hosts // dcn_data
                    if data % dcn_data or fsdp % dcn_fsdp:
                        continue
                    dcn = {k: v for k, v in (("data", dcn_data), ("fsdp", dcn_fsdp)) if v > 1}
                    out.append(MeshConfig(data=data, fsdp=fsdp, tensor=tensor, sequence=sequence, dcn=dcn, **extra))
    return out


def plan_all(c: Qwen3Config, w: StepSpec, hw: Hardware, num_devices: int, num_hosts: int = 1,
             rules: Rules | None = None) -> list[Plan]:
    """Plans of every candidate layout: those that fit first, then fastest first."""
    plans = [plan_layout(c, m, w, hw, num_devices, num_hosts)
             for m in candidate_layouts(c, w, num_devices, num_hosts, rules)]
    return sorted(plans, key=lambda p: (not p.fits, p.step_s, p.memory["total"]))
