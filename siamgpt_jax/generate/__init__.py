"""Text generation: the KV-cache sampler on the project's own Qwen3, the `Backend` interface (the
in-process sampler or any OpenAI-compatible endpoint) and the OpenAI-compatible server."""
