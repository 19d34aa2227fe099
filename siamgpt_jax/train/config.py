"""The training job's typed config: one frozen dataclass per YAML section.

    run_dir, seed
    model:      which Qwen3 (preset, HF folder or hub id), dtypes, remat, attention, kernels
    data:       the Grain loader (siamgpt_jax.loader.pipeline.LoaderConfig)
    selection:  what `siamgpt-jax verify --config` keeps of stream A (corpus.selection.SelectionConfig)
    optim:      AdamW + schedule (siamgpt_jax.train.optimizer.OptimConfig)
    train:      steps, batch, micro-batches, loss, logging and eval cadence
    checkpoint: orbax cadence and retention
    mesh:       axes, host layout and the ONE logical->mesh rules table (parallel.mesh.MeshConfig)
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from siamgpt_jax import config as config_lib
from siamgpt_jax import hub
from siamgpt_jax.corpus.selection import SelectionConfig
from siamgpt_jax.loader.pipeline import LoaderConfig
from siamgpt_jax.model.config import DTYPE_NAMES, Attention, Kernels, Qwen3Config, Remat, preset
from siamgpt_jax.parallel.mesh import MeshConfig
from siamgpt_jax.train.checkpoint import CheckpointConfig
from siamgpt_jax.train.optimizer import OptimConfig
from siamgpt_jax.train.spec import StepSpec


@dataclass(frozen=True)
class ModelConfig:
    preset: str | None = "qwen3-tiny"  # used when neither source below is set (random init)
    hf_path: str | None = None  # import weights from this HF safetensors folder or hub id (ORG/NAME[@REVISION])
    params_checkpoint: str | None = None  # or from `siamgpt-jax import-hf`'s output: faster to start
    overrides: dict[str, Any] = field(default_factory=dict)  # Qwen3Config fields on top of the preset
    # The step's model-build choices; defaults and meanings in train/spec.py (StepSpec).
    param_dtype: Literal[DTYPE_NAMES] = StepSpec.param_dtype  # type: ignore[valid-type]
    dtype: Literal[DTYPE_NAMES] = StepSpec.compute_dtype  # type: ignore[valid-type]
    remat: Remat = StepSpec.remat
    attention: Attention = StepSpec.attention
    kernels: Kernels = StepSpec.kernels  # auto = the CPU kernels on the CPU backend (model/kernels.py)

    def architecture(self) -> Qwen3Config:
        """The Qwen3Config this section describes (reads config.json for an HF import)."""
        if self.hf_path:
            # only config.json is needed here; the weights come with build_model
            folder = hub.resolve_model(self.hf_path, weights=False, coordinate=False).path
            base = Qwen3Config.from_hf_file(folder / "config.json")
        elif self.params_checkpoint:
            from siamgpt_jax.convert.params_ckpt import read_config  # lazy: orbax, which loading a config does not need

            base = read_config(self.params_checkpoint)[0]
        elif self.preset:
            base = preset(self.preset)
        else:
            raise config_lib.ConfigError("model: set 'preset', 'hf_path' or 'params_checkpoint'")
        self.validate()
        return base.replace(**self.overrides) if self.overrides else base

    def validate(self) -> None:
        """Checks that need no files: a source is named, and override keys are Qwen3Config fields."""
        if not self.hf_path and not self.preset and not self.params_checkpoint:
            raise config_lib.ConfigError("model: set 'preset', 'hf_path' or 'params_checkpoint'")
        if self.hf_path and self.params_checkpoint:
            raise config_lib.ConfigError("model: set 'hf_path' or 'params_checkpoint', not both")
        if self.preset and not self.hf_path and not self.params_checkpoint:
            try:
                preset(self.preset)
            except KeyError as e:
                raise config_lib.ConfigError(f"model.preset: {e.args[0]}") from None
        valid = sorted(Qwen3Config.__dataclass_fields__)
        for key in self.overrides:
            if key not in valid:
                raise config_lib.ConfigError(
                    f"unknown config key 'model.overrides.{key}'{config_lib._suggest(key, valid)}"
                )


@dataclass(frozen=True)
class TrainLoopConfig:
    steps: int = 100
    global_batch: int = 8  # sequences per optimizer step, across all hosts
    micro_batches: int = StepSpec.micro_batches  # gradient accumulation inside the jitted step
    loss_chunk: int = StepSpec.loss_chunk  # tokens of each row per chunk of the LM-head + cross-entropy
    z_loss: float = StepSpec.z_loss
    log_every: int = 1
    eval_every: int = 0  # 0 = no eval
    eval_batches: int = 4
    peak_tflops_per_device: float | None = None  # MFU denominator; None = detect (H100/H200/A100)

    def __post_init__(self) -> None:
        # steps <= 0 is allowed: a run with nothing left to do, which `train` reports and skips
        config_lib.require_at_least(self, "train", global_batch=1, micro_batches=1, loss_chunk=1, log_every=1,
                                    eval_every=0, eval_batches=1)
        if self.global_batch % self.micro_batches:
            raise config_lib.ConfigError(
                f"train.global_batch={self.global_batch} is not divisible by train.micro_batches={self.micro_batches}"
            )


@dataclass(frozen=True)
class JobConfig:
    run_dir: str = "runs/default"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: LoaderConfig = field(default_factory=LoaderConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)

    def step_spec(self) -> StepSpec:
        """What this job's train step computes: the one StepSpec the trainer, `mesh` and AOT use."""
        return StepSpec(seq_len=self.data.seq_len, global_batch=self.train.global_batch,
                        micro_batches=self.train.micro_batches, param_dtype=self.model.param_dtype,
                        compute_dtype=self.model.dtype, remat=self.model.remat, attention=self.model.attention,
                        kernels=self.model.kernels, loss_chunk=self.train.loss_chunk, z_loss=self.train.z_loss)


def load_job_config(path: str | Path | None, overrides: list[str] | None = None) -> JobConfig:
    """Load and validate; `{run_dir}` inside data source paths is replaced by the run directory."""
    cfg = config_lib.load(JobConfig, path, overrides)
    cfg.model.validate()  # fail at load time, with the key in the message
    sources = tuple(dataclasses.replace(s, path=s.path.replace("{run_dir}", cfg.run_dir)) for s in cfg.data.sources)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, sources=sources))


def pin_hub_revisions(cfg: JobConfig, recorded: dict[str, Any] | None = None) -> tuple[JobConfig, list[str]]:
    """Resolve every hub id of the job (model.hf_path, data.sources paths, data.tokenizer), downloading what is
    missing, and name each by the commit it resolved to (`ORG/NAME@COMMIT`), so the run's
    config.json reads exactly these files again. `recorded` is the job dict an earlier start of
    this run wrote: a resumed run reads the commits that one read (hub.repin). Returns the pinned
    config and one note per id whose commit came from `recorded`."""
    recorded = recorded or {}
    notes: list[str] = []

    def pin(key: str, spec: str, old: Any, kind: hub.Kind, resolve) -> str:
        asked = hub.repin(spec, old if isinstance(old, str) else None, kind)
        if asked != spec:
            notes.append(f"{key}: {spec} read as {asked}, the commit this run started from")
        return resolve(asked).pinned

    model = cfg.model
    if model.hf_path and hub.is_hub_spec(model.hf_path, "model"):
        old = (recorded.get("model") or {}).get("hf_path")
        model = dataclasses.replace(model, hf_path=pin("model.hf_path", model.hf_path, old, "model", hub.resolve_model))
    old_sources = (recorded.get("data") or {}).get("sources") or []
    sources = []
    for i, s in enumerate(cfg.data.sources):
        if hub.is_hub_spec(s.path, "dataset"):
            old = old_sources[i].get("path") if i < len(old_sources) and isinstance(old_sources[i], dict) else None
            s = dataclasses.replace(s, path=pin(f"data.sources[{i}].path", s.path, old, "dataset", hub.resolve_dataset))
        sources.append(s)
    tokenizer = cfg.data.tokenizer
    if tokenizer and hub.is_hub_spec(tokenizer, "model"):
        old = (recorded.get("data") or {}).get("tokenizer")
        tokenizer = pin("data.tokenizer", tokenizer, old, "model", hub.resolve_tokenizer)
    data = dataclasses.replace(cfg.data, sources=tuple(sources), tokenizer=tokenizer)
    pinned = dataclasses.replace(cfg, model=model, data=data)
    return pinned, notes


def load_job_config_for_cli(prog: str, path: str | Path | None, overrides: list[str] | None) -> JobConfig | None:
    """load_job_config for a subcommand: a config error is printed as one line (None returned)."""
    try:
        return load_job_config(path, overrides)
    except config_lib.ConfigError as e:
        print(f"siamgpt-jax {prog}: config error: {e}", file=sys.stderr)
        return None
