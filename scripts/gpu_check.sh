#!/usr/bin/env bash
# The GPU check, as one command on a machine with an accelerator (results under ${OUT:-gpu_out}/):
#   1. cuDNN attention vs the XLA reference (values, grads, packed segments), whether it compiles at
#      the training shapes (batch 2, seq 4096, packed), and which path "auto" picks
#   2. train-step tokens/s and MFU of Qwen3-1.7B at seq_len 4096 (bf16 compute, fp32 params + AdamW)
#   3. `siamgpt-jax eval` wall time and tokens/s on the 105 IFEval-Th prompts, Qwen3-1.7B shape in bf16
#      (skipped, with one line saying why, where the eval's packages are missing)
# Runs unchanged on CPU at a tiny size: SIZE=tiny bash scripts/gpu_check.sh
# Needs only jax, flax, optax, orbax-checkpoint and numpy, which the lent GPU machine's image has:
# no wheels to carry (tests/train/test_bench_scripts.py runs it with grain, pythainlp etc. hidden).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# The share of GPU memory JAX preallocates: the same default as the multi-host launcher, stated here so
# the MFU and memory figures are taken under the setting a training run gets.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}
# Each part below runs on its own: a failure is printed and the next part still runs.
python3 - <<'PY' 2>&1 | tee "$out/devices.txt"
import os, jax
print("jax", jax.__version__, "devices", jax.devices())
print("XLA_PYTHON_CLIENT_MEM_FRACTION", os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION"))
for d in jax.local_devices():
    stats = d.memory_stats() or {}
    if "bytes_limit" in stats:
        print(f"{d}: {stats['bytes_limit'] / 2**30:.1f} GiB usable by JAX")
PY
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee -a "$out/devices.txt"
if [ "${SIZE:-full}" = tiny ]; then
  python3 scripts/gpu_check.py --preset qwen3-tiny --seq-len 128 --batch 2 --steps 1 --dtype float32 \
    --remat full --attention xla --json "$out/mfu.jsonl"
  rc=$?
  python3 scripts/bench_eval.py --preset qwen3-tiny --limit 16 --max-new-tokens 8 --batch-size 16 --json "$out/eval.jsonl" 2>&1 | tail -25
  exit $rc
fi
timeout 300 python3 tests/model/gpu_attention_check.py "$out/attention.json" 2>&1 | tail -40 \
  || echo "attention check: FAILED or timed out (see above); going on"
python3 scripts/gpu_check.py --preset qwen3-1.7b --seq-len 4096 --batch 8 --steps 5 --warmup 2 \
  --remat full,dots --attention cudnn --json "$out/mfu.jsonl" 2>&1 | grep -v "^W0000"
python3 scripts/gpu_check.py --preset qwen3-1.7b --seq-len 4096 --batch 8 --steps 3 --warmup 1 \
  --remat full --attention xla --json "$out/mfu.jsonl" 2>&1 | grep -v "^W0000"
timeout 600 python3 scripts/bench_eval.py --preset qwen3-1.7b --dtype bfloat16 --batch-size 64 --max-new-tokens 512 \
  --json "$out/eval.jsonl" 2>&1 | grep -v "^W0000" | tail -25
