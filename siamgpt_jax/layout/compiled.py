"""AOT-compile a train step for a layout and report what XLA made of it, next to the planner.

The step is the trainer's real SFT step for a StepSpec (`siamgpt_jax.train.aot.lower_train_step`),
or any factory with this contract (`step_factory=`):

    step_factory(model_config, mesh, rules, spec: StepSpec) -> (step_fn, (state, batch))

where step_fn(state, batch) -> (new_state, metrics) is jittable (or already jitted) and
state/batch are pytrees of jax.ShapeDtypeStruct carrying their NamedSharding. Any function with
that contract can be passed as `step_factory` (benchmarks of other steps, tests).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from siamgpt_jax.layout.planner import KINDS, Hardware, plan_layout
from siamgpt_jax.model.config import Qwen3Config
from siamgpt_jax.parallel.mesh import MeshConfig, make_mesh
from siamgpt_jax.train.aot import lower_train_step
from siamgpt_jax.train.spec import StepSpec

HLO_KINDS = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
_ELEM_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4,
               "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16, "f8e4m3fn": 1, "f8e5m2": 1}
_SHAPE = re.compile(r"\b(" + "|".join(_ELEM_BYTES) + r")\[([\d,]*)\]")
_HEADER = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s*\(.*\)\s*->\s*.*\{\s*$")
_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.*?)\s(" + "|".join(HLO_KINDS) + r")(-start)?\(")
_CALLED = re.compile(r"\b(?:body|condition|calls|to_apply|true_computation|false_computation)=%?([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_TRIP = re.compile(r'"known_trip_count"\s*:\s*\{\s*"n"\s*:\s*"?(\d+)')


def _shape_bytes(text: str) -> list[int]:
    out = []
    for dtype, dims in _SHAPE.findall(text):
        out.append(_ELEM_BYTES[dtype] * math.prod(int(d) for d in dims.split(",") if d))
    return out


def count_collectives(hlo_text: str) -> dict[str, dict[str, float]]:
    """Collectives in optimized HLO text: per kind, static `count`, and `executed`/`bytes` weighted
    by while-loop trip counts (a scan over layers runs its body once per layer).

    Bytes are the size of each op's result (for async `-start` ops, the output half of the tuple).
    """
    comps: dict[str, list[str]] = {}
    entry, current = None, None
    for line in hlo_text.splitlines():
        m = _HEADER.match(line)
        if m and not line.startswith((" ", "\t")):
            current = m.group(1)
            comps[current] = []
            if line.startswith("ENTRY"):
                entry = current
        elif current is not None and line.startswith((" ", "\t")):
            comps[current].append(line)
    # multiplier of each computation = product of enclosing while trip counts
    mult: dict[str, int] = {}

    def visit(name: str, factor: int) -> None:
        if name not in comps or mult.get(name, 0) >= factor:
            return
        mult[name] = factor
        for line in comps[name]:
            trip = _TRIP.search(line)
            is_while = " while(" in line
            called = _CALLED.findall(line)
            b = _BRANCHES.search(line)
            if b:
                called += [c.strip().lstrip("%") for c in b.group(1).split(",")]
            for c in called:
                visit(c, factor * (int(trip.group(1)) if is_while and trip else 1))

    if entry is None:  # not a module dump: count every line once
        comps = {"_": hlo_text.splitlines()}
        entry = "_"
    visit(entry, 1)
    out = {k: {"count": 0, "executed": 0, "bytes": 0.0} for k in HLO_KINDS}
    for name, lines in comps.items():
        factor = mult.get(name, 1)
        for line in lines:
            m = _INSTR.match(line)
            if not m:
                continue
            shape_text, kind, is_async = m.groups()
            sizes = [s for s in _shape_bytes(shape_text)]
            if is_async and len(sizes) > 1:
                sizes = [s for s in sizes if s > 4] or sizes  # drop u32[] sync flags
                sizes = sizes[len(sizes) // 2:]  # (inputs..., outputs...)
            out[kind]["count"] += 1
            out[kind]["executed"] += factor
            out[kind]["bytes"] += factor * sum(sizes)
    return out


def memory_stats(compiled) -> dict[str, float]:
    """XLA's per-device memory analysis, with `peak_estimate` = arguments + outputs - aliased + temp."""
    ma = compiled.memory_analysis()
    if ma is None:
        return {}
    stats = {
        "argument": float(ma.argument_size_in_bytes),
        "output": float(ma.output_size_in_bytes),
        "alias": float(ma.alias_size_in_bytes),
        "temp": float(ma.temp_size_in_bytes),
        "generated_code": float(ma.generated_code_size_in_bytes),
    }
    stats["peak_estimate"] = stats["argument"] + stats["output"] - stats["alias"] + stats["temp"]
    return stats


def lower_step(model_config: Qwen3Config, mesh_cfg: MeshConfig, w: StepSpec, *, devices=None,
               num_hosts: int | None = None, step_factory: Callable | None = None):
    """(mesh, lowered step, abstract state, abstract batch) for a layout.

    Uses `step_factory` if given, else the trainer's train.aot.lower_train_step (the real SFT step,
    lowered from abstract shapes).
    """
    import jax

    mesh = make_mesh(mesh_cfg, devices, num_hosts)
    if step_factory is not None:
        fn, (state, batch) = step_factory(model_config, mesh, mesh_cfg.rules, w)
        jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
        return mesh, jitted.lower(state, batch), state, batch
    ls = lower_train_step(model_config, mesh, mesh_cfg.rules, w)
    return mesh, ls.lowered, ls.abstract_state, ls.abstract_batch


def compile_report(model_config: Qwen3Config, mesh_cfg: MeshConfig, w: StepSpec, *,
                   devices: Sequence[Any] | None = None, num_hosts: int | None = None,
                   hardware: Hardware | None = None, step_factory: Callable | None = None) -> dict:
    """AOT-compile the step `w` describes for `mesh_cfg`; XLA's numbers next to the planner's."""
    t0 = time.perf_counter()
    mesh, lowered, _, _ = lower_step(model_config, mesh_cfg, w, devices=devices, num_hosts=num_hosts,
                                     step_factory=step_factory)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    xla_mem = memory_stats(compiled)
    collectives = count_collectives(compiled.as_text())
    hosts = num_hosts or len({d.process_index for d in mesh.devices.flat})
    if hardware is None:  # compare like with like: XLA:CPU's collectives are synchronous (no prefetch)
        cpu = mesh.devices.flat[0].platform == "cpu"
        hardware = Hardware(weight_gather_buffers=1, weight_gather_unit="layer") if cpu else Hardware()
    plan = plan_layout(model_config, mesh_cfg, w, hardware, mesh.devices.size, hosts)
    planned = plan.to_json()
    return {
        "layout": plan.label,
        "mesh": dict(mesh.shape),
        "compile_s": compile_s,
        "xla_memory_bytes": xla_mem,
        "xla_collectives": collectives,
        "planner_memory_bytes": planned["memory_bytes"],
        "planner_collective_bytes_by_kind": planned["collective_bytes_by_kind"],
        "memory_ratio_planner_over_xla": (planned["memory_bytes"]["total"] / xla_mem["peak_estimate"]
                                          if xla_mem.get("peak_estimate") else None),
    }


def _materialize(abstract) -> Any:
    """Concrete arrays with the abstract shardings: small random floats, zero integers (one program)."""
    import jax
    import jax.numpy as jnp

    leaves, treedef = jax.tree_util.tree_flatten(abstract)

    def make(key):
        out = []
        for i, a in enumerate(leaves):
            if jnp.issubdtype(a.dtype, jnp.floating):
                out.append((0.02 * jax.random.normal(jax.random.fold_in(key, i), a.shape, jnp.float32)).astype(a.dtype))
            else:
                out.append(jnp.zeros(a.shape, a.dtype))
        return out

    shardings = [getattr(a, "sharding", None) for a in leaves]
    made = jax.jit(make, out_shardings=shardings if all(shardings) else None)(jax.random.PRNGKey(0))
    return jax.tree_util.tree_unflatten(treedef, made)


def _bench_batch(abstract: dict, vocab_size: int) -> dict:
    """A plausible packed SFT batch for the real step's keys (one segment per row, every token
    trained); any other keys get _materialize's values."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    out = _materialize({k: v for k, v in abstract.items()
                        if k not in ("inputs", "targets", "loss_mask", "segment_ids", "positions")})
    rng = np.random.default_rng(0)
    for k, a in abstract.items():
        if k in ("inputs", "targets"):
            value = rng.integers(0, vocab_size, a.shape)
        elif k in ("loss_mask", "segment_ids"):
            value = np.ones(a.shape)
        elif k == "positions":
            value = np.broadcast_to(np.arange(a.shape[-1]), a.shape)
        else:
            continue
        out[k] = jax.device_put(jnp.asarray(value, a.dtype), a.sharding)
    return out


def bench_layouts(model_config: Qwen3Config, layouts: Sequence[MeshConfig], w: StepSpec, *, steps: int = 5,
                  warmup: int = 1, step_factory: Callable | None = None, log: Callable[[str], None] = print) -> list[dict]:
    """Time each layout's step on the devices present; the same run, side by side."""
    import jax

    results = []
    for cfg in layouts:
        mesh, lowered, state, batch = lower_step(model_config, cfg, w, step_factory=step_factory)
        jitted = lowered.compile()
        state = _materialize(state)
        batch = _bench_batch(batch, model_config.vocab_size) if isinstance(batch, dict) else _materialize(batch)
        times = []
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            new_state, metrics = jitted(state, batch)
            jax.block_until_ready((new_state, metrics))
            if i >= warmup:
                times.append(time.perf_counter() - t0)
            if jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state):
                state = new_state  # the step may donate its input state
            log(f"  {dict(mesh.shape)} step {i + 1}/{warmup + steps}: {times[-1] if i >= warmup else 0:.3f}s")
        times.sort()
        last = {k: float(v) for k, v in jax.device_get(metrics).items()} if isinstance(metrics, dict) else {}
        results.append({"mesh": dict(mesh.shape), "dcn": dict(cfg.dcn), "median_step_s": times[len(times) // 2],
                        "tokens_per_s": w.global_batch * w.seq_len / times[len(times) // 2],
                        "last_metrics": last})
    fastest = min(r["median_step_s"] for r in results)
    for r in results:
        r["relative_to_fastest"] = r["median_step_s"] / fastest
    return results


__all__ = ["KINDS", "HLO_KINDS", "bench_layouts", "lower_step", "compile_report", "count_collectives", "memory_stats"]
