"""Import speed and peak memory: load_hf vs a raw read of the same files, same run.

Writes a synthetic multi-shard fp32 Qwen3 checkpoint (~2 GB by default), then in fresh child
processes (so peak RSS is per task): (1) reads every shard raw into one reused buffer, (2) imports
it with load_hf, (3) only maps checkpoint-sized fresh memory (the page faults/zeroing any import
must pay for the model it builds: context for where the time goes). Reports GB/s for each, the
import/raw ratio, and peak RSS above the post-import-of-jax baseline against the final model
size + the largest tensor.

    python3 scripts/bench_import.py [--dir /tmp/bench_import] [--layers 8] [--baseline COMMIT]
        [--vocab 32000 --hidden 2048 --mlp 5504 --shard-bytes 500000000]  (the defaults: ~2 GB, 5 shards)

--baseline COMMIT also imports with that commit's `siamgpt_jax` (extracted with `git archive`) in
the same interleaved run, so old and new are compared side by side on the same page-cache state.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench_baseline import extract_package

# A baseline child runs another checkout's package (SIAMGPT_SRC); everything else runs this one.
sys.path.insert(0, os.environ.get("SIAMGPT_SRC") or str(Path(__file__).resolve().parents[1]))


def _config(layers: int, vocab: int = 32000, hidden: int = 2048, mlp: int = 5504) -> dict:
    return dict(model_type="qwen3", vocab_size=vocab, hidden_size=hidden, intermediate_size=mlp,
                num_hidden_layers=layers, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                tie_word_embeddings=False, max_window_layers=layers)


def write_checkpoint(path: Path, layers: int, vocab: int = 32000, hidden: int = 2048, mlp: int = 5504,
                     shard_bytes: int = 500_000_000) -> None:
    import numpy as np
    from safetensors.numpy import save_file
    from tqdm import tqdm

    from siamgpt_jax.convert import names
    from siamgpt_jax.model.config import Qwen3Config

    cfg = _config(layers, vocab, hidden, mlp)
    config = Qwen3Config.from_hf_dict(cfg)
    shapes = names.expected_hf_shapes(config)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shards, cur, size = [], {}, 0
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * 4
        if cur and size + n > shard_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[name] = shape
        size += n
    shards.append(cur)
    weight_map = {}
    for k, shard in enumerate(tqdm(shards, desc="write shards")):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: rng.standard_normal(s, dtype=np.float32) for n, s in shard.items()}, str(path / fname),
                  metadata={"format": "pt"})
        weight_map.update({n: fname for n in shard})
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (path / "config.json").write_text(json.dumps(cfg))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, path: Path) -> dict:
    import jax
    import numpy as np

    jax.numpy.zeros(1).block_until_ready()  # backend up: part of the baseline
    if mode == "import":  # Python module imports (~0.5 s of flax etc.) are not checkpoint import
        from flax import nnx

        from siamgpt_jax.convert import load_hf
    files = sorted(path.glob("*.safetensors"))
    nbytes = sum(f.stat().st_size for f in files)
    base = _rss_mb()
    t = time.perf_counter()
    out = {"mode": mode, "bytes": nbytes}
    if mode == "fill":
        from siamgpt_jax.convert.aligned import aligned_empty

        chunk = [aligned_empty((f.stat().st_size,), np.uint8, populate=True) for f in files]  # kept: like a model
        del chunk
    elif mode == "raw":
        buf = bytearray(max(f.stat().st_size for f in files))
        for f in files:
            with open(f, "rb", buffering=0) as h:
                h.readinto(buf)
    else:
        model = load_hf(path, progress=False)
        leaves = jax.tree.leaves(nnx.state(model))
        jax.block_until_ready(leaves)
        out["model_mb"] = sum(x.nbytes for x in leaves) / 2**20
        out["largest_param_mb"] = max(x.nbytes for x in leaves) / 2**20
    out["seconds"] = time.perf_counter() - t
    out["gb_per_s"] = nbytes / out["seconds"] / 1e9
    out["peak_rss_above_baseline_mb"] = _rss_mb() - base
    return out


def _extract(commit: str) -> str:
    """That commit's package in a temporary folder (for the baseline child's sys.path)."""
    import tempfile

    return str(extract_package(commit, Path(tempfile.mkdtemp(prefix=f"siamgpt_{commit}_"))))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dir", default="/tmp/bench_import")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--mlp", type=int, default=5504)
    p.add_argument("--shard-bytes", type=int, default=500_000_000)
    p.add_argument("--baseline", help="also time this commit's load_hf, side by side")
    p.add_argument("--child", choices=["raw", "import", "fill"])
    a = p.parse_args()
    path = Path(a.dir)
    if a.child:
        print(json.dumps(child(a.child, path)))
        return
    if not (path / "config.json").exists():
        write_checkpoint(path, a.layers, a.vocab, a.hidden, a.mlp, a.shard_bytes)
    modes = ["raw", "import", "fill"] + (["baseline"] if a.baseline else [])
    src = _extract(a.baseline) if a.baseline else None
    results = []
    for mode in modes * 2:  # interleaved: every mode sees the same page-cache state
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        if mode == "baseline":
            env["SIAMGPT_SRC"] = src
        r = subprocess.run([sys.executable, __file__, "--dir", str(path), "--child", "import" if mode == "baseline" else mode],
                           capture_output=True, text=True, check=True, env=env)
        results.append({**json.loads(r.stdout.strip().splitlines()[-1]), "mode": mode})
        print(results[-1])
    raw = max(r["gb_per_s"] for r in results if r["mode"] == "raw")
    imp = max(r["gb_per_s"] for r in results if r["mode"] == "import")
    last = [r for r in results if r["mode"] == "import"][-1]
    budget = last["model_mb"] + last["largest_param_mb"]
    print(f"checkpoint {results[0]['bytes'] / 1e9:.2f} GB in {len(list(path.glob('*.safetensors')))} shards")
    fill = max(r["gb_per_s"] for r in results if r["mode"] == "fill")
    print(f"raw read {raw:.2f} GB/s, import {imp:.2f} GB/s, ratio {imp / raw:.2f} (goal >= 0.5)")
    print(f"mapping fresh memory alone {fill:.2f} GB/s: {1 / fill:.2f} s/GB of the import's {1 / imp:.2f} s/GB")
    if a.baseline:
        old = max(r["gb_per_s"] for r in results if r["mode"] == "baseline")
        print(f"baseline {a.baseline}: import {old:.2f} GB/s, ratio {old / raw:.2f}; this checkout is x{imp / old:.2f} faster")
    print(f"import peak RSS above baseline {last['peak_rss_above_baseline_mb']:.0f} MB; model {last['model_mb']:.0f} MB "
          f"+ largest param {last['largest_param_mb']:.0f} MB = {budget:.0f} MB (goal: peak <= that)")


if __name__ == "__main__":
    main()
