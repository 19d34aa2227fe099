#!/usr/bin/env bash
# Creates .venv (once) and installs siamgpt-jax with its test extras into it.
# torch==2.13.0 resolves to the CPU build on this machine's disk; it is only used by the parity tests
# and by the demo's reload-with-transformers check.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.siamgpt-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
