"""siamgpt-jax: supervised fine-tuning of Qwen3 into a stable Thai model, in JAX/Flax."""

__version__ = "0.1.0"
