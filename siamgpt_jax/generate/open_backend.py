"""`open_backend(spec)`: the one place that turns a `--model` argument into a Backend.

An http(s) URL is an OpenAI-compatible endpoint (vLLM, SGLang, `siamgpt-jax serve`), optionally
naming its model after a `#`: `http://host:8000/v1#Qwen3-32B` (without one, the endpoint's only
model is used). Anything else is a local HF folder, run folder or checkpoint for the in-process JAX
sampler. Options go to the chosen backend's constructor (`OpenAIBackend(...)` or
`JaxBackend.from_path(...)`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from siamgpt_jax.generate.backend import Backend


def is_url(spec: str) -> bool:
    return urlsplit(spec).scheme in ("http", "https")


def split_url(spec: str) -> tuple[str, str | None]:
    """'http://h:8000#name' -> ('http://h:8000/v1', 'name'); an empty path becomes /v1, as the
    OpenAI client expects the API root."""
    parts = urlsplit(spec)
    path = parts.path.rstrip("/") or "/v1"
    base = parts._replace(path=path, fragment="").geturl()
    return base, parts.fragment or None


def open_backend(spec: str, **options) -> Backend:
    if is_url(spec):
        from siamgpt_jax.generate.openai_backend import OpenAIBackend  # lazy: an endpoint needs no jax

        base_url, model = split_url(spec)
        if model is not None:
            options.setdefault("model", model)
        return OpenAIBackend(base_url, **options)
    from siamgpt_jax.generate.jax_backend import JaxBackend  # lazy: a local model needs no openai client

    return JaxBackend.from_path(spec, **options)
