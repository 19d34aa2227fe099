"""Where the CPU fwd+bwd step's time goes: a jax.profiler trace, each XLA:CPU thunk's share of it.

    python3 scripts/bench/cpu/profile_step.py [--layers 4 --hidden 512 --seq 512 --batch 1 --vocab 8192]
        [--attention auto|chunked|xla] [--kernels auto|xla|cpu] [--cpu-defaults] [--steps 4] [--top 25] [--plot OUT.png] [--json OUT]

The step is bench_step.py's (same model, loss and compile settings). It runs a few untimed steps,
then traces `--steps` more and reads the trace's events: one per XLA:CPU thunk (a fusion, a
library dot, a copy...).

XLA:CPU runs independent thunks side by side on its threads, so each thunk is given its *fair
share* of the time: every instant is split evenly between the thunks running then. The shares add
up to the traced time in which some thunk ran. Two caveats:
- A YNNPACK dot's work on the other threads shows as thread-pool regions, not as more events: its
  event spans the whole dot, which is right for the share.
- An Eigen dot (XLA's own, e.g. the weight grads that contract the token dim) returns as soon as
  it has handed its work to the pool: its event is short, and its real time shows as "no thunk
  running". That line is printed with the thread histogram.

Prints per-step milliseconds by group (library dots, XLA dots, elementwise fusions, copies and
slices, reductions, other), how long 0, 1, 2... thunks ran at once, and the top thunks by share.
--plot draws the groups as a bar chart; --json writes everything. CPU only: on a GPU the trace
holds kernels, not thunks.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

# Thunk names are XLA's instruction and fusion names: a fusion is named after the ops in it
# ("copy_bitcast_fusion.3", "multiply_bitcast_fusion"), so its words say what it does.
_LIBRARY_DOT = re.compile(r"^(ynn|xnn|onednn)_fusion")
_XLA_DOT = re.compile(r"^(wrapped_)?(dot|dot_general|convolution)(\.\d+)?$")
_REDUCTIONS = {"reduce", "reduce-window", "scatter", "select-and-scatter"}
_DATA_MOVEMENT = {"copy", "bitcast", "transpose", "slice", "dynamic-slice", "dynamic-update-slice", "concatenate",
                  "pad", "broadcast", "reshape", "iota"}


# trace events that are not thunks: the executable's outer spans and the thread pool's markers
_NOT_THUNKS = re.compile(r"^(\$|end: )|Await|ThunkExecutor|Threadpool|PjitFunction|jit_|^XlaModule|^Execute")


def group_of(name: str) -> str:
    if _LIBRARY_DOT.search(name):
        return "library dots"
    if _XLA_DOT.search(name):
        return "XLA dots"
    words = set(re.sub(r"\.\d+$", "", name).split("_")) - {"fusion", "wrapped"}
    if not words:
        return "other"
    if words & _REDUCTIONS:
        return "reductions"
    if words <= _DATA_MOVEMENT:
        return "copies and slices"
    if name.endswith("fusion") or re.search(r"fusion\.\d+$", name) or name.startswith("wrapped_"):
        return "elementwise fusions"
    return "other"


def leaf_events(trace: dict) -> list[tuple[float, float, str]]:
    """(start, end, name) in microseconds of the thunk events: complete events with a duration
    that contain no other event of their thread (a thunk's own inner markers are dropped)."""
    events = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X" and e.get("dur", 0) > 0
              and not _NOT_THUNKS.search(e.get("name", ""))]
    events.sort(key=lambda e: (e.get("pid"), e.get("tid"), e["ts"], -e["dur"]))
    parents, stack = set(), []
    for i, e in enumerate(events):
        thread = (e.get("pid"), e.get("tid"))
        while stack and (stack[-1][0] != thread or events[stack[-1][1]]["ts"] + events[stack[-1][1]]["dur"] <= e["ts"]):
            stack.pop()
        if stack:
            parents.add(stack[-1][1])
        stack.append((thread, i))
    return [(e["ts"], e["ts"] + e["dur"], e["name"]) for i, e in enumerate(events) if i not in parents]


def fair_shares(events: list[tuple[float, float, str]]) -> tuple[collections.Counter, collections.Counter]:
    """(share per thunk name, time per number of thunks running at once), both in microseconds,
    over the span from the first event's start to the last one's end."""
    share, concurrency = collections.Counter(), collections.Counter()
    if not events:
        return share, concurrency
    points = sorted({t for s, e, _ in events for t in (s, e)})
    by_start = sorted(events)
    running: list[tuple[float, float, str]] = []
    nxt = 0
    for a, b in zip(points, points[1:]):
        while nxt < len(by_start) and by_start[nxt][0] <= a:
            running.append(by_start[nxt])
            nxt += 1
        running = [ev for ev in running if ev[1] > a]
        concurrency[len(running)] += b - a
        for ev in running:
            share[ev[2]] += (b - a) / len(running)
    return share, concurrency


def summarize(share: collections.Counter, concurrency: collections.Counter, steps: int, top: int) -> dict:
    ms = 1e-3 / steps  # microseconds over all traced steps -> milliseconds per step
    groups = collections.Counter()
    for name, t in share.items():
        groups[group_of(name)] += t
    return {
        "steps": steps,
        "thunk_ms_per_step": sum(share.values()) * ms,
        "span_ms_per_step": sum(concurrency.values()) * ms,
        "groups_ms_per_step": {g: t * ms for g, t in groups.most_common()},
        "running_at_once_ms_per_step": {str(n): t * ms for n, t in sorted(concurrency.items())},
        "top_thunks_ms_per_step": {name: t * ms for name, t in share.most_common(top)},
    }


def plot_groups(summary: dict, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = dict(summary["groups_ms_per_step"])
    # the time no thunk event covers: mostly Eigen dots working after their event, and gaps
    groups["no thunk running"] = summary["running_at_once_ms_per_step"].get("0", 0.0)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    names = list(groups)[::-1]
    colors = ["#999999" if n == "no thunk running" else "#4c72b0" for n in names]
    ax.barh(names, [groups[n] for n in names], color=colors)
    ax.set_xlabel("ms per step (each instant split between the thunks running then)")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    import bench_step

    p = argparse.ArgumentParser()
    bench_step.add_step_args(p)
    p.add_argument("--steps", type=int, default=4, help="traced steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before the trace")
    p.add_argument("--top", type=int, default=25, help="thunks listed")
    p.add_argument("--plot", default=None, help="a bar chart of the groups (png)")
    p.add_argument("--json", default=None, help="write the summary here")
    a = p.parse_args()
    bench_step.tune_process(a)
    import jax

    if jax.default_backend() != "cpu":
        p.error(f"the trace is read as XLA:CPU thunks; this backend is {jax.default_backend()}")
    step, temp_mib = bench_step.build_jax_step(a)
    for _ in range(a.warmup):
        step()
    with tempfile.TemporaryDirectory(prefix="profile_step_") as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(a.steps):
                step()
        found = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)
        if not found:
            raise SystemExit(f"jax.profiler wrote no *.trace.json.gz under {trace_dir}")
        with gzip.open(found[0]) as f:
            trace = json.load(f)
    share, concurrency = fair_shares(leaf_events(trace))
    if not share:
        raise SystemExit("the trace holds no thunk events: nothing to attribute")
    summary = summarize(share, concurrency, a.steps, a.top)
    summary["config"] = {k: getattr(a, k) for k in ("layers", "hidden", "seq", "batch", "vocab", "attention", "kernels",
                                                       "cpu_defaults")}
    summary["temp_mib"] = temp_mib

    title = (f"fwd+bwd, {a.layers} layers, hidden {a.hidden}, {a.seq} tokens x {a.batch}, vocab {a.vocab} "
             f"({summary['span_ms_per_step']:.0f} ms traced per step)")
    print(title)
    for g, t in summary["groups_ms_per_step"].items():
        print(f"  {t:8.1f} ms  {g}")
    running = ", ".join(f"{n}: {t:.1f} ms" for n, t in summary["running_at_once_ms_per_step"].items())
    print(f"thunks running at once, per step: {running}  (0 includes Eigen dots working after their event)")
    print("top thunks:")
    for name, t in summary["top_thunks_ms_per_step"].items():
        print(f"  {t:8.2f} ms  {name}")
    if a.plot:
        plot_groups(summary, a.plot, title)
        print(f"plot: {a.plot}")
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
