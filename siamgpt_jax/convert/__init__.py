"""Hugging Face <-> siamgpt-jax weight conversion (one name table, streaming import, atomic export)."""

from siamgpt_jax.convert.errors import CheckpointError, UnsupportedCheckpointError


def __getattr__(name):  # lazy: `import siamgpt_jax.convert` stays cheap for the CLI
    if name == "load_hf":
        from siamgpt_jax.convert.hf_import import load_hf

        return load_hf
    if name == "save_hf":
        from siamgpt_jax.convert.hf_export import save_hf

        return save_hf
    raise AttributeError(name)


__all__ = ["CheckpointError", "UnsupportedCheckpointError", "load_hf", "save_hf"]
