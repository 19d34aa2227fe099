"""`--model` arguments -> the models an eval runs: one per HF folder, checkpoint or endpoint, and one
per saved step of a run folder (all of them, or those `--steps` names)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from siamgpt_jax.errors import UserError
from siamgpt_jax import hub


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    label: str  # what the report calls it
    spec: str  # what generate.open_backend opens
    step: int | None = None  # the training step, for a run folder's checkpoints


def _is_url(spec: str) -> bool:
    return bool(re.match(r"^https?://", spec))


def saved_steps(path: Path) -> tuple[Path, list[int]] | None:
    """(checkpoints dir, its finished steps) when `path` is a run folder or its checkpoints folder;
    None otherwise. Orbax writes a step under a temporary name and renames it, so a step folder with
    a numeric name is complete."""
    ckpts = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    steps = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit() and (p / "state").is_dir()) if ckpts.is_dir() else []
    return (ckpts, steps) if steps else None


def slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", label).strip("_") or "model"


def expand(specs: list[str], steps: list[int] | None = None, *, must_exist: bool = True) -> list[ModelEntry]:
    """`[LABEL=]SPEC` each; a run folder becomes one entry per step. Labels must be unique.
    must_exist=False (rescoring saved generations) takes a missing folder as one model."""
    out: list[ModelEntry] = []
    for raw in specs:
        m = re.match(r"^([\w.@+-]+)=(.+)$", raw)  # a label has no "/" or ":", so paths and URLs stay whole
        label, spec = (m.group(1), m.group(2)) if m else ("", raw)
        if _is_url(spec):
            out.append(ModelEntry(label or spec, spec))
            continue
        path = Path(spec)
        if not path.exists() and hub.parse_spec(spec, "model") is not None:  # ORG/NAME[@REV]: the backend fetches it
            out.append(ModelEntry(label or spec, spec))
            continue
        if not path.exists() and not must_exist:
            out.append(ModelEntry(label or path.name, spec))
            continue
        if not path.exists():
            raise UserError(f"--model {spec}: no such folder (expected an HF folder, a run folder, a checkpoint or an http(s) endpoint)")
        base = label or path.name
        if path.name.isdigit() and (path / "state").is_dir():  # one step folder
            out.append(ModelEntry(base if label else f"{path.parent.parent.name}@{path.name}", spec, int(path.name)))
            continue
        found = saved_steps(path)
        if found is None:
            if steps:
                raise UserError(f"--model {spec}: --steps needs a run folder, and this one has no saved steps")
            out.append(ModelEntry(base, spec))
            continue
        ckpts, have = found
        want = have if not steps else steps
        missing = sorted(set(want) - set(have))
        if missing:
            raise UserError(f"--model {spec}: no saved step {missing} (saved: {have})")
        out.extend(ModelEntry(f"{base}@{s}", str(ckpts / str(s)), s) for s in want)
    labels = [e.label for e in out]
    dupes = sorted({l for l in labels if labels.count(l) > 1})
    if dupes:
        raise UserError(f"--model: two models are labelled {dupes[0]!r}; name them with LABEL=SPEC")
    return out
