"""The train step's XLA:CPU options: YNNPACK gets each dot alone, XLA does the rest; safe elsewhere."""

import re

import jax
import jax.numpy as jnp

from siamgpt_jax.train import cpu_tuning


def _ynn_fusion_bodies(hlo: str) -> list[str]:
    """The called computations of every YNNPACK fusion in optimized HLO text."""
    called = re.findall(r"%ynn_fusion[\w.]* = .*?calls=%([\w.\-]+)", hlo)
    bodies = []
    for name in called:
        m = re.search(rf"^%{re.escape(name)} .*?^\}}", hlo, re.S | re.M)
        assert m, f"no body for {name}"
        bodies.append(m.group(0))
    return bodies


def _ops(body: str) -> list[str]:
    """The op names of a computation body, parameters left out."""
    ops = re.findall(r"= \w+\[[\d,]*\][^ ]* ([\w-]+)\(", body)
    return [op for op in ops if op != "parameter"]


def test_cpu_steps_give_ynnpack_each_dot_alone():
    opts = cpu_tuning.compiler_options()
    assert opts == cpu_tuning.CPU_OPTION_CANDIDATES[0]  # these tests run on CPU, with this jax

    def f(x, w):  # a dot, elementwise ops, a second dot, a reduction
        return jnp.sum(jnp.exp((x @ w) * 2.0) @ w, axis=-1)

    args = (jnp.ones((64, 64)), jnp.ones((64, 64)))
    # (jax 0.10's default puts the exp and the reduce into the dot's YNNPACK fusion too, and its
    # DOT type the scale and the exp)
    default = _ynn_fusion_bodies(jax.jit(f).lower(*args).compile().as_text())
    assert any(_ops(b) != ["dot"] for b in default)
    tuned = _ynn_fusion_bodies(jax.jit(f, compiler_options=opts).lower(*args).compile().as_text())
    assert len(tuned) == 2 and all(_ops(b) == ["dot"] for b in tuned), tuned
    np_default = jax.jit(f)(*args)
    np_tuned = jax.jit(f, compiler_options=opts)(*args)
    assert jnp.allclose(np_default, np_tuned)


def test_no_options_off_cpu_or_where_xla_rejects_them(monkeypatch):
    assert cpu_tuning.compiler_options("gpu") is None
    bad = {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_TYPE"}
    dot_only = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}
    try:
        # an XLA that lacks the first choice gets the next one
        monkeypatch.setattr(cpu_tuning, "CPU_OPTION_CANDIDATES", (bad, dot_only))
        cpu_tuning._accepted_cpu_options.cache_clear()
        assert cpu_tuning.compiler_options() == dot_only
        # and one that knows none of them gets XLA's defaults
        monkeypatch.setattr(cpu_tuning, "CPU_OPTION_CANDIDATES", (bad,))
        cpu_tuning._accepted_cpu_options.cache_clear()
        assert cpu_tuning.compiler_options() is None
    finally:
        cpu_tuning._accepted_cpu_options.cache_clear()


# Big malloc/fill/free cycles from a thread, as XLA's worker threads allocate each step's buffers.
_FAULTS_CHILD = """
import ctypes, resource, statistics, sys, threading
if sys.argv[1] == "tuned":
    from siamgpt_jax.train.cpu_tuning import keep_freed_host_memory
    assert keep_freed_host_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
faults = []

def steps():
    for _ in range(8):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        p = libc.malloc(64 << 20)
        ctypes.memset(p, 1, 64 << 20)
        libc.free(p)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

t = threading.Thread(target=steps)
t.start()
t.join()
print(statistics.median(faults[1:]))
"""


def _faults_per_call(mode: str) -> float:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", _FAULTS_CHILD, mode], capture_output=True, text=True, cwd=root,
                         env={**__import__("os").environ, "PYTHONPATH": str(root), "JAX_PLATFORMS": "cpu",
                              "XLA_FLAGS": ""}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.split()[-1])


def test_kept_host_memory_stops_the_per_step_page_faults():
    """With glibc's defaults a freed 64 MB block goes back to the kernel and the next one faults
    its ~16k pages in again; with the setting the freed block is reused. (The step itself:
    ~47k faults per step -> 0, docs/benchmarks/model.md.)"""
    default, tuned = _faults_per_call("default"), _faults_per_call("tuned")
    assert default > 8000, default
    assert tuned < default / 10, (tuned, default)


def test_cpu_only_detection(monkeypatch):
    import pytest

    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert cpu_tuning.jax_runs_on_cpu_only()
    monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
    assert not cpu_tuning.jax_runs_on_cpu_only()
    assert not cpu_tuning.tune_process_for_cpu_training()  # a GPU run keeps glibc's defaults
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv(cpu_tuning.KEEP_FREED_MEMORY_ENV, "0")
    monkeypatch.setattr(cpu_tuning, "keep_freed_host_memory", lambda: pytest.fail("the switch was ignored"))
    assert not cpu_tuning.tune_process_for_cpu_training()  # switched off
    monkeypatch.delenv("JAX_PLATFORMS")
    monkeypatch.delenv("JAX_PLATFORM_NAME", raising=False)
    real_find_spec = cpu_tuning.importlib.util.find_spec
    monkeypatch.setattr(cpu_tuning.importlib.util, "find_spec",
                        lambda name, *a: object() if name == "jax_plugins" else real_find_spec(name, *a))
    assert not cpu_tuning.jax_runs_on_cpu_only()  # an installed CUDA/ROCm plugin lives in jax_plugins


def test_training_commands_apply_the_setting_first(monkeypatch):
    import pytest

    from siamgpt_jax import cli

    calls = []
    monkeypatch.setattr(cpu_tuning, "tune_process_for_cpu_training", lambda: calls.append(1) or True)
    for command, expected in (("train", 1), ("demo", 1), ("verify", 0)):
        calls.clear()
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert len(calls) == expected, command
