#!/usr/bin/env bash
# The main job on the embedded default, from a fresh clone: verify the sample corpora, train a tiny
# Qwen3 (real vocabulary) on CPU, checkpoint, export to Hugging Face format and reload it with
# transformers. Extra arguments are config overrides, e.g. `bash scripts/demo.sh train.steps=10`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PYTHAINLP_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/siamgpt-jax demo "$@"
