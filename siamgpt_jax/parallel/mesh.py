"""The `mesh:` section of the training config, and the device mesh it describes.

Axis sizes are totals over all devices; one of them may be -1 ("fill with what is left"). `dcn`
says how many hosts each axis spans: the rest of that axis stays inside a host, on the fast
interconnect (NVLink/ICI). 8 hosts x 8 GPUs, data across hosts and FSDP inside a host:

    mesh: {fsdp: 8, dcn: {data: -1}}

`rules` is the ONE logical->mesh axis table; entries given in the config replace the defaults of
the same name, the others keep rules.DEFAULT_RULES.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from siamgpt_jax.config import ConfigError
from siamgpt_jax.errors import UserError
from siamgpt_jax.sharding import DEFAULT_RULES, LOGICAL_AXES, MESH_AXES, ShardingRuleError, validate_rules


class MeshError(UserError):
    """The mesh config does not fit the devices or hosts; the message says why."""


@dataclass(frozen=True)
class MeshConfig:
    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    sequence: int = 1
    # axis name -> number of hosts it spans (-1 = all hosts not taken by other axes)
    dcn: dict[str, int] = field(default_factory=dict)
    rules: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_RULES))

    def __post_init__(self) -> None:
        for name in MESH_AXES:
            size = getattr(self, name)
            if not isinstance(size, int) or (size < 1 and size != -1):
                raise ConfigError(f"mesh.{name}: size must be a positive integer or -1 (fill), got {size!r}")
        fills = [n for n in MESH_AXES if getattr(self, n) == -1]
        if len(fills) > 1:
            raise ConfigError(f"mesh: at most one axis may be -1 (fill), got {fills}")
        for name, hosts in dict(self.dcn).items():
            if name not in MESH_AXES:
                raise ConfigError(f"mesh.dcn.{name}: unknown mesh axis (axes: {list(MESH_AXES)})")
            if not isinstance(hosts, int) or (hosts < 1 and hosts != -1):
                raise ConfigError(f"mesh.dcn.{name}: host count must be a positive integer or -1, got {hosts!r}")
        if sum(1 for h in self.dcn.values() if h == -1) > 1:
            raise ConfigError(f"mesh.dcn: at most one axis may span -1 (the remaining) hosts, got {dict(self.dcn)}")
        # Config entries override defaults; YAML lists become tuples so the table is hashable.
        merged = dict(DEFAULT_RULES)
        for logical, axes in dict(self.rules).items():
            merged[logical] = (axes,) if isinstance(axes, str) else tuple(axes or ())
        try:
            validate_rules(merged, MESH_AXES, LOGICAL_AXES)
        except ShardingRuleError as e:
            raise ConfigError(f"mesh.rules: {e}") from None
        object.__setattr__(self, "rules", merged)
        object.__setattr__(self, "dcn", dict(self.dcn))

    def __hash__(self) -> int:  # dict fields: hash a frozen view so the config can be a static arg
        return hash((self.data, self.fsdp, self.tensor, self.sequence,
                     tuple(sorted(self.dcn.items())), tuple(sorted(self.rules.items()))))

    @property
    def sizes(self) -> dict[str, int]:
        return {n: getattr(self, n) for n in MESH_AXES}


@dataclass(frozen=True)
class MeshShape:
    """A MeshConfig resolved against a device and host count: no -1 left."""

    shape: dict[str, int]  # total size per axis
    dcn: dict[str, int]  # hosts spanned per axis (1 = inside a host)
    num_hosts: int

    @property
    def ici(self) -> dict[str, int]:
        return {n: self.shape[n] // self.dcn[n] for n in MESH_AXES}

    @property
    def num_devices(self) -> int:
        return math.prod(self.shape.values())


def _fill(sizes: Mapping[str, int], total: int, what: str) -> dict[str, int]:
    known = math.prod(s for s in sizes.values() if s != -1)
    fills = [n for n, s in sizes.items() if s == -1]
    out = dict(sizes)
    if fills:
        if total % known:
            raise MeshError(
                f"{what}: the fixed axes {_fmt({n: s for n, s in sizes.items() if s != -1})} multiply to {known}, "
                f"which does not divide {total}, so '{fills[0]}: -1' cannot fill it"
            )
        out[fills[0]] = total // known
    elif known != total:
        raise MeshError(f"{what}: {_fmt(sizes)} multiply to {known}, but there are {total}")
    return out


def _fmt(sizes: Mapping[str, int]) -> str:
    return " x ".join(f"{n}={s}" for n, s in sizes.items()) or "(none)"


def resolve(cfg: MeshConfig, num_devices: int, num_hosts: int = 1) -> MeshShape:
    """Fill the -1s and check that the layout fits `num_devices` spread evenly over `num_hosts`."""
    if num_hosts < 1 or num_devices % num_hosts:
        raise MeshError(f"{num_devices} devices cannot be split evenly over {num_hosts} hosts")
    shape = _fill(cfg.sizes, num_devices, f"mesh axis sizes ({num_devices} devices)")
    dcn_req = {n: cfg.dcn.get(n, 1) for n in MESH_AXES}
    if num_hosts == 1 and all(h in (1, -1) for h in dcn_req.values()):
        dcn = {n: 1 for n in MESH_AXES}
    else:
        dcn = _fill(dcn_req, num_hosts, f"mesh.dcn host counts ({num_hosts} hosts)")
    for n in MESH_AXES:
        if shape[n] % dcn[n]:
            raise MeshError(
                f"mesh axis '{n}' has size {shape[n]} but is asked to span {dcn[n]} hosts; "
                f"the host count of an axis must divide its size"
            )
    per_host = num_devices // num_hosts
    ici = {n: shape[n] // dcn[n] for n in MESH_AXES}
    if math.prod(ici.values()) != per_host:  # cannot happen after the checks above; kept as a guard
        raise MeshError(f"in-host axes {_fmt(ici)} do not multiply to the {per_host} devices per host")
    return MeshShape(shape=shape, dcn=dcn, num_hosts=num_hosts)


def _simulated_hybrid(devices: Sequence[Any], ici: Sequence[int], dcn: Sequence[int]) -> np.ndarray:
    """Hybrid device array for 'hosts' that are contiguous blocks of one process's devices."""
    per_host = math.prod(ici)
    blocks = [np.asarray(devices[i * per_host:(i + 1) * per_host], dtype=object).reshape(ici)
              for i in range(math.prod(dcn))]
    grid = np.empty(dcn, dtype=object)
    for i, block in enumerate(blocks):
        grid[np.unravel_index(i, dcn)] = block
    return np.block(grid.tolist()) if len(dcn) else blocks[0]


def make_mesh(cfg: MeshConfig, devices: Sequence[Any] | None = None, num_hosts: int | None = None):
    """A jax.sharding.Mesh with axes ("data", "fsdp", "tensor", "sequence").

    `num_hosts` defaults to the process count. On one process a larger `num_hosts` simulates hosts
    as contiguous blocks of devices (tests, planning); across processes each process is a host.
    """
    import jax
    from jax.experimental import mesh_utils
    from jax.sharding import Mesh

    devices = list(jax.devices() if devices is None else devices)
    processes = len({d.process_index for d in devices})
    num_hosts = processes if num_hosts is None else num_hosts
    ms = resolve(cfg, len(devices), num_hosts)
    ici = [ms.ici[n] for n in MESH_AXES]
    dcn = [ms.dcn[n] for n in MESH_AXES]
    if num_hosts == 1:
        try:  # create_device_mesh orders devices by the physical topology where it knows it
            arr = mesh_utils.create_device_mesh(ici, devices)
        except (ValueError, NotImplementedError, AssertionError):
            arr = np.asarray(devices, dtype=object).reshape(ici)
    elif processes == num_hosts:
        arr = mesh_utils.create_hybrid_device_mesh(ici, dcn, devices, process_is_granule=True)
    elif processes == 1:
        arr = _simulated_hybrid(sorted(devices, key=lambda d: d.id), ici, dcn)
    else:
        raise MeshError(f"num_hosts={num_hosts} but the devices belong to {processes} processes")
    return Mesh(arr, MESH_AXES)
