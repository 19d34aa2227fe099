"""What a run folder may hold before training starts, and what a resume may change.

A fresh `train` into a folder that already holds checkpoints would mix two runs (steps of both,
one metrics.jsonl), so it is refused unless `--overwrite` clears the training outputs first. A
`--resume` whose config changes the run itself (its length, schedule, data, model) is refused
unless `--allow-config-change`; keys that only change how the same run is computed or logged are
free to change.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from siamgpt_jax.errors import UserError

# what `train` writes into RUN_DIR besides the checkpoints folder (`--overwrite` removes these only:
# a run folder may also hold its data, e.g. the demo's verified corpus)
TRAIN_OUTPUTS = ("metrics.jsonl", "tensorboard", "config.json")

# keys a resume may change freely: where checkpoints go and how often, the mesh (restores reshard),
# logging and eval cadence, and compute choices that give the same numbers (remat, attention kernel,
# loader worker counts)
RESUME_SAFE_KEYS = ("run_dir", "checkpoint.", "mesh.", "train.log_every", "train.eval_every", "train.eval_batches",
                    "train.peak_tflops_per_device", "model.remat", "model.attention", "data.num_workers",
                    "data.read_threads")


class RunFolderError(UserError):
    """The run folder holds another run, or a resume would silently reshape the run."""


def checkpoint_steps(ckpt_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()) if ckpt_dir.is_dir() else []


def prepare_fresh_start(run_dir: Path, ckpt_dir: Path, overwrite: bool, is_chief: bool) -> None:
    """Refuse a folder with checkpoints, or with `overwrite` remove the training outputs named above."""
    steps = checkpoint_steps(ckpt_dir)
    if not overwrite:
        if steps:
            raise RunFolderError(
                f"{run_dir} already holds checkpoints of a run (steps {steps} in {ckpt_dir}): pass --resume to "
                f"continue it, --overwrite to delete its checkpoints, metrics and logs and start again, or set "
                f"another run_dir"
            )
        return
    targets = [ckpt_dir, ckpt_dir.with_name(ckpt_dir.name + ".set-aside")] + [run_dir / n for n in TRAIN_OUTPUTS]
    for target in targets:
        if is_chief and (target.exists() or target.is_symlink()):
            shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
            print(f"--overwrite: removed {target}", file=sys.stderr, flush=True)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def config_changes(saved: dict, current: dict) -> list[str]:
    """'key: old -> new' for each key that differs, except RESUME_SAFE_KEYS."""
    a, b = _flatten(saved), _flatten(current)
    changes = []
    for key in sorted(a.keys() | b.keys()):
        if key.startswith(RESUME_SAFE_KEYS) or key in RESUME_SAFE_KEYS:
            continue
        if a.get(key, "(unset)") != b.get(key, "(unset)"):
            changes.append(f"{key}: {a.get(key, '(unset)')!r} -> {b.get(key, '(unset)')!r}")
    return changes


def check_resume_config(saved: dict, current: dict, step: int, allow: bool) -> None:
    changes = config_changes(saved, current)
    if not changes:
        return
    if not allow:
        raise RunFolderError(f"--resume at step {step} with a changed config ({'; '.join(changes)}): pass "
                             f"--allow-config-change to continue the run with the new values")
    print(f"resuming with a changed config: {'; '.join(changes)}", file=sys.stderr, flush=True)


def truncate_metrics(path: Path, step: int) -> int:
    """Keep the rows of metrics.jsonl up to `step` (the rows after it belong to steps a resume redoes);
    returns how many were dropped. A torn last line (killed mid-write) is dropped too."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row_step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            dropped += 1
            continue
        if row_step <= step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)
    return dropped
