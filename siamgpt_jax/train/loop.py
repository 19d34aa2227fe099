"""The training loop: the imperative shell around the pure `train_step`.

Read top to bottom: build mesh, tokenizer, model, optimizer and state; restore if asked; then
step, log, evaluate and checkpoint until done, a stop signal, or a non-finite loss.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from siamgpt_jax import config as config_lib
from siamgpt_jax.model.config import PEAK_TFLOPS, flops_per_token
from siamgpt_jax.parallel.batch_shards import BatchShards, from_full_batch
from siamgpt_jax.parallel.mesh import make_mesh
from siamgpt_jax.sharding import logical_to_spec
from siamgpt_jax.train.checkpoint import Checkpointer
from siamgpt_jax.train.config import JobConfig
from siamgpt_jax.train.optimizer import learning_rate_schedule, make_optimizer
from siamgpt_jax.train.state import ModelDef, abstract_train_state, create_train_state, state_shardings
from siamgpt_jax.train.step import (
    StepConfig,
    batch_sharding,
    jit_eval_step,
    jit_train_step,
    make_eval_step,
    make_train_step,
)



class NonFiniteLossError(RuntimeError):
    pass


@dataclass
class TrainResult:
    run_dir: Path
    first_loss: float | None = None
    last_loss: float | None = None
    steps_done: int = 0
    last_checkpoint: int | None = None
    stopped_by: str = "completed"  # completed | signal | non_finite
    losses: list[float] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    state: Any = None  # the final TrainState (on device)
    model_def: ModelDef | None = None


def _dtype(name: str):
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def build_model(cfg: JobConfig, mesh, rules):
    """Random init from a preset, or an HF import, placed directly on the mesh."""
    kwargs = dict(
        param_dtype=_dtype(cfg.model.param_dtype),
        dtype=_dtype(cfg.model.dtype),
        remat=cfg.model.remat,
        attention=cfg.model.attention,
        kernels=cfg.model.kernels,
    )
    if cfg.model.hf_path:
        from siamgpt_jax.convert import load_hf

        return load_hf(cfg.model.hf_path, dtype=kwargs.pop("param_dtype"), mesh=mesh, rules=rules, **kwargs)
    from siamgpt_jax.model.qwen3 import init_model

    return init_model(cfg.model.architecture(), seed=cfg.seed, mesh=mesh, rules=rules, **kwargs)


def peak_flops_per_device(cfg: JobConfig) -> float | None:
    if cfg.train.peak_tflops_per_device:
        return cfg.train.peak_tflops_per_device * 1e12
    kind = jax.devices()[0].device_kind
    for name, tflops in PEAK_TFLOPS.items():
        if name in kind:
            return tflops * 1e12
    return None


class _StopFlag:
    """SIGTERM/SIGINT request a checkpoint and a clean exit after the current step."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, _frame):
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@jax.jit
def _count_tokens(segment_ids: jax.Array) -> jax.Array:
    return jnp.sum(segment_ids > 0)


def _global_batch_tokens(segment_ids: jax.Array) -> int:
    """Non-padding tokens of the whole global batch (every process gets the same count)."""
    return int(_count_tokens(segment_ids))


def check_batch_divides_mesh(global_batch: int, micro_batches: int, mesh, rules) -> None:
    """Each micro-batch is split over the mesh axes the 'batch' rule names; say so before XLA does."""
    spec = logical_to_spec(("batch",), rules, mesh)
    axes = () if not spec or spec[0] is None else (spec[0],) if isinstance(spec[0], str) else spec[0]
    shards = math.prod(mesh.shape[a] for a in axes)
    if global_batch % micro_batches or (global_batch // micro_batches) % shards:
        raise config_lib.ConfigError(
            f"train.global_batch={global_batch} / train.micro_batches={micro_batches} must be a multiple of "
            f"{shards}, the number of batch shards (mesh axes {list(axes)} of {dict(mesh.shape)})"
        )


def train(cfg: JobConfig, *, resume: bool = False, progress: bool = True, stop_at_step: int | None = None) -> TrainResult:
    """Run (or resume) the job. `stop_at_step` ends this run early, with a checkpoint, as a preemption would."""
    from siamgpt_jax.loader.pipeline import make_loader
    from siamgpt_jax.loader.tokenizer import load_tokenizer

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    is_chief = jax.process_index() == 0
    if is_chief:
        (run_dir / "config.json").write_text(json.dumps(config_lib.to_dict(cfg), indent=2), encoding="utf-8")

    # --- mesh, model, optimizer, state ---
    mesh = make_mesh(cfg.mesh)
    rules = dict(cfg.mesh.rules)
    arch = cfg.model.architecture()
    model = build_model(cfg, mesh, rules)
    model_def, params = ModelDef.split(model)
    del model
    optimizer = make_optimizer(cfg.optim, cfg.train.steps)
    schedule = learning_rate_schedule(cfg.optim, cfg.train.steps)
    shardings = state_shardings(model_def, optimizer, mesh, rules)
    state = create_train_state(params, optimizer, shardings)
    del params

    # --- data ---
    tokenizer = load_tokenizer(cfg.data.tokenizer)
    if tokenizer.vocab_size > arch.vocab_size:
        # an out-of-range id would be silently clamped by the embedding gather
        raise config_lib.ConfigError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is {arch.vocab_size}"
        )
    if cfg.train.global_batch % jax.process_count():
        raise config_lib.ConfigError(
            f"train.global_batch={cfg.train.global_batch} is not divisible by the {jax.process_count()} processes"
        )
    check_batch_divides_mesh(cfg.train.global_batch, cfg.train.micro_batches, mesh, rules)
    in_sharding = batch_sharding(mesh, rules)

    # Each process loads only the row blocks on its devices; block b is always loader shard b, so
    # the global batch is the same on any number of processes (parallel/batch_shards.py).
    def block_loader(split: str, **kw):
        def make(block: int, num_blocks: int, rows: int):
            return iter(make_loader(cfg.data, tokenizer, batch_size=rows, seed=cfg.seed, split=split,
                                    process_index=block, process_count=num_blocks, **kw))
        return BatchShards(in_sharding, cfg.train.global_batch, cfg.data.seq_len, make)

    data_iter = block_loader("train")

    # --- checkpoints ---
    ckpt = Checkpointer(cfg.checkpoint.dir or run_dir / "checkpoints", cfg.checkpoint)
    if resume and ckpt.latest_step() is not None:
        abstract = abstract_train_state(model_def, optimizer, shardings)
        state, data_state, _ = ckpt.restore(abstract)
        data_iter.set_state(data_state)
        print(f"resumed from {ckpt.directory} at step {int(state.step)}", flush=True)

    step_cfg = StepConfig(cfg.train.micro_batches, cfg.train.loss_chunk, cfg.train.z_loss)
    train_step = jit_train_step(make_train_step(model_def, optimizer, step_cfg, schedule), mesh, rules, shardings)
    eval_step = jit_eval_step(make_eval_step(model_def, step_cfg), mesh, rules, shardings.params)

    def evaluate() -> float:
        # held-out sets are small (maybe fewer records than row blocks): every process loads the
        # whole eval batch and keeps its rows, which is process-count independent too
        eval_iter = iter(make_loader(cfg.data, tokenizer, batch_size=cfg.train.global_batch, seed=cfg.seed,
                                     split="eval", num_epochs=1, process_index=0, process_count=1))
        total, tokens = 0.0, 0.0
        for _, batch in zip(range(cfg.train.eval_batches), eval_iter):
            out = jax.device_get(eval_step(state.params, from_full_batch(batch, in_sharding)))
            total, tokens = total + float(out["loss_sum"]), tokens + float(out["loss_tokens"])
        return total / max(tokens, 1.0)

    # --- logging ---
    flops_tok = flops_per_token(arch, cfg.data.seq_len)
    peak = peak_flops_per_device(cfg)
    metrics_file = open(run_dir / "metrics.jsonl", "a", encoding="utf-8") if is_chief else None
    tb = None
    if is_chief:
        from tensorboardX import SummaryWriter

        tb = SummaryWriter(str(run_dir / "tensorboard"))
    bar = None
    start_step = int(state.step)
    if progress and is_chief:
        from tqdm import tqdm

        bar = tqdm(total=cfg.train.steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)

    result = TrainResult(run_dir=run_dir, steps_done=start_step, last_checkpoint=ckpt.latest_step())
    # the architecture is stored resolved, so export never needs the original HF folder
    config_dict = {"job": config_lib.to_dict(cfg), "architecture": dataclasses.asdict(arch)}
    try:
        with _StopFlag() as stop:
            step = start_step
            while step < cfg.train.steps:
                t0 = time.perf_counter()
                batch = next(data_iter)
                tokens = _global_batch_tokens(batch["segment_ids"])
                state, metrics = train_step(state, batch)
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                dt = time.perf_counter() - t0
                step += 1
                loss = metrics["loss"]
                if not math.isfinite(loss) or not math.isfinite(metrics["grad_norm"]):
                    ckpt.wait()
                    result.stopped_by = "non_finite"
                    raise NonFiniteLossError(
                        f"non-finite loss ({loss}) or grad norm ({metrics['grad_norm']}) at step {step}; "
                        f"stopped without saving this state. Last good checkpoint: "
                        f"{ckpt.latest_step()} in {ckpt.directory}"
                    )
                record = {"step": step, **metrics, "tokens": tokens, "step_time_s": dt, "tokens_per_s": tokens / dt}
                if peak:
                    record["mfu"] = flops_tok * record["tokens_per_s"] / (peak * jax.device_count())
                result.losses.append(loss)
                result.first_loss = loss if result.first_loss is None else result.first_loss
                result.last_loss, result.steps_done = loss, step
                if cfg.train.eval_every and step % cfg.train.eval_every == 0:
                    record["eval_loss"] = evaluate()
                    result.eval_losses.append((step, record["eval_loss"]))
                if is_chief and (step % cfg.train.log_every == 0 or step == cfg.train.steps):
                    metrics_file.write(json.dumps(record) + "\n")
                    metrics_file.flush()
                    for k, v in record.items():
                        if k != "step":
                            tb.add_scalar(f"train/{k}", v, step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")
                final = step == cfg.train.steps or step == stop_at_step or stop.signal_name is not None
                # the data state is gathered from every process (a collective): only when saving
                due = final or step % ckpt.every == 0
                if due and ckpt.save(step, state, data_iter.get_state(), config_dict, force=final):
                    result.last_checkpoint = step
                if stop.signal_name is not None:
                    result.stopped_by = "signal"
                    print(f"\n{stop.signal_name} received: saved checkpoint at step {step}, exiting", flush=True)
                    break
                if step == stop_at_step:
                    result.stopped_by = "stop_at_step"
                    break
    finally:
        ckpt.close()
        if bar is not None:
            bar.close()
        if metrics_file is not None:
            metrics_file.close()
        if tb is not None:
            tb.close()
    result.state, result.model_def = state, model_def
    return result
