#!/usr/bin/env bash
# Creates .venv (once) and installs siamgpt-jax with its test extras into it.
# torch==2.13.0 resolves to the CPU build on this machine's disk; it is only used by the parity tests
# and by the demo's reload-with-transformers check.
set -euo pipefail
cd "$(dirname "$0")/.."
# bubblewrap is the sandbox for LLM-written verifier code (siamgpt_jax/autoif/sandbox.py): a system
# package, installed here when we may (root with apt); otherwise the sandbox says how to install it.
if ! command -v bwrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null 2>&1 || echo "note: could not install bubblewrap"
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.siamgpt-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
