"""`siamgpt-jax mesh {plan,compile,bench}`: ways to split a model over GPUs, compared.

plan     candidate layouts on paper (planner.py): memory by part, collectives, step time, MFU
compile  AOT-compile the train step for one layout on virtual CPU devices (compiled.py)
bench    time chosen layouts on the devices present

`--config RUN.yaml` takes the model, batch, sequence length, dtypes, remat, attention, loss chunk
and (for plan) the mesh from a training config, so the plan is of exactly what `train` would run;
flags given explicitly still win.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

from siamgpt_jax.config import ConfigError, apply_overrides, from_dict, to_dict
from siamgpt_jax.model.config import ATTENTION_NAMES, DTYPE_NAMES, REMAT_NAMES
from siamgpt_jax.train.spec import StepSpec

# What is studied when neither a flag nor --config says: the paper's 32B run. Every other step
# choice defaults to StepSpec's own defaults.
DEFAULT_MODEL = "qwen3-32b"
DEFAULT_STEP = StepSpec(seq_len=4096, global_batch=128)
# The StepSpec fields a flag can set (flag --seq-len sets seq_len, ...).
STEP_FLAGS = ("seq_len", "global_batch", "micro_batches", "param_dtype", "compute_dtype", "remat", "attention",
              "loss_chunk")


def _model(spec: str, overrides: list[str]):
    from siamgpt_jax.model.config import Qwen3Config, preset

    c = Qwen3Config.from_hf_file(spec) if spec.endswith(".json") or Path(spec).is_file() else preset(spec)
    if overrides:
        changes = apply_overrides({}, overrides)
        c = c.replace(**changes)
    return c


def parse_layout(text: str):
    """'data=2,fsdp=4,dcn.data=2' -> MeshConfig (same keys as the YAML `mesh:` section)."""
    from siamgpt_jax.parallel.mesh import MeshConfig

    items = [s.strip() for s in text.replace(" ", ",").split(",") if s.strip()]
    try:
        return from_dict(MeshConfig, apply_overrides({}, items), prefix="mesh")
    except ConfigError as e:
        raise SystemExit(f"--layout {text!r}: {e}") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None,
                   help="a training config: plan what it would run (model, batch, dtypes, remat, attention, mesh)")
    p.add_argument("--model", default=None, help="preset name (e.g. qwen3-32b) or an HF config.json "
                                                 f"(default {DEFAULT_MODEL})")
    p.add_argument("--model-override", action="append", default=[], metavar="KEY=VALUE",
                   help="change a model field, e.g. num_hidden_layers=2 (scaled configs)")
    d = DEFAULT_STEP  # help texts name the built-in values; --config's step spec replaces them
    p.add_argument("--seq-len", type=int, default=None, help=f"(default {d.seq_len})")
    p.add_argument("--global-batch", type=int, default=None, help=f"sequences per optimizer step (default {d.global_batch})")
    p.add_argument("--micro-batches", type=int, default=None, help=f"(default {d.micro_batches})")
    p.add_argument("--remat", choices=REMAT_NAMES, default=None, help=f"(default {d.remat})")
    p.add_argument("--param-dtype", choices=DTYPE_NAMES, default=None, help=f"(default {d.param_dtype})")
    p.add_argument("--compute-dtype", choices=DTYPE_NAMES, default=None, help=f"(default {d.compute_dtype})")
    p.add_argument("--attention", choices=ATTENTION_NAMES, default=None,
                   help=f"attention kernel, as in a config's model.attention (default {d.attention})")
    p.add_argument("--loss-chunk", type=int, default=None,
                   help=f"tokens of each row per chunk of the LM head + loss, as a config's train.loss_chunk "
                        f"(default {d.loss_chunk})")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON here")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    plan = sub.add_parser("plan", help="list candidate layouts with memory, traffic and time estimates")
    _common(plan)
    plan.add_argument("--devices", type=int, default=None,
                      help="device count (default: what --config's mesh names; required otherwise)")
    plan.add_argument("--hosts", type=int, default=None, help="(default: what --config's mesh names, else 1)")
    plan.add_argument("--device-memory", default="80GiB")
    plan.add_argument("--memory-fraction", type=float, default=None,
                      help="share of device memory XLA may use (default: what `train` sets, "
                           "planner.GPU_MEMORY_FRACTION)")
    plan.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 TFLOP/s per device")
    plan.add_argument("--ici-bandwidth", default="450GB/s", help="per device, inside a host")
    plan.add_argument("--dcn-bandwidth", default="50GB/s", help="per device, across hosts")
    plan.add_argument("--matmul-efficiency", type=float, default=0.7)
    plan.add_argument("--layout", action="append", default=[], help="plan only these layouts (data=8,fsdp=8,dcn.data=8)")
    plan.add_argument("--top", type=int, default=25, help="rows shown on screen (JSON holds all)")
    plan.add_argument("--plot", type=Path, default=None, help="PNG of memory per device by layout")

    comp = sub.add_parser("compile", help="AOT-compile the train step for a layout on virtual CPU devices")
    _common(comp)
    comp.add_argument("--devices", type=int, default=8, help="virtual CPU devices")
    comp.add_argument("--hosts", type=int, default=None, help="simulate this many hosts (default: processes)")
    comp.add_argument("--layout", action="append", default=[], required=True)

    bench = sub.add_parser("bench", help="time chosen layouts on the devices present")
    _common(bench)
    bench.add_argument("--layout", action="append", default=[], required=True)
    bench.add_argument("--steps", type=int, default=5)
    bench.add_argument("--warmup", type=int, default=1)


def _apply_config(args) -> None:
    """args.spec: the StepSpec of --config's job (else DEFAULT_STEP) with the step flags given on
    top; args.job keeps the job for later."""
    args.job = None
    base = DEFAULT_STEP
    if args.config is not None:
        from siamgpt_jax.train.config import load_job_config

        args.job = load_job_config(args.config)
        base = args.job.step_spec()
        if args.model is None:
            args.model = str(args.config)  # the label in the output; the architecture comes from the config
    args.model = args.model or DEFAULT_MODEL
    args.spec = base.replace(**{k: getattr(args, k) for k in STEP_FLAGS if getattr(args, k) is not None})


def _config_model(job, overrides: list[str]):
    """The architecture a training config runs: its HF folder's config.json when present, else its preset."""
    from siamgpt_jax.model.config import preset

    m = job.model
    if m.hf_path and (Path(m.hf_path) / "config.json").is_file():
        c = m.architecture()
    elif m.preset:
        if m.hf_path:
            print(f"note: {m.hf_path}/config.json is not here; planning with model.preset {m.preset}", file=sys.stderr)
        c = preset(m.preset).replace(**m.overrides) if m.overrides else preset(m.preset)
    else:
        raise ConfigError(f"model.hf_path: {m.hf_path}/config.json not found and no model.preset to plan with")
    return c.replace(**apply_overrides({}, overrides)) if overrides else c


def _gib(x: float) -> str:
    return f"{x / 2**30:7.2f}"


def format_table(plans, device_memory: float, memory_fraction: float = 1.0) -> str:
    from siamgpt_jax.layout.planner import KINDS, PARTS

    head = (f"{'layout':<24}" + "".join(f"{p[:9]:>10}" for p in PARTS) + f"{'total':>9} {'fits':>4} "
            + "".join(f"{k.replace('collective-', '')[:10]:>11}" for k in KINDS) + f"{'step s':>8}{'MFU':>6}")
    lines = [f"memory in GiB per device (budget {device_memory * memory_fraction / 2**30:.1f} GiB = "
             f"{device_memory / 2**30:.1f} GiB x {memory_fraction:g}); "
             f"collectives in GiB sent per device per step", head, "-" * len(head)]
    for p in plans:
        kinds = p.collective_bytes()
        lines.append(f"{p.label:<24}" + "".join(f"{_gib(p.memory[k]):>10}" for k in PARTS)
                     + f"{_gib(p.memory['total']):>9} {'yes' if p.fits else 'NO':>4} "
                     + "".join(f"{_gib(kinds.get(k, 0.0)):>11}" for k in KINDS)
                     + f"{p.step_s:8.2f}{p.mfu:6.2f}")
    return "\n".join(lines)


def plot_memory(plans, device_memory: float, path: Path, title: str = "") -> None:
    """Stacked bars of per-device memory by part, one bar per layout, and the device-memory line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from siamgpt_jax.layout.planner import PARTS

    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(plans) + 2), 5))
    x = range(len(plans))
    bottom = [0.0] * len(plans)
    for part in PARTS:
        vals = [p.memory[part] / 2**30 for p in plans]
        ax.bar(x, vals, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.axhline(device_memory / 2**30, color="red", linestyle="--", label="memory budget")
    ax.set_xticks(list(x), [p.label for p in plans], rotation=75, ha="right", fontsize=7)
    ax.set_ylabel("GiB per device")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _devices_from_mesh(mesh_cfg) -> tuple[int | None, int | None]:
    """Device and host counts a mesh config names outright (None where an axis says -1, fill)."""
    sizes = mesh_cfg.sizes.values()
    devices = None if -1 in sizes else math.prod(sizes)
    hosts = None if -1 in mesh_cfg.dcn.values() else math.prod(mesh_cfg.dcn.values() or [1])
    return devices, hosts


def _run_plan(args) -> int:
    from siamgpt_jax.config import parse_size
    from siamgpt_jax.layout.planner import GPU_MEMORY_FRACTION, Hardware, plan_all, plan_layout

    _apply_config(args)
    if args.job is not None:
        c = _config_model(args.job, args.model_override)
        devices, hosts = _devices_from_mesh(args.job.mesh)
        args.devices = args.devices or devices
        args.hosts = args.hosts or hosts
        if not args.layout:
            args.layouts = [args.job.mesh]
    else:
        c = _model(args.model, args.model_override)
    if args.devices is None:
        raise ConfigError("--devices: how many devices to plan for (or a --config whose mesh names them all)")
    args.hosts = args.hosts or 1
    w = args.spec
    hw = Hardware(device_memory=parse_size(args.device_memory), peak_flops=args.peak_tflops * 1e12,
                  ici_bandwidth=parse_size(args.ici_bandwidth), dcn_bandwidth=parse_size(args.dcn_bandwidth),
                  matmul_efficiency=args.matmul_efficiency,
                  memory_fraction=GPU_MEMORY_FRACTION if args.memory_fraction is None else args.memory_fraction)
    if getattr(args, "layouts", None):
        plans = [plan_layout(c, m, w, hw, args.devices, args.hosts) for m in args.layouts]
    elif args.layout:
        plans = [plan_layout(c, parse_layout(s), w, hw, args.devices, args.hosts) for s in args.layout]
    else:
        plans = plan_all(c, w, hw, args.devices, args.hosts)
    if not plans:
        print("no layout divides the heads, batch and sequence for these device/host counts", file=sys.stderr)
        return 1
    print(f"{args.model}: {args.devices} devices / {args.hosts} hosts, seq {w.seq_len}, global batch "
          f"{w.global_batch}, {w.micro_batches} micro-batch(es), remat={w.remat}, attention={w.attention}, "
          f"{len(plans)} layout(s), fitting first then fastest")
    print(format_table(plans[: args.top], hw.device_memory, hw.memory_fraction))
    best = plans[0]
    print(f"{best.label}: {best.memory['total'] / 2**30:.1f} GiB of the {hw.memory_budget / 2**30:.1f} GiB budget, "
          + (f"margin {(hw.memory_budget - best.memory['total']) / 2**30:.1f} GiB" if best.fits
             else f"over by {(best.memory['total'] - hw.memory_budget) / 2**30:.1f} GiB: it does not fit"))
    if len(plans) > args.top:
        print(f"... {len(plans) - args.top} more (--top, or --json for all)")
    if args.json:
        _write_json(args.json, {"model": args.model, "step": to_dict(w),
                                "hardware": dataclasses.asdict(hw), "devices": args.devices, "hosts": args.hosts,
                                "plans": [p.to_json() for p in plans]})
        print(f"wrote {args.json}")
    if args.plot:
        plot_memory(plans[: args.top], hw.memory_budget, args.plot,
                    f"{args.model}, {args.devices} devices / {args.hosts} hosts, seq {w.seq_len}")
        print(f"wrote {args.plot}")
    return 0


def _ensure_cpu_devices(n: int) -> None:
    """Virtual CPU devices must be requested before JAX starts."""
    if "jax" in sys.modules:
        import jax

        if jax.device_count() < n:
            raise SystemExit(f"JAX already started with {jax.device_count()} devices; {n} requested")
        return
    flags = os.environ.get("XLA_FLAGS", "")
    flags = " ".join(f for f in flags.split() if not f.startswith("--xla_force_host_platform_device_count"))
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _run_compile(args) -> int:
    _ensure_cpu_devices(args.devices)
    import jax

    from siamgpt_jax.layout.compiled import compile_report

    _apply_config(args)
    c = _config_model(args.job, args.model_override) if args.job else _model(args.model, args.model_override)
    reports = []
    for text in args.layout:
        r = compile_report(c, parse_layout(text), args.spec, devices=jax.devices()[: args.devices],
                           num_hosts=args.hosts)
        reports.append(r)
        xm, pm = r["xla_memory_bytes"], r["planner_memory_bytes"]
        print(f"{r['layout']}: compiled in {r['compile_s']:.1f}s")
        mib = lambda x: f"{x / 2**20:.2f}"  # noqa: E731
        print(f"  XLA    : args {mib(xm['argument'])} out {mib(xm['output'])} alias {mib(xm['alias'])} "
              f"temp {mib(xm['temp'])} peak {mib(xm['peak_estimate'])} MiB per device")
        print(f"  planner: " + " ".join(f"{k} {mib(v)}" for k, v in pm.items())
              + f" MiB  (planner/XLA = {r['memory_ratio_planner_over_xla']:.3f})")
        for kind, v in r["xla_collectives"].items():
            if v["count"]:
                print(f"  {kind:<19} {v['count']:4d} ops ({v['executed']} executed) {v['bytes'] / 2**20:10.2f} MiB")
    if args.spec.compute_dtype != "float32" and jax.devices()[0].platform == "cpu":
        # seen on scaled Qwen3 configs: the compiled step keeps fp32 stacks of the layer activations
        # beside the bf16 ones, and planner/XLA read 0.54-0.94 where float32 reads 0.92-1.07
        print(f"note: XLA:CPU keeps fp32 copies of {args.spec.compute_dtype} activations, so its peak above "
              "overstates a GPU compile of this step; on CPU compare with --compute-dtype float32 "
              "(docs/benchmarks/mesh.md)")
    if args.json:
        _write_json(args.json, reports)
    return 0


def _run_bench(args) -> int:
    from siamgpt_jax.layout.compiled import bench_layouts

    _apply_config(args)
    c = _config_model(args.job, args.model_override) if args.job else _model(args.model, args.model_override)
    results = bench_layouts(c, [parse_layout(t) for t in args.layout], args.spec,
                            steps=args.steps, warmup=args.warmup)
    for r in results:
        print(f"{r['mesh']} dcn={r['dcn']}: median {r['median_step_s']:.3f}s/step, "
              f"{r['tokens_per_s']:.0f} tok/s, x{r['relative_to_fastest']:.2f} of fastest")
    if args.json:
        _write_json(args.json, results)
    return 0


def run(args) -> int:
    try:
        return {"plan": _run_plan, "compile": _run_compile, "bench": _run_bench}[args.action](args)
    except (ValueError, KeyError, RuntimeError) as e:
        print(f"siamgpt-jax mesh {args.action}: error: {e}", file=sys.stderr)
        return 2
