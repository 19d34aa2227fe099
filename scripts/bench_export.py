"""Export speed and peak memory: export-hf's writer vs a raw write of the same bytes, same run.

Builds a synthetic many-layer fp32 Qwen3 (~2 GB by default: 32 layers) once, as the two sources
export-hf reads: an orbax PyTree item (what a training run's checkpoint holds, chunked as train saves it; read
through train/export.py's tensorstore path) and an import-hf params checkpoint (zarr3). Then, in fresh
child processes (so peak RSS is per task), interleaved so every task sees the same page-cache
state: (1) writes the export's shard files from one reused buffer (raw), (2) exports from the
orbax item, (3) exports from the params checkpoint; then once (4) imports the HF folder into a
new params checkpoint (import-hf's streaming path). Reports GB/s of output written, the
export/raw ratio, and peak RSS above the post-import baseline against the largest tensor read +
the largest shard written (the memory the streaming design promises).

    python3 scripts/bench_export.py [--dir /tmp/bench_export] [--layers 32] [--dtype float32|bfloat16]
        [--vocab 32000 --hidden 1024 --mlp 2816 --shard-bytes 500000000]  (the defaults: ~2 GB fp32)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_import import write_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def prepare(root: Path, layers: int, vocab: int, hidden: int, mlp: int) -> None:
    """HF folder -> params checkpoint (streamed) and an orbax item {'params': ...} of the same values."""
    if not (root / "hf" / "config.json").exists():
        write_checkpoint(root / "hf", layers, vocab, hidden, mlp)
    from siamgpt_jax.convert.params_ckpt import import_hf, load_params

    if not (root / "params").exists():
        import_hf(root / "hf", root / "params", dtype="float32")
    if not (root / "orbax").exists():
        import orbax.checkpoint as ocp
        from flax import nnx

        from siamgpt_jax.train.checkpoint import layer_chunked_save_args

        tree = {"params": nnx.to_pure_dict(nnx.state(load_params(root / "params"), nnx.Param))}
        with ocp.StandardCheckpointer() as ckptr:  # chunked as train's checkpoints are
            ckptr.save((root / "orbax").absolute(), tree, save_args=layer_chunked_save_args(tree))


def _reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS mark (clear_refs 5) and return the current RSS in MB: the
    peak of the timed part alone is then VmHWM minus this, whatever jax's start-up peaked at."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mb("VmRSS")


def _status_mb(key: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def child(mode: str, root: Path, dtype: str, shard_bytes: int) -> dict:
    import jax
    import numpy as np

    jax.numpy.zeros(1).block_until_ready()
    from siamgpt_jax.convert import hf_export, names, params_ckpt, ts_arrays
    from siamgpt_jax.model.config import param_shapes

    config, arrays = params_ckpt.open_params(root / "params")
    if mode == "export-orbax":
        arrays = {p: ts_arrays.orbax_array(root / "orbax", f"params.{p}") for p in param_shapes(config)}
    out = root / f"out-{mode}"
    shutil.rmtree(out, ignore_errors=True)
    itemsize = np.dtype(jax.numpy.dtype(dtype)).itemsize
    sizes = [(n, int(np.prod(s)) * itemsize) for n, s in names.expected_hf_shapes(config).items()]
    shards = [sum(dict(sizes)[n] for n in shard) for shard in hf_export._plan_shards(sizes, shard_bytes)]
    largest_read = max(int(np.prod(s)) * 4 for s in names.expected_hf_shapes(config).values())  # fp32 source
    base = _reset_peak_rss()
    t = time.perf_counter()
    if mode == "import-params":  # the other direction: import-hf streaming into a params checkpoint
        params_ckpt.import_hf(root / "hf", out, dtype="float32", progress=False)
        seconds = time.perf_counter() - t
        written = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        return {"mode": mode, "bytes": written, "seconds": seconds, "gb_per_s": written / seconds / 1e9,
                "peak_rss_above_baseline_mb": _status_mb("VmHWM") - base, "largest_tensor_mb": largest_read / 2**20,
                "largest_shard_mb": 0.0}
    if mode == "raw":  # the same bytes, same files count, from one reused buffer
        out.mkdir()
        buf = np.random.default_rng(0).integers(0, 255, max(shards), dtype=np.uint8)
        for k, n in enumerate(shards):
            with open(out / f"model-{k:05d}.safetensors", "wb") as f:
                f.write(memoryview(buf)[:n])
    else:
        hf_export.write_hf(config, params_ckpt.array_reader(arrays), out, dtype=dtype, max_shard_size=shard_bytes,
                           progress=False)
    seconds = time.perf_counter() - t
    written = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    return {"mode": mode, "bytes": written, "seconds": seconds, "gb_per_s": written / seconds / 1e9,
            "peak_rss_above_baseline_mb": _status_mb("VmHWM") - base, "largest_tensor_mb": largest_read / 2**20,
            "largest_shard_mb": max(shards) / 2**20}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dir", default="/tmp/bench_export")
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--mlp", type=int, default=2816)
    p.add_argument("--shard-bytes", type=int, default=500_000_000)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", choices=["raw", "export-orbax", "export-params", "import-params"])
    a = p.parse_args()
    root = Path(a.dir)
    if a.child:
        print(json.dumps(child(a.child, root, a.dtype, a.shard_bytes)))
        return
    prepare(root, a.layers, a.vocab, a.hidden, a.mlp)
    results = []
    for mode in ["raw", "export-orbax", "export-params"] * a.rounds + ["import-params"]:
        r = subprocess.run([sys.executable, __file__, "--dir", str(root), "--dtype", a.dtype, "--shard-bytes",
                            str(a.shard_bytes), "--child", mode],
                           capture_output=True, text=True, check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    best = {m: max(r["gb_per_s"] for r in results if r["mode"] == m) for m in ("raw", "export-orbax", "export-params")}
    print(f"model {a.layers} layers, output {results[0]['bytes'] / 1e9:.2f} GB as {a.dtype}")
    for m in ("export-orbax", "export-params"):
        peak = max(r["peak_rss_above_baseline_mb"] for r in results if r["mode"] == m)
        last = [r for r in results if r["mode"] == m][-1]
        budget = last["largest_tensor_mb"] + last["largest_shard_mb"]
        print(f"{m}: {best[m]:.2f} GB/s vs raw write {best['raw']:.2f} GB/s, ratio {best[m] / best['raw']:.2f} "
              f"(goal >= 0.5); peak RSS above baseline {peak:.0f} MB vs largest tensor "
              f"{last['largest_tensor_mb']:.0f} MB + shard {last['largest_shard_mb']:.0f} MB = {budget:.0f} MB")
    imp = results[-1]
    print(f"import-hf to a params checkpoint: {imp['gb_per_s']:.2f} GB/s written, peak RSS above baseline "
          f"{imp['peak_rss_above_baseline_mb']:.0f} MB vs largest tensor {imp['largest_tensor_mb']:.0f} MB "
          f"(model {imp['bytes'] / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
