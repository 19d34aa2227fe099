"""Mesh-layout experiments above the trainer: the memory/communication planner, AOT compile reports of
the real train step, and the `siamgpt-jax mesh` CLI (plan, compile, bench)."""
