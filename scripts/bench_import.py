"""Import speed and peak memory: load_hf vs a raw read of the same files, same run.

Writes a synthetic multi-shard fp32 Qwen3 checkpoint (~2 GB by default), then in fresh child
processes (so peak RSS is per task): (1) reads every shard raw into one reused buffer, (2) imports
it with load_hf, (3) only maps checkpoint-sized fresh memory (the page faults/zeroing any import
must pay for the model it builds: context for where the time goes). Reports GB/s for each, the
import/raw ratio, and peak RSS above the post-import-of-jax baseline against the final model
size + the largest tensor.

    python3 scripts/bench_import.py [--dir /tmp/bench_import] [--layers 8]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _config(layers: int) -> dict:
    return dict(model_type="qwen3", vocab_size=32000, hidden_size=2048, intermediate_size=5504,
                num_hidden_layers=layers, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                tie_word_embeddings=False, max_window_layers=layers)


def write_checkpoint(path: Path, layers: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file
    from tqdm import tqdm

    from siamgpt_jax.convert import names
    from siamgpt_jax.model.config import Qwen3Config

    cfg = _config(layers)
    config = Qwen3Config.from_hf_dict(cfg)
    shapes = names.expected_hf_shapes(config)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shards, cur, size = [], {}, 0
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * 4
        if cur and size + n > 500_000_000:
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
    files = sorted(path.glob("*.safetensors"))
    nbytes = sum(f.stat().st_size for f in files)
    base = _rss_mb()
    t = time.perf_counter()
    out = {"mode": mode, "bytes": nbytes}
    if mode == "fill":
        from siamgpt_jax.convert.blocked import aligned_empty

        chunk = [aligned_empty((f.stat().st_size,), np.uint8) for f in files]  # kept: like a model
        del chunk
    elif mode == "raw":
        buf = bytearray(max(f.stat().st_size for f in files))
        for f in files:
            with open(f, "rb", buffering=0) as h:
                h.readinto(buf)
    else:
        from flax import nnx

        from siamgpt_jax.convert import load_hf

        model = load_hf(path, progress=False)
        leaves = jax.tree.leaves(nnx.state(model))
        jax.block_until_ready(leaves)
        out["model_mb"] = sum(x.nbytes for x in leaves) / 2**20
        out["largest_param_mb"] = max(x.nbytes for x in leaves) / 2**20
    out["seconds"] = time.perf_counter() - t
    out["gb_per_s"] = nbytes / out["seconds"] / 1e9
    out["peak_rss_above_baseline_mb"] = _rss_mb() - base
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dir", default="/tmp/bench_import")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--child", choices=["raw", "import", "fill"])
    a = p.parse_args()
    path = Path(a.dir)
    if a.child:
        print(json.dumps(child(a.child, path)))
        return
    if not (path / "config.json").exists():
        write_checkpoint(path, a.layers)
    results = []
    for mode in ("raw", "import", "fill", "raw", "import", "fill"):  # interleaved: both see the same page-cache state
        r = subprocess.run([sys.executable, __file__, "--dir", str(path), "--child", mode],
                           capture_output=True, text=True, check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(results[-1])
    raw = max(r["gb_per_s"] for r in results if r["mode"] == "raw")
    imp = max(r["gb_per_s"] for r in results if r["mode"] == "import")
    last = [r for r in results if r["mode"] == "import"][-1]
    budget = last["model_mb"] + last["largest_param_mb"]
    print(f"checkpoint {results[0]['bytes'] / 1e9:.2f} GB in {len(list(path.glob('*.safetensors')))} shards")
    fill = max(r["gb_per_s"] for r in results if r["mode"] == "fill")
    print(f"raw read {raw:.2f} GB/s, import {imp:.2f} GB/s, ratio {imp / raw:.2f} (goal >= 0.5)")
    print(f"mapping fresh memory alone {fill:.2f} GB/s: {1 / fill:.2f} s/GB of the import's {1 / imp:.2f} s/GB")
    print(f"import peak RSS above baseline {last['peak_rss_above_baseline_mb']:.0f} MB; model {last['model_mb']:.0f} MB "
          f"+ largest param {last['largest_param_mb']:.0f} MB = {budget:.0f} MB (goal: peak <= that)")


if __name__ == "__main__":
    main()
