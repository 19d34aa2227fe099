#!/usr/bin/env bash
# The test suite, from a fresh clone: installs what it needs, then runs pytest on 8 virtual CPU devices.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PYTHAINLP_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 JAX_PLATFORMS=cpu
export XLA_FLAGS="${XLA_FLAGS:---xla_force_host_platform_device_count=8}"
exec .venv/bin/python -m pytest -q --timeout=1200 --durations=25 "$@"
