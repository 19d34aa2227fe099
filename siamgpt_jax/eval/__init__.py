"""`siamgpt-jax eval`: what the paper measures (IFEval-Th, code-switching stability, multi-turn with
an LLM judge) on HF folders, run folders, checkpoints and OpenAI-compatible endpoints."""
