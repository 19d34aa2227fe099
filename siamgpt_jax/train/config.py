"""The training job's typed config: one frozen dataclass per YAML section.

    run_dir, seed
    model:      which Qwen3 (preset or HF folder), dtypes, remat, attention, kernels
    data:       the Grain loader (siamgpt_jax.loader.pipeline.LoaderConfig)
    optim:      AdamW + schedule (siamgpt_jax.train.optimizer.OptimConfig)
    train:      steps, batch, micro-batches, loss, logging and eval cadence
    checkpoint: orbax cadence and retention
    mesh:       axes, host layout and the ONE logical->mesh rules table (parallel.mesh.MeshConfig)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from siamgpt_jax import config as config_lib
from siamgpt_jax.loader.pipeline import LoaderConfig
from siamgpt_jax.model.config import Qwen3Config, preset
from siamgpt_jax.model.kernels import KERNELS
from siamgpt_jax.parallel.mesh import MeshConfig
from siamgpt_jax.train.checkpoint import CheckpointConfig
from siamgpt_jax.train.optimizer import OptimConfig


@dataclass(frozen=True)
class ModelConfig:
    preset: str | None = "qwen3-tiny"  # used when hf_path is not set (random init)
    hf_path: str | None = None  # import weights from this HF safetensors folder
    overrides: dict[str, Any] = field(default_factory=dict)  # Qwen3Config fields on top of the preset
    param_dtype: Literal["float32", "bfloat16"] = "float32"
    dtype: Literal["float32", "bfloat16"] = "bfloat16"
    remat: Literal["none", "full", "dots"] = "full"
    attention: Literal["auto", "xla", "chunked", "cudnn"] = "auto"
    kernels: Literal[KERNELS] = "auto"  # layer ops: auto = the CPU kernels on the CPU backend (model/kernels.py)

    def architecture(self) -> Qwen3Config:
        """The Qwen3Config this section describes (reads config.json for an HF import)."""
        if self.hf_path:
            base = Qwen3Config.from_hf_file(Path(self.hf_path) / "config.json")
        elif self.preset:
            base = preset(self.preset)
        else:
            raise config_lib.ConfigError("model: set either 'preset' or 'hf_path'")
        self.validate()
        return base.replace(**self.overrides) if self.overrides else base

    def validate(self) -> None:
        """Checks that need no files: a source is named, and override keys are Qwen3Config fields."""
        if not self.hf_path and not self.preset:
            raise config_lib.ConfigError("model: set either 'preset' or 'hf_path'")
        if self.preset and not self.hf_path:
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
    micro_batches: int = 1  # gradient accumulation inside the jitted step
    loss_chunk: int = 1024  # tokens per chunk of the LM-head + cross-entropy
    z_loss: float = 0.0
    log_every: int = 1
    eval_every: int = 0  # 0 = no eval
    eval_batches: int = 4
    peak_tflops_per_device: float | None = None  # MFU denominator; None = detect (H100/H200/A100)


@dataclass(frozen=True)
class JobConfig:
    run_dir: str = "runs/default"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: LoaderConfig = field(default_factory=LoaderConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)


def load_job_config(path: str | Path | None, overrides: list[str] | None = None) -> JobConfig:
    """Load and validate; `{run_dir}` inside data source paths is replaced by the run directory."""
    cfg = config_lib.load(JobConfig, path, overrides)
    cfg.model.validate()  # fail at load time, with the key in the message
    sources = tuple(dataclasses.replace(s, path=s.path.replace("{run_dir}", cfg.run_dir)) for s in cfg.data.sources)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, sources=sources))


def load_job_config_for_cli(prog: str, path: str | Path | None, overrides: list[str] | None) -> JobConfig | None:
    """load_job_config for a subcommand: a config error is printed as one line (None returned)."""
    import sys

    try:
        return load_job_config(path, overrides)
    except config_lib.ConfigError as e:
        print(f"siamgpt-jax {prog}: config error: {e}", file=sys.stderr)
        return None
