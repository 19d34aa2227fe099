"""Forward+backward step: siamgpt-jax (jit) vs transformers + torch eager, CPU, same threads.

    python3 scripts/bench/cpu/bench_step.py [--layers 4 --hidden 512 --seq 512 --batch 1 --reps 4 --block 2]
        [--attention auto|chunked|xla] [--kernels auto|xla|cpu] [--also-kernels xla,cpu] [--cpu-defaults]
        [--baseline COMMIT]
Prints the per-step seconds of both and the ratio jax/torch (goal <= 1.0), measured side by side,
and the compiled JAX step's temporary memory (XLA's memory analysis). The two sides take turns of
back-to-back steps (bench_timing.py, beside this script).
--baseline COMMIT adds a third side: the same JAX step built from that commit's `siamgpt_jax`
(extracted with `git archive`) in a child process, which runs one step per request from this one.
It takes its turns with the others (only one side computes at a time), so a change is measured
against its predecessor in the same minutes: the printed "jax/baseline" ratio.
The JAX side is compiled as the train step is: a pure function of the params under jax.jit, with
the train step's compiler options and the `train` command's host-memory setting
(train/cpu_tuning.py; --cpu-defaults drops both; the setting is process-wide, so torch runs with it
too) and the model's default attention ("auto": the chunked path on CPU) and layer ops (--kernels
"auto": model/cpu_kernels.py on CPU). --also-kernels adds a JAX side per listed choice, built the
same way, so the two kernel paths are timed side by side. Its loss is optax's integer-label
cross-entropy (logsumexp minus the target logit, as torch's cross_entropy).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench_timing import time_in_turns

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))  # bench_baseline, shared with the other --baseline scripts


def add_step_args(p: argparse.ArgumentParser) -> None:
    """The options that shape the step (shared with profile_step.py)."""
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--attention", default="auto", choices=["auto", "chunked", "xla"])
    p.add_argument("--kernels", default="auto", help="the model's layer ops: auto, xla or cpu (model/kernels.py)")
    p.add_argument("--cpu-defaults", action="store_true",
                   help="no train/cpu_tuning.py settings: XLA's default compiler options and glibc's malloc defaults")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_step_args(p)
    p.add_argument("--reps", type=int, default=4, help="turns per side")
    p.add_argument("--block", type=int, default=2, help="timed back-to-back steps per turn")
    p.add_argument("--also-kernels", default="", help="comma-separated kernel choices to time as extra JAX sides")
    p.add_argument("--baseline", default=None, help="also time the JAX step of this commit's package, side by side")
    p.add_argument("--serve-baseline", default=None, help=argparse.SUPPRESS)  # the baseline child: its package root
    return p.parse_args(argv)


def model_kwargs(a) -> dict:
    return dict(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.hidden * 3, num_hidden_layers=a.layers,
                num_attention_heads=8, num_key_value_heads=4, head_dim=a.hidden // 8, max_position_embeddings=4096)


def token_ids(a):
    import numpy as np

    return np.random.RandomState(0).randint(0, a.vocab, (a.batch, a.seq))


def build_jax_step(a, kernels: str | None = None):
    """(one fwd+bwd step, its temporary MiB), from whichever `siamgpt_jax` is first on sys.path.

    Compiled as the train step is: a pure function of the params under jax.jit with the train
    step's compiler options, and the model's default attention. kernels: the model's layer ops
    (default a.kernels); "auto" is not passed on, so a --baseline package that predates the switch
    builds too.
    """
    import jax
    import jax.numpy as jnp
    import optax

    from siamgpt_jax.model.config import Qwen3Config
    from siamgpt_jax.model.qwen3 import init_model
    from siamgpt_jax.train.cpu_tuning import compiler_options
    from siamgpt_jax.train.state import ModelDef

    kw = model_kwargs(a)
    kernels = kernels or a.kernels
    extra = {} if kernels == "auto" else {"kernels": kernels}
    model = init_model(Qwen3Config(**{**kw, "tie_word_embeddings": False}), dtype=jnp.float32, attention=a.attention,
                       **extra)
    model_def, params = ModelDef.split(model)
    jids = jnp.asarray(token_ids(a))
    options = None if a.cpu_defaults else compiler_options()

    def loss(params, ids):  # the mean next-token cross-entropy, as HF computes it with labels=ids
        logits = model_def.merge(params)(ids[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, ids[:, 1:]).mean()

    # compiled once, ahead of time: the timed calls and the memory figure use the same executable
    grad_step = jax.jit(jax.value_and_grad(loss), compiler_options=options).lower(params, jids).compile()
    # the step's temporary buffers (saved activations and working set): what remat and the
    # hand-written backwards of model/cpu_kernels.py change
    temp_mib = grad_step.memory_analysis().temp_size_in_bytes / 2**20
    return (lambda: jax.block_until_ready(grad_step(params, jids))), temp_mib


def tune_process(a) -> None:
    """The `train` command's process setting, before jax starts its threads (process-wide: the
    torch side shares it)."""
    if not a.cpu_defaults:
        from siamgpt_jax.train.cpu_tuning import tune_process_for_cpu_training

        tune_process_for_cpu_training()


def serve_baseline(a) -> None:
    """The baseline child: build the step from the package at --serve-baseline, then run one step
    per "step" line on stdin and answer "done" (stdout carries only the protocol)."""
    sys.path.insert(0, a.serve_baseline)
    protocol = sys.stdout
    sys.stdout = sys.stderr  # anything the package prints stays off the protocol
    tune_process(a)
    import siamgpt_jax

    if not Path(siamgpt_jax.__file__).resolve().is_relative_to(Path(a.serve_baseline).resolve()):
        raise RuntimeError(f"the baseline child imported {siamgpt_jax.__file__}, not the package under {a.serve_baseline}")
    step, temp_mib = build_jax_step(a)
    protocol.write(f"ready {temp_mib}\n")
    protocol.flush()
    for line in sys.stdin:
        if line.strip() != "step":
            break
        step()
        protocol.write("done\n")
        protocol.flush()


class BaselineChild:
    """The --baseline side: a child process running that commit's step on request."""

    def __init__(self, commit: str, argv: list[str]):
        import subprocess
        import tempfile

        from bench_baseline import extract_package

        self.root = extract_package(commit, Path(tempfile.mkdtemp(prefix=f"bench_step_{commit}_")))
        self.proc = subprocess.Popen([sys.executable, __file__, *argv, "--serve-baseline", str(self.root)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first = self.proc.stdout.readline().split()
        if not first or first[0] != "ready":
            raise RuntimeError(f"the baseline child for {commit} did not start (exit code {self.proc.poll()})")
        self.temp_mib = float(first[1])

    def step(self) -> None:
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "done":
            raise RuntimeError(f"the baseline child stopped (exit code {self.proc.poll()})")

    def close(self) -> None:
        import shutil

        self.proc.stdin.close()
        self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)  # the extracted package


def step_argv(a) -> list[str]:
    """The options that shape the JAX step, for the baseline child (its package's default kernels)."""
    flags = [f"--{name}={getattr(a, name)}" for name in ("layers", "hidden", "seq", "batch", "vocab", "attention")]
    return flags + (["--cpu-defaults"] if a.cpu_defaults else [])


def main() -> None:
    a = parse_args()
    if a.serve_baseline:
        return serve_baseline(a)
    tune_process(a)
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import numpy as np
    import torch

    from siamgpt_jax.testing import make_hf_model
    from siamgpt_jax.model.config import KERNEL_NAMES
    from siamgpt_jax.model.kernels import resolve_kernels

    torch.set_num_threads(threads)
    hf = make_hf_model(**model_kwargs(a)).train()
    tids = torch.from_numpy(token_ids(a)).long()

    def torch_step():
        hf.zero_grad(set_to_none=True)
        loss = hf(input_ids=tids, labels=tids).loss
        loss.backward()

    jax_step, temp_mib = build_jax_step(a)
    paths = {"jax": jax_step, "torch": torch_step}
    also = [k for k in a.also_kernels.split(",") if k]
    for k in [a.kernels, *also]:
        if k not in KERNEL_NAMES:
            raise SystemExit(f"--kernels/--also-kernels: {k!r} is not one of {list(KERNEL_NAMES)}")
    also_mib = {}
    for k in also:
        paths[f"jax[{k}]"], also_mib[k] = build_jax_step(a, k)
    baseline = None
    if a.baseline:
        baseline = BaselineChild(a.baseline, step_argv(a))
        paths["baseline"] = baseline.step
    try:
        times = time_in_turns(paths, reps=a.reps, block=a.block)
    finally:
        if baseline is not None:
            baseline.close()
    med = {name: float(np.median(t)) for name, t in times.items()}
    j, tr = med["jax"], med["torch"]
    print(f"threads={threads} layers={a.layers} hidden={a.hidden} seq={a.seq} batch={a.batch} vocab={a.vocab} fp32 "
          f"attention={a.attention} kernels={a.kernels} ({resolve_kernels(a.kernels)}) "
          f"cpu_tuning={'off' if a.cpu_defaults else 'on'}")
    print(f"jax {j * 1e3:.0f} ms/step, torch eager {tr * 1e3:.0f} ms/step, ratio jax/torch {j / tr:.2f} (goal <= 1.0)")
    print(f"jax step temporary memory {temp_mib:.1f} MiB")
    for k in also:
        t = med[f"jax[{k}]"]
        print(f"jax kernels={k} ({resolve_kernels(k)}): {t * 1e3:.0f} ms/step, ratio jax[{k}]/torch {t / tr:.2f}, "
              f"jax[{k}]/jax {t / j:.3f}; its temporary memory {also_mib[k]:.1f} MiB")
    if baseline is not None:
        b = med["baseline"]
        print(f"baseline {a.baseline}: {b * 1e3:.0f} ms/step, ratio baseline/torch {b / tr:.2f}, "
              f"jax/baseline {j / b:.3f}; its temporary memory {baseline.temp_mib:.1f} MiB")


if __name__ == "__main__":
    main()
