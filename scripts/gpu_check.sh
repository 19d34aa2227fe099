#!/usr/bin/env bash
# The GPU check, as one command on a machine with an accelerator (results under ${OUT:-gpu_out}/):
#   1. cuDNN attention vs the XLA reference (values, grads, packed segments) and which path "auto" picks
#   2. train-step tokens/s and MFU of Qwen3-1.7B at seq_len 4096 (bf16 compute, fp32 params + AdamW)
#   3. decode tokens/s and the fraction of HBM bandwidth reached: Qwen3-1.7B, batch 64, 512 new tokens
# Runs unchanged on CPU at a tiny size: SIZE=tiny bash scripts/gpu_check.sh
# Needs only jax, flax, optax, orbax-checkpoint and numpy, which the lent GPU machine's image has:
# no wheels to carry (tests/train/test_bench_scripts.py runs it with grain, pythainlp etc. hidden).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 -c "import jax; print(jax.__version__, jax.devices())" | tee "$out/devices.txt"
if [ "${SIZE:-full}" = tiny ]; then
  python3 scripts/gpu_check.py --preset qwen3-tiny --seq-len 128 --batch 2 --steps 1 --dtype float32 \
    --remat full --attention xla --json "$out/mfu.jsonl"
  python3 scripts/gpu_check.py --decode --preset qwen3-tiny --batch 2 --prompt-len 16 --new-tokens 8 --steps 1 \
    --dtype float32 --decode-chunk 4 --json "$out/decode.jsonl"
  exit $?
fi
timeout 180 python3 tests/model/gpu_attention_check.py "$out/attention.json" 2>&1 | tail -20
python3 scripts/gpu_check.py --preset qwen3-1.7b --seq-len 4096 --batch 8 --steps 5 --warmup 2 \
  --remat full,dots --attention cudnn --json "$out/mfu.jsonl" 2>&1 | grep -v "^W0000"
python3 scripts/gpu_check.py --preset qwen3-1.7b --seq-len 4096 --batch 8 --steps 3 --warmup 1 \
  --remat full --attention xla --json "$out/mfu.jsonl" 2>&1 | grep -v "^W0000"
python3 scripts/gpu_check.py --decode --preset qwen3-1.7b --batch 64 --prompt-len 128 --new-tokens 512 --steps 2 \
  --json "$out/decode.jsonl" 2>&1 | grep -v "^W0000"
