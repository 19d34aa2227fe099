"""Logical axis names -> mesh axes: the one vocabulary sharding speaks.

Parameters carry logical axis names as Variable metadata (`logical_axes`); activations are pinned
with `constrain(x, names)`. A rules table maps each logical name to zero or more mesh axes. The
model never sees a mesh: it only names its axes, so any layout is a config change.

Parameter names:  vocab, embed, q_heads, kv_heads, head_dim, mlp, layers, norm
Activation names: batch, seq, act_embed, act_heads, act_kv_heads, act_head_dim, act_mlp, act_vocab
KV cache names:   cache_layers, cache_batch, cache_kv_heads, cache_seq, cache_head_dim
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from siamgpt_jax.errors import UserError

MESH_AXES = ("data", "fsdp", "tensor", "sequence")

# logical name -> mesh axes (a tuple, possibly empty = replicated)
DEFAULT_RULES: dict[str, tuple[str, ...]] = {
    # parameters
    "vocab": ("tensor",),
    "embed": ("fsdp",),
    "q_heads": ("tensor",),
    "kv_heads": ("tensor",),
    "head_dim": (),
    "mlp": ("tensor",),
    "layers": (),
    "norm": (),
    # activations
    "batch": ("data", "fsdp"),
    "seq": ("sequence",),
    "act_embed": (),
    "act_heads": ("tensor",),
    "act_kv_heads": ("tensor",),
    "act_head_dim": (),
    "act_mlp": ("tensor",),
    "act_vocab": ("tensor",),
    # the generation KV cache [layers, batch, kv_heads, slots, head_dim]: split by KV heads under
    # tensor parallelism (as k/v are), by batch rows like activations
    "cache_layers": (),
    "cache_batch": ("data", "fsdp"),
    "cache_seq": (),
    "cache_kv_heads": ("tensor",),
    "cache_head_dim": (),
}

Rules = Mapping[str, Sequence[str]]
# The logical names the model and the planner use; a rules table may map only these.
LOGICAL_AXES = tuple(DEFAULT_RULES)
# A Mesh, or just its axis sizes ({"data": 2, "fsdp": 4, ...}): the planner has no devices.
MeshLike = Mesh | Mapping[str, int]


def _axis_sizes(mesh: MeshLike) -> Mapping[str, int]:
    return mesh.shape if isinstance(mesh, Mesh) else mesh


class ShardingRuleError(UserError):
    """A rule names an unknown logical or mesh axis, or a tensor names an unmapped logical axis."""


def validate_rules(
    rules: Rules, mesh_axis_names: Sequence[str] = MESH_AXES, logical_names: Sequence[str] | None = None
) -> None:
    """Every rule must name existing mesh axes (and, if `logical_names` is given, a known logical axis)."""
    for logical, axes in rules.items():
        if logical_names is not None and logical not in logical_names:
            close = difflib.get_close_matches(logical, list(logical_names), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(logical_names)})"
            raise ShardingRuleError(f"sharding rule for unknown logical axis '{logical}'{hint}")
        if isinstance(axes, str):
            raise ShardingRuleError(f"sharding rule '{logical}: {axes!r}' must be a list of mesh axes, not a string")
        if len(set(axes)) != len(axes):
            raise ShardingRuleError(f"sharding rule '{logical}: {list(axes)}' repeats a mesh axis")
        for axis in axes:
            if axis not in mesh_axis_names:
                raise ShardingRuleError(
                    f"sharding rule '{logical}: {list(axes)}' names mesh axis '{axis}', "
                    f"which is not one of the mesh axes {list(mesh_axis_names)}"
                )


def logical_to_spec(
    logical_axes: Sequence[str | None] | None, rules: Rules, mesh: MeshLike | None = None
) -> PartitionSpec:
    """PartitionSpec for a tensor whose dims carry `logical_axes`.

    A mesh axis is used at most once per tensor (the first dim that asks gets it), and axes of
    size 1 are dropped so specs stay readable. Unknown logical names are an error.
    """
    if logical_axes is None:
        return PartitionSpec()
    sizes = None if mesh is None else _axis_sizes(mesh)
    used: set[str] = set()
    out: list[Any] = []
    for name in logical_axes:
        if name is None:
            out.append(None)
            continue
        if name not in rules:
            raise ShardingRuleError(f"logical axis '{name}' has no sharding rule (known: {sorted(rules)})")
        axes = [a for a in rules[name] if a not in used and (sizes is None or sizes.get(a, 1) > 1)]
        used.update(axes)
        out.append(None if not axes else axes[0] if len(axes) == 1 else tuple(axes))
    while out and out[-1] is None:
        out.pop()
    return PartitionSpec(*out)


def divisible_spec(spec: PartitionSpec, shape: Sequence[int], mesh: MeshLike) -> PartitionSpec:
    """Drop mesh axes from dims they do not divide (e.g. 8 kv heads over tensor=16 -> replicated)."""
    sizes = _axis_sizes(mesh)
    out = []
    for dim, entry in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        if entry is None:
            out.append(None)
            continue
        axes = (entry,) if isinstance(entry, str) else tuple(entry)
        kept, size = [], 1
        for a in axes:
            if dim % (size * sizes[a]) == 0:
                kept.append(a)
                size *= sizes[a]
        out.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
    while out and out[-1] is None:
        out.pop()
    return PartitionSpec(*out)


def local_shape(
    logical_axes: Sequence[str | None] | None, shape: Sequence[int], mesh: MeshLike, rules: Rules
) -> tuple[int, ...]:
    """The per-device shard shape of a tensor of `shape` whose dims carry `logical_axes`."""
    sizes = _axis_sizes(mesh)
    spec = divisible_spec(logical_to_spec(logical_axes, rules, mesh), shape, mesh)
    entries = tuple(spec) + (None,) * (len(shape) - len(spec))
    out = []
    for dim, entry in zip(shape, entries):
        axes = () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)
        div = 1
        for a in axes:
            div *= sizes[a]
        out.append(dim // div)
    return tuple(out)


def named_sharding(logical_axes: Sequence[str | None] | None, shape: Sequence[int], mesh: Mesh, rules: Rules) -> NamedSharding:
    return NamedSharding(mesh, divisible_spec(logical_to_spec(logical_axes, rules, mesh), shape, mesh))


# ---- activation constraints ---------------------------------------------------------------------
_ACTIVE: contextvars.ContextVar[tuple[Mesh, Rules] | None] = contextvars.ContextVar("siamgpt_mesh_rules", default=None)


@contextlib.contextmanager
def use_mesh_rules(mesh: Mesh | None, rules: Rules | None = None) -> Iterator[None]:
    """Within this block (while tracing), `constrain` pins activations to `mesh` via `rules`."""
    token = _ACTIVE.set(None if mesh is None else (mesh, dict(rules or DEFAULT_RULES)))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def is_split(logical_axis: str) -> bool:
    """Whether the active mesh splits dims named `logical_axis` (False when no mesh is active)."""
    active = _ACTIVE.get()
    if active is None:
        return False
    mesh, rules = active
    return logical_to_spec((logical_axis,), rules, mesh) != PartitionSpec()


def constrain(x: jax.Array, logical_axes: Sequence[str | None]) -> jax.Array:
    """with_sharding_constraint by logical names; a no-op when no mesh is active."""
    active = _ACTIVE.get()
    if active is None:
        return x
    mesh, rules = active
    return jax.lax.with_sharding_constraint(x, named_sharding(logical_axes, x.shape, mesh, rules))
