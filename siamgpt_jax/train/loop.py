"""The training loop: the imperative shell around the pure `train_step`.

Read top to bottom: load the tokenizer and print the data plan (epochs per source); build mesh, model,
optimizer and state; restore if asked; then step, log, evaluate and checkpoint until done, a stop
signal, or a non-finite loss.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils

from siamgpt_jax import config as config_lib
from siamgpt_jax.convert import load_hf
from siamgpt_jax.convert.errors import CheckpointError
from siamgpt_jax.convert.params_ckpt import load_params
from siamgpt_jax.hub import is_hub_spec, resolve_model
from siamgpt_jax.loader.epochs import format_plan, plan_for_config
from siamgpt_jax.loader.pipeline import make_loader
from siamgpt_jax.loader.tokenizer import load_tokenizer
from siamgpt_jax.model.config import PEAK_TFLOPS, flops_per_token, param_count
from siamgpt_jax.model.qwen3 import init_model
from siamgpt_jax.parallel.batch_shards import BatchShards, from_full_batch
from siamgpt_jax.parallel.mesh import make_mesh
from siamgpt_jax.sharding import logical_to_spec
from siamgpt_jax.train.checkpoint import Checkpointer, NonFiniteStateError
from siamgpt_jax.train.config import JobConfig, pin_hub_revisions
from siamgpt_jax.train.optimizer import learning_rate_schedule
from siamgpt_jax.train.run_folder import check_resume_config, prepare_fresh_start, truncate_metrics
from siamgpt_jax.train.setup import setup_from_model
from siamgpt_jax.train.state import ModelDef, abstract_train_state


class NonFiniteLossError(RuntimeError):
    pass


@dataclass
class TrainResult:
    run_dir: Path
    first_loss: float | None = None
    last_loss: float | None = None
    steps_done: int = 0
    last_checkpoint: int | None = None
    stopped_by: str = "completed"  # completed | already_done | signal | stop_at_step | non_finite
    losses: list[float] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    state: Any = None  # the final TrainState (on device)
    model_def: ModelDef | None = None


def build_model(cfg: JobConfig, mesh, rules):
    """Random init from a preset, an HF import or a params checkpoint, placed directly on the mesh,
    built with the step spec's model choices."""
    kwargs = cfg.step_spec().model_options()
    if cfg.model.hf_path:
        folder = resolve_model(cfg.model.hf_path).path
        return load_hf(folder, dtype=kwargs.pop("param_dtype"), compute_dtype=kwargs.pop("dtype"), mesh=mesh,
                       rules=rules, **kwargs)
    if cfg.model.params_checkpoint:
        return load_params(cfg.model.params_checkpoint, mesh=mesh, rules=rules, **kwargs)

    return init_model(cfg.model.architecture(), seed=cfg.seed, mesh=mesh, rules=rules, **kwargs)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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


def check_data_paths(cfg: JobConfig) -> None:
    """Every local file the run reads, checked before anything big is built or loaded (hub ids are
    checked when they are resolved, also before the model)."""
    def missing(path: str, kind: str, want_dir: bool) -> bool:
        if is_hub_spec(path, kind):
            return False
        return not (Path(path).is_dir() if want_dir else Path(path).is_file())

    for i, source in enumerate(cfg.data.sources):
        if missing(source.path, "dataset", False):
            raise FileNotFoundError(errno.ENOENT, f"data.sources[{i}].path: no such data file", source.path)
    if cfg.data.tokenizer and missing(cfg.data.tokenizer, "model", True):
        raise FileNotFoundError(errno.ENOENT, "data.tokenizer: no such tokenizer folder", cfg.data.tokenizer)
    if cfg.model.hf_path and not is_hub_spec(cfg.model.hf_path, "model") and \
            not (Path(cfg.model.hf_path) / "config.json").is_file():
        raise FileNotFoundError(errno.ENOENT, "model.hf_path: no config.json in this folder", cfg.model.hf_path)
    if cfg.model.params_checkpoint and not Path(cfg.model.params_checkpoint).exists():
        raise FileNotFoundError(errno.ENOENT, "model.params_checkpoint: no such checkpoint",
                                cfg.model.params_checkpoint)


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def _log_line(record: dict, total: int) -> str:
    parts = [f"step {record['step']}/{total}", f"loss {record['loss']:.4f}", f"grad_norm {record['grad_norm']:.3g}"]
    if "learning_rate" in record:
        parts.append(f"lr {record['learning_rate']:.3g}")
    parts.append(f"{record['tokens_per_s']:.0f} tok/s")
    if "mfu" in record:
        parts.append(f"mfu {record['mfu']:.3f}")
    if "eval_loss" in record:
        parts.append(f"eval_loss {record['eval_loss']:.4f}")
    return "  ".join(parts)


def log_data_plan(cfg: JobConfig, tokenizer, *, progress: bool = True) -> str:
    """Print (and return) how many epochs of each data source the run gets (loader/epochs.py)."""
    plans = plan_for_config(cfg.data, tokenizer, steps=cfg.train.steps, global_batch=cfg.train.global_batch, progress=progress)
    text = format_plan(plans, steps=cfg.train.steps, global_batch=cfg.train.global_batch, seq_len=cfg.data.seq_len)
    print(text, flush=True)
    return text


def train(cfg: JobConfig, *, resume: bool = False, resume_from: int | None = None, overwrite: bool = False,
          allow_config_change: bool = False, progress: bool = True, stop_at_step: int | None = None) -> TrainResult:
    """Run (or resume) the job. `stop_at_step` ends this run early, with a checkpoint, as a preemption would.

    `resume_from` restores that step (and implies `resume`); otherwise a resume takes the newest step
    that verifies. Without a resume, a run folder that holds checkpoints is refused unless `overwrite`.
    """
    resume = resume or resume_from is not None
    run_dir = Path(cfg.run_dir)
    ckpt_dir = Path(cfg.checkpoint.dir or run_dir / "checkpoints").absolute()
    is_chief = jax.process_index() == 0

    # --- checks that need no model: local files, the run folder, what a resume would change ---
    check_data_paths(cfg)
    if not resume:
        prepare_fresh_start(run_dir, ckpt_dir, overwrite, is_chief)
        _sync("train: fresh start")
    run_dir.mkdir(parents=True, exist_ok=True)
    # hub ids -> ORG/NAME@COMMIT (downloaded now, by process 0 first), so that config.json, and a
    # resumed or repeated run, read the same weights and data
    recorded = _read_json(run_dir / "config.json") if resume else None
    cfg, notes = pin_hub_revisions(cfg, recorded)
    ckpt = Checkpointer(ckpt_dir, cfg.checkpoint)
    try:
        arch = cfg.model.architecture()
        # the architecture is stored resolved, so export never needs the original HF folder
        config_dict = {"job": config_lib.to_dict(cfg), "architecture": dataclasses.asdict(arch)}
        result = TrainResult(run_dir=run_dir)
        newest = None
        if resume and ckpt.all_steps():
            newest = resume_from if resume_from is not None else ckpt.latest_complete_step()
        if newest is not None:
            saved = ckpt.read_config(newest)
            check_resume_config(saved.get("job", {}), config_dict["job"], newest, allow_config_change)
        finished = newest is not None and newest >= cfg.train.steps and resume_from is None
    except BaseException:
        ckpt.close()
        raise
    if is_chief:  # the pinned hub revisions are recorded even when there is nothing to train
        for note in notes:
            print(note, flush=True)
        (run_dir / "config.json").write_text(json.dumps(config_lib.to_dict(cfg), indent=2), encoding="utf-8")
    if finished or cfg.train.steps <= 0:
        ckpt.close()
        result.steps_done, result.last_checkpoint = newest or 0, newest
        result.stopped_by = "already_done"
        return result

    # --- the data plan first: epochs per source, before the model takes minutes to load ---
    tokenizer = load_tokenizer(cfg.data.tokenizer)
    if is_chief:
        log_data_plan(cfg, tokenizer, progress=progress)

    # --- batch layout checks (cheap), then mesh, model, optimizer, state ---
    if tokenizer.vocab_size > arch.vocab_size:
        # an out-of-range id would be silently clamped by the embedding gather
        raise config_lib.ConfigError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is {arch.vocab_size}"
        )
    if cfg.train.global_batch % jax.process_count():
        raise config_lib.ConfigError(
            f"train.global_batch={cfg.train.global_batch} is not divisible by the {jax.process_count()} processes"
        )
    mesh = make_mesh(cfg.mesh)
    rules = dict(cfg.mesh.rules)
    check_batch_divides_mesh(cfg.train.global_batch, cfg.train.micro_batches, mesh, rules)

    model = build_model(cfg, mesh, rules)
    schedule = learning_rate_schedule(cfg.optim, cfg.train.steps)
    setup, state = setup_from_model(model, cfg.optim, cfg.train.steps, cfg.step_spec(), mesh, rules, schedule=schedule)
    del model
    model_def, optimizer, shardings, in_sharding = setup.model_def, setup.optimizer, setup.shardings, setup.batch_sharding
    if is_chief:
        print(f"model {param_count(arch) / 1e6:,.1f}M params on mesh {dict(mesh.shape)}; step: {setup.spec.describe()}",
              flush=True)

    # --- data ---
    # Each process loads only the row blocks on its devices; block b is always loader shard b, so
    # the global batch is the same on any number of processes (parallel/batch_shards.py).
    def block_loader(split: str, **kw):
        def make(block: int, num_blocks: int, rows: int):
            return iter(make_loader(cfg.data, tokenizer, batch_size=rows, seed=cfg.seed, split=split,
                                    process_index=block, process_count=num_blocks, **kw))
        return BatchShards(in_sharding, cfg.train.global_batch, cfg.data.seq_len, make)

    data_iter = block_loader("train")

    # --- restore: the newest step that verifies (or --resume-from's); later steps are set aside ---
    if resume and ckpt.all_steps():
        abstract = abstract_train_state(model_def, optimizer, shardings)
        restored = ckpt.restore_newest_good(abstract, resume_from)
        if restored is None:
            ckpt.set_aside_after(0)
            print(f"no checkpoint in {ckpt.directory} finished saving: starting at step 0", flush=True)
        else:
            state = restored.state
            try:
                data_iter.set_state(restored.data)
            except ValueError as e:  # another loader version, or another row-block layout
                raise CheckpointError(f"checkpoint step {restored.step}: its data-loader state does not fit "
                                      f"this run ({e})") from e
            ckpt.set_aside_after(restored.step)
            print(f"resumed from {ckpt.directory} at step {restored.step}", flush=True)
    elif resume:
        print(f"no checkpoint in {ckpt.directory}: starting at step 0", flush=True)

    train_step, eval_step = setup.step, setup.eval_step()

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

    # --- logging: metrics.jsonl holds one row per logged step, never a step twice ---
    start_step = int(state.step)
    flops_tok = flops_per_token(arch, cfg.data.seq_len)
    peak = peak_flops_per_device(cfg)
    metrics_path = run_dir / "metrics.jsonl"
    metrics_file = tb = bar = None
    if is_chief:
        dropped = truncate_metrics(metrics_path, start_step)
        if dropped:
            print(f"metrics.jsonl: dropped {dropped} row(s) after step {start_step}, which this run redoes", flush=True)
        metrics_file = open(metrics_path, "a", encoding="utf-8")
        from tensorboardX import SummaryWriter

        tb = SummaryWriter(str(run_dir / "tensorboard"))
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.train.steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)

    result.steps_done, result.last_checkpoint = start_step, ckpt.latest_step()

    def stop_non_finite(message: str) -> None:
        ckpt.wait()
        result.stopped_by = "non_finite"
        last = ckpt.latest_complete_step()
        raise NonFiniteLossError(
            f"{message}; stopped without saving this state. "
            + (f"Last good checkpoint: {last} in {ckpt.directory}" if last is not None
               else f"No checkpoint was saved in {ckpt.directory}")
        )

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
                # the loss is from before the update; the param norm is of the state after it
                checked = {k: metrics[k] for k in ("loss", "grad_norm", "param_norm")}
                if not all(math.isfinite(v) for v in checked.values()):
                    stop_non_finite(f"non-finite value at step {step} ({', '.join(f'{k} {v}' for k, v in checked.items())})")
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
                    if bar is None:
                        print(_log_line(record, cfg.train.steps), flush=True)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")
                final = step == cfg.train.steps or step == stop_at_step or stop.signal_name is not None
                # the data state is gathered from every process (a collective): only when saving
                due = final or step % ckpt.every == 0
                try:
                    if due and ckpt.save(step, state, data_iter.get_state(), config_dict, force=final):
                        result.last_checkpoint = step
                except NonFiniteStateError as e:
                    stop_non_finite(str(e))
                ckpt.poll()
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
