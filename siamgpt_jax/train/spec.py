"""The one description of what a train step computes: shapes, model-build choices and loss options.

The job config builds it (`JobConfig.step_spec()`), the trainer builds its model and step from it
(train/loop.py, train/setup.py), AOT lowering lowers exactly it (train/aot.py) and the layout
planner plans it (layout/planner.py), so a plan, a compiled layout and a training run can never
disagree about remat, attention, the loss chunk or a dtype. No jax here: the planner and `--help`
read it for free.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from siamgpt_jax.errors import UserError
from siamgpt_jax.model.config import DTYPE_NAMES, Attention, Kernels, Remat, dtype_of


class StepSpecError(UserError):
    """A step spec field is out of range or names an unknown choice (a ValueError, as UserError is)."""


@dataclass(frozen=True)
class StepSpec:
    seq_len: int  # tokens per packed row
    global_batch: int  # rows per optimizer step, across all hosts
    micro_batches: int = 1  # gradient accumulation inside the jitted step
    param_dtype: str = "float32"  # params and AdamW's moments (optax keeps them in the params' dtype)
    compute_dtype: str = "bfloat16"  # activations and matmuls
    remat: Remat = Remat.FULL
    attention: Attention = Attention.AUTO
    kernels: Kernels = Kernels.AUTO
    loss_chunk: int = 1024  # tokens of each row per chunk of the fused LM head + cross-entropy
    z_loss: float = 0.0

    def __post_init__(self) -> None:
        for name, enum_type in (("remat", Remat), ("attention", Attention), ("kernels", Kernels)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, enum_type(value))
            except ValueError:
                raise StepSpecError(f"{name} {value!r} is not one of {[e.value for e in enum_type]}") from None
        for name in ("param_dtype", "compute_dtype"):
            if getattr(self, name) not in DTYPE_NAMES:
                raise StepSpecError(f"{name} {getattr(self, name)!r} is not one of {list(DTYPE_NAMES)}")
        for name in ("seq_len", "global_batch", "micro_batches", "loss_chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise StepSpecError(f"{name} must be an integer >= 1, got {value!r}")
        if self.global_batch % self.micro_batches:
            raise StepSpecError(f"global batch {self.global_batch} is not divisible by micro_batches={self.micro_batches}")

    @property
    def micro_batch(self) -> int:
        """Rows per micro-batch (what one forward and backward sees)."""
        return self.global_batch // self.micro_batches

    def replace(self, **changes) -> "StepSpec":
        return dataclasses.replace(self, **changes)

    def model_options(self) -> dict:
        """The model-build choices, as the model's constructors (init_model, load_hf, ...) take them."""
        return {"param_dtype": dtype_of(self.param_dtype), "dtype": dtype_of(self.compute_dtype), "remat": self.remat,
                "attention": self.attention, "kernels": self.kernels}

    def describe(self) -> str:
        """One line for logs: what a step computes."""
        micro = f" in {self.micro_batches} micro-batches" if self.micro_batches > 1 else ""
        return (f"{self.global_batch} rows x {self.seq_len} tokens{micro}, {self.compute_dtype} compute / "
                f"{self.param_dtype} params, remat {self.remat}, attention {self.attention}, kernels {self.kernels}, "
                f"loss chunk {self.loss_chunk}" + (f", z-loss {self.z_loss:g}" if self.z_loss else ""))

    def check_batch_shape(self, shape: tuple[int, ...], what: str = "batch") -> None:
        """A StepSpecError unless `shape` is this step's [global_batch, seq_len]."""
        if tuple(shape) != (self.global_batch, self.seq_len):
            raise StepSpecError(f"{what} has shape {list(shape)} but the step spec says "
                                f"[global_batch={self.global_batch}, seq_len={self.seq_len}]")
