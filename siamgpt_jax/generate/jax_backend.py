"""The in-process Backend: our Qwen3 and the KV-cache Sampler, on an HF folder, run folder or checkpoint.

    backend = JaxBackend.from_path("runs/demo")            # or an HF folder, or runs/demo/checkpoints/40
    [gen] = backend.generate([GenerationRequest(messages=({"role": "user", "content": "สวัสดี"},))])

Tokenizer: the model folder's tokenizer.json when it has one (an HF folder, or RUN_DIR/tokenizer),
else the tokenizer the run was trained with, else Qwen3's built offline (loader/tokenizer.py).
A request whose prompt cannot be rendered or does not fit comes back as finish_reason="error".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from siamgpt_jax.convert import load_hf
from siamgpt_jax.convert.errors import CheckpointError
from siamgpt_jax.errors import UserError
from siamgpt_jax.generate.backend import Generation, GenerationRequest, TextSoFar
from siamgpt_jax.generate.prompts import fit_prompt, prompt_ids
from siamgpt_jax.generate.sampler import Sampler, model_params
from siamgpt_jax.hub import resolve_model
from siamgpt_jax.loader.tokenizer import load_tokenizer
from siamgpt_jax.model.config import Qwen3Config, dtype_of
from siamgpt_jax.model.qwen3 import param_shardings
from siamgpt_jax.sharding import MESH_AXES, Rules
from siamgpt_jax.train.checkpoint import CheckpointConfig, Checkpointer
from siamgpt_jax.train.export import find_checkpoint_dir, load_trained_model

EOS_TOKENS = ("<|im_end|>", "<|endoftext|>")


def eos_ids(tokenizer) -> tuple[int, ...]:
    return tuple(tokenizer.token_to_id(t) for t in EOS_TOKENS if tokenizer.token_to_id(t) is not None)


class JaxBackend:
    """Backend over pure Qwen3 params. Options: max_batch (rows per device call), chunk (decode
    steps per call), max_len (prompt + new tokens, default the model's max_position_embeddings),
    truncate (keep a too-long prompt's last tokens instead of failing the request)."""

    def __init__(
        self,
        params: dict[str, Any],
        config: Qwen3Config,
        tokenizer,
        *,
        model_name: str = "siamgpt-jax",
        dtype=jnp.float32,
        cache_dtype=None,
        mesh=None,
        rules: Rules | None = None,
        max_batch: int = 64,
        chunk: int = 16,
        max_len: int | None = None,
        truncate: bool = False,
    ):
        self.model_name = model_name
        self.config = config
        self.tokenizer = tokenizer
        self.max_len = int(max_len or config.max_position_embeddings)
        self.truncate = truncate
        self.sampler = Sampler(
            params, config, eos_ids=eos_ids(tokenizer), pad_id=tokenizer.pad_id, dtype=dtype_of(dtype),
            cache_dtype=dtype_of(cache_dtype), mesh=mesh, rules=rules, max_batch=max_batch, chunk=chunk,
        )

    @classmethod
    def from_model(cls, model, tokenizer, **options) -> "JaxBackend":
        """From a Qwen3 module (e.g. the one training just returned)."""
        options.setdefault("dtype", model.dtype)
        return cls(model_params(model), model.config, tokenizer, **options)

    @classmethod
    def from_path(cls, path: str | Path, *, tokenizer: str | Path | None = None, param_dtype=None,
                  mesh=None, rules: Rules | None = None, **options) -> "JaxBackend":
        """An HF folder (config.json + safetensors) or hub model id, a training run folder, its
        checkpoints folder or one step folder. param_dtype: None keeps the saved dtype. Other options go to __init__."""
        path = resolve_model(path).path  # a hub id ORG/NAME[@REV] comes from the hub cache; a path stays
        if not path.exists():
            raise UserError(f"{path}: no such model folder (expected an HF folder, a run folder or a checkpoint)")
        compute = dtype_of(options.get("dtype", "float32"))
        options["dtype"] = compute
        if (path / "config.json").is_file() and not (path / "checkpoints").is_dir():
            model, tok_dir = _load_hf_folder(path, dtype_of(param_dtype), compute, mesh, rules)
        else:
            model, tok_dir = _load_run(path, compute)
            if param_dtype is not None:
                model = _cast(model, dtype_of(param_dtype))
        tokenizer = load_tokenizer(tokenizer or tok_dir)
        params = model_params(model)
        if mesh is not None:
            params = _place(model, params, mesh, rules)
        options.setdefault("model_name", path.name if not path.name.isdigit() else f"{path.parent.parent.name}-step{path.name}")
        return cls(params, model.config, tokenizer, mesh=mesh, rules=rules, **options)

    streams_text = True  # generate(..., on_text=) reports each row's text after every decode chunk

    def generate(self, requests: Sequence[GenerationRequest], on_text: TextSoFar | None = None) -> list[Generation]:
        out: list[Generation | None] = [None] * len(requests)
        todo, prompts = [], []
        for i, req in enumerate(requests):
            try:
                ids = self.prompt_ids(req, where=f"request {i}")
            except ValueError as e:
                out[i] = Generation(text="", finish_reason="error", error=str(e), error_status=400)
                continue
            todo.append(i)
            prompts.append(ids)
        if todo:
            sampling = [requests[i].sampling for i in todo]
            stops = [requests[i].sampling.stop for i in todo]

            def stopped(j: int, tokens: list[int]) -> bool:
                if not stops[j] and on_text is None:
                    return False
                text = self.tokenizer.decode(tokens)
                if stops[j] and _stop_at(text, stops[j]) is not None:
                    return True
                if on_text is not None:
                    on_text(todo[j], settled_text(text, stops[j]))
                return False

            results = self.sampler.generate(prompts, sampling, stopped)
            for j, (i, r) in enumerate(zip(todo, results)):
                text = self.tokenizer.decode(r.tokens)
                finish = r.finish_reason
                cut = _stop_at(text, stops[j])
                if cut is not None:
                    text, finish = text[:cut], "stop"
                out[i] = Generation(
                    text=text, finish_reason=finish, prompt_tokens=len(prompts[j]), completion_tokens=len(r.tokens),
                    token_logprobs=tuple(r.logprobs) if r.logprobs is not None else None,
                    tokens=tuple(self.tokenizer.decode([t]) for t in r.tokens) if r.logprobs is not None else None,
                )
        return out  # type: ignore[return-value]

    def prompt_ids(self, request: GenerationRequest, where: str = "request") -> list[int]:
        """The request's prompt ids as they will run (rendered, checked against max_len, maybe truncated)."""
        ids = prompt_ids(self.tokenizer, request, where)
        if max(ids) >= self.config.vocab_size:
            raise ValueError(f"{where}: token id {max(ids)} is outside the model's vocabulary of {self.config.vocab_size}: "
                             "is this the tokenizer the model was trained with?")
        return fit_prompt(ids, request.sampling.max_new_tokens, self.max_len, truncate=self.truncate, where=where)

    def close(self) -> None:
        self.sampler.params = None


def tensor_parallel_mesh(tensor: int, devices=None):
    """A mesh over all devices: `tensor` of them split each layer's heads (and the KV cache's KV
    heads), the rest split the batch rows."""
    devices = list(jax.devices() if devices is None else devices)
    if tensor < 1 or len(devices) % tensor:
        raise UserError(f"tensor parallelism {tensor} does not divide the {len(devices)} devices")
    return Mesh(np.asarray(devices, dtype=object).reshape(len(devices) // tensor, 1, tensor, 1), MESH_AXES)


def settled_text(text: str, stops: Sequence[str]) -> str:
    """The part of an unfinished row's decoded text that will stay as it is: without a trailing
    replacement character (a multi-byte character, Thai ones included, whose bytes are not all
    generated yet) and without the last len(longest stop) - 1 characters, where a stop string may
    be starting (the final text is cut before it)."""
    text = text.rstrip("\ufffd")
    hold = max((len(s) for s in stops), default=1) - 1
    return text[: len(text) - hold] if hold > 0 else text


def _stop_at(text: str, stops: Sequence[str]) -> int | None:
    """Where the earliest stop string starts in text, or None."""
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None


def _load_hf_folder(path: Path, param_dtype, compute, mesh, rules):
    try:
        model = load_hf(path, dtype=param_dtype, compute_dtype=compute, mesh=mesh, rules=rules, progress=False, attention="xla")
    except CheckpointError as e:
        raise UserError(str(e)) from None
    return model, (path if (path / "tokenizer.json").is_file() else None)


def _load_run(path: Path, compute):
    """A run folder, RUN_DIR/checkpoints or a step folder -> (model, tokenizer folder or None)."""
    try:
        directory, step = find_checkpoint_dir(path)
    except FileNotFoundError:
        raise UserError(f"{path}: not a model: no config.json (HF folder) and no training checkpoint "
                        "(RUN_DIR, RUN_DIR/checkpoints or a step folder)") from None
    model = load_trained_model(path, dtype=compute)
    run_dir = directory.parent
    if (run_dir / "tokenizer" / "tokenizer.json").is_file():
        return model, run_dir / "tokenizer"
    ckpt = Checkpointer(directory, CheckpointConfig(async_save=False))
    try:
        saved = ckpt.read_config(step)
    finally:
        ckpt.close()
    return model, (saved.get("job", {}).get("data", {}) or {}).get("tokenizer")


def _cast(model, dtype):
    graphdef, state = nnx.split(model)
    state = jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, state)
    return nnx.merge(graphdef, state)


def _place(model, params, mesh, rules):
    """Put params on the mesh by their logical axes (an HF load placed them already; a run did not)."""
    shardings = nnx.to_pure_dict(param_shardings(nnx.split(model, nnx.Param, ...)[1], mesh, rules))
    flat = {"embed": shardings["embed"], "layers": shardings["layers"], "final_norm": shardings["final_norm"]}
    if "lm_head" in params:
        flat["lm_head"] = shardings["lm_head"]
    return jax.device_put(params, flat)
