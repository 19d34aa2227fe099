"""Read the trained params of a training checkpoint one array (or one layer) at a time.

A run's checkpoint holds the params in the orbax `state` item, next to the optimizer state, which
an export never needs. `open_trained` opens each param array with tensorstore (convert/ts_arrays),
so `export-hf` reads a layer at a time and `load_trained_model` lets each device read its block.
Only steps whose save finished (they have a manifest) are read, and every param is checked against
the checksum the manifest recorded: `VerifiedReader` as the export streams it, `load_trained_model`
on the devices once it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from siamgpt_jax.convert import ts_arrays
from siamgpt_jax.convert.errors import CheckpointError
from siamgpt_jax.convert.params_ckpt import model_from_arrays
from siamgpt_jax.model.config import Qwen3Config, param_shapes
from siamgpt_jax.train.checkpoint import CheckpointConfig, Checkpointer
from siamgpt_jax.train.fingerprint import fingerprint, host_checksum, path_name


def find_checkpoint_dir(path: str | Path) -> tuple[Path, int | None]:
    """RUN_DIR, RUN_DIR/checkpoints or RUN_DIR/checkpoints/STEP -> (checkpoints dir, step or None=latest)."""
    path = Path(path)
    if path.name.isdigit() and (path / "state").is_dir():
        return path.parent, int(path.name)
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if any(p.name.isdigit() for p in path.iterdir()) if path.is_dir() else False:
        return path, None
    raise FileNotFoundError(f"{path}: no training checkpoint here (expected RUN_DIR, RUN_DIR/checkpoints or a step folder)")


def is_training_checkpoint(path: str | Path) -> bool:
    try:
        find_checkpoint_dir(path)
        return True
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class TrainedCheckpoint:
    directory: Path  # RUN_DIR/checkpoints
    step: int
    job: dict  # the run's resolved config, as saved with the checkpoint
    config: Qwen3Config
    arrays: dict[str, object]  # param path -> tensorstore array
    checksums: dict[str, int]  # param path -> the checksum its step's manifest recorded

    def verify(self, path: str, checksum: int) -> None:
        """CheckpointError naming the tensor when `checksum` (fingerprint.py) is not the recorded one."""
        if checksum != self.checksums[path]:
            raise CheckpointError(f"checkpoint step {self.step} ({self.directory / str(self.step)}): tensor "
                                  f"'params.{path}' does not match the checksum recorded when it was saved "
                                  f"(a damaged file)")


def _manifest_key(path: str) -> str:
    return "params/" + path.replace(".", "/")  # a train-state tree path, as fingerprint.path_name writes it


def open_trained(path: str | Path) -> TrainedCheckpoint:
    """The latest finished (or the named) step of a run, its config, and its params opened for
    reading; a named step whose save never finished is an error naming its folder."""
    directory, step = find_checkpoint_dir(path)
    ckpt = Checkpointer(directory, CheckpointConfig(async_save=False))
    try:
        step = ckpt.latest_complete_step() if step is None else step
        if step is None:
            raise CheckpointError(f"{directory}: no finished checkpoint")
        manifest = ckpt.check_manifest(step)
        saved = ckpt.read_config(step)
    finally:
        ckpt.close()
    config = Qwen3Config(**saved["architecture"])
    state_dir = directory / str(step) / "state"
    arrays = {p: ts_arrays.orbax_array(state_dir, f"params.{p}") for p in param_shapes(config)}
    for p, shape in param_shapes(config).items():
        if tuple(arrays[p].shape) != tuple(shape):
            raise CheckpointError(f"{state_dir}: param '{p}' has shape {list(arrays[p].shape)}, "
                                  f"but the run's config implies {list(shape)}")
    recorded = manifest.get("arrays", {})
    missing = [p for p in arrays if _manifest_key(p) not in recorded]
    if missing:
        raise CheckpointError(f"{directory / str(step)}: its manifest records no checksum for {missing[:3]}")
    checksums = {p: int(recorded[_manifest_key(p)]) for p in arrays}
    return TrainedCheckpoint(directory, step, saved["job"], config, arrays, checksums)


class VerifiedReader:
    """Wraps an array reader (convert.params_ckpt.ArrayReader): sums each param's checksum as its
    layers stream past and checks it once the last one has, so an export never finishes from a
    damaged checkpoint (its output is swapped into place only when complete)."""

    def __init__(self, reader, trained: TrainedCheckpoint):
        self.reader, self.trained = reader, trained
        self.param_major = getattr(reader, "param_major", False)
        self._sums: dict[str, int] = {}
        self._layers: dict[str, set[int]] = {}
        self.verified: set[str] = set()

    def __call__(self, entry, layer: int | None) -> np.ndarray:
        values = self.reader(entry, layer)
        path = entry.path
        shape = self.trained.arrays[path].shape
        if layer is None:
            self.trained.verify(path, host_checksum(values))
            self.verified.add(path)
        elif layer not in self._layers.setdefault(path, set()):
            self._layers[path].add(layer)
            per_layer = int(np.prod(shape[1:]))
            self._sums[path] = (self._sums.get(path, 0) + host_checksum(values, layer * per_layer)) % 2**32
            if len(self._layers[path]) == shape[0]:
                self.trained.verify(path, self._sums.pop(path))
                self.verified.add(path)
        return values


def load_trained_model(path: str | Path, **kwargs):
    """The model (params only: the optimizer state is not read) at the latest or given step;
    kwargs as convert.params_ckpt.model_from_arrays (mesh, rules, dtype, param_dtype, ...)."""
    trained = open_trained(path)
    kwargs.setdefault("attention", "xla")
    kwargs.setdefault("dtype", jnp.float32)
    model = model_from_arrays(trained.config, trained.arrays, **kwargs)
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    sums = fingerprint(params)[0]  # a reduction on the devices: nothing is gathered
    stored = {p: np.dtype(a.dtype.numpy_dtype) for p, a in trained.arrays.items()}
    loaded = {path_name(path): np.dtype(x.dtype) for path, x in jax.tree_util.tree_flatten_with_path(params)[0]}
    for name, checksum in sums.items():
        path = name.replace("/", ".")
        if loaded[name] == stored[path]:  # a param cast while reading (param_dtype) has other bits
            trained.verify(path, checksum)
    return model
