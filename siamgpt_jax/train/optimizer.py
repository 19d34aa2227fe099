"""AdamW with warmup + cosine/linear decay to a floor, global-norm clipping, no decay on norms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import optax


@dataclass(frozen=True)
class OptimConfig:
    learning_rate: float = 1e-5
    warmup_steps: int = 100
    decay: Literal["cosine", "linear", "constant"] = "cosine"
    # The schedule ends at learning_rate * min_lr_ratio after `decay_steps` (default: train.steps).
    min_lr_ratio: float = 0.1
    decay_steps: int | None = None
    weight_decay: float = 0.1
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    clip_norm: float | None = 1.0


def learning_rate_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    peak, floor = cfg.learning_rate, cfg.learning_rate * cfg.min_lr_ratio
    warmup = max(0, cfg.warmup_steps)
    decay_steps = max(1, (cfg.decay_steps or total_steps) - warmup)
    ramp = optax.linear_schedule(0.0 if warmup else peak, peak, max(1, warmup))
    if cfg.decay == "cosine":
        tail = optax.cosine_decay_schedule(peak, decay_steps, alpha=cfg.min_lr_ratio)
    elif cfg.decay == "linear":
        tail = optax.linear_schedule(peak, floor, decay_steps)
    else:
        tail = optax.constant_schedule(peak)
    return optax.join_schedules([ramp, tail], [warmup])


def decay_mask(params) -> object:
    """Weight decay applies to matrices only: norms (1-D per layer) are exempt.

    Layer tensors are stacked, so a norm scale is [layers, dim] (2-D) while every matrix is >= 2-D
    per layer; the rule is therefore by name, not rank.
    """

    def keep(path, _leaf) -> bool:
        name = "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)
        return "norm" not in name

    return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(cfg: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    schedule = learning_rate_schedule(cfg, total_steps)
    parts = []
    if cfg.clip_norm:
        parts.append(optax.clip_by_global_norm(cfg.clip_norm))
    parts.append(
        optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay, mask=decay_mask)
    )
    return optax.chain(*parts)
