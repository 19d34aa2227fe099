"""Checkpoints you can trust: a checksum per saved array, damaged steps named and skipped, never a
non-finite state written. A tiny hand-made train state keeps these fast (no model, no loop)."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from siamgpt_jax.convert.errors import CheckpointError
from siamgpt_jax.errors import UserError
from siamgpt_jax.train.checkpoint import CheckpointConfig, Checkpointer, NonFiniteStateError
from siamgpt_jax.train.fingerprint import _BLOCK, fingerprint, host_checksum
from siamgpt_jax.train.state import TrainState

OPT = optax.adam(1e-3)


def _state(step: int) -> TrainState:
    rng = np.random.default_rng(step)
    params = {"w": jnp.asarray(rng.standard_normal((64, 64)), jnp.float32),
              "b": jnp.asarray(rng.standard_normal(64), jnp.bfloat16)}
    return TrainState(step=jnp.int32(step), params=params, opt_state=OPT.init(params))


def _abstract():
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _state(0))


def _saved(tmp_path: Path, steps=(1, 2, 3)) -> Path:
    ckpt = Checkpointer(tmp_path, CheckpointConfig(every=1, keep=5))
    for s in steps:
        assert ckpt.save(s, _state(s), {"pos": s}, {"run": "x"})
    ckpt.close()
    return tmp_path


def _restore(directory: Path, step=None):
    ckpt = Checkpointer(directory, CheckpointConfig(every=1, keep=5))
    try:
        return ckpt.restore_newest_good(_abstract(), step)
    finally:
        ckpt.close()


def _same(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _largest_data_file(step_dir: Path) -> Path:
    return max((p for p in (step_dir / "state").rglob("*") if p.is_file() and "/d/" in str(p)),
               key=lambda p: p.stat().st_size)


def test_each_step_gets_a_manifest_of_array_checksums_and_restores_verified(tmp_path):
    _saved(tmp_path)
    manifest = json.loads((tmp_path / "3" / "manifest.json").read_text())
    assert manifest["step"] == 3 and manifest["arrays"] == fingerprint(_state(3))[0]
    assert {"params/w", "params/b", "opt_state/0/mu/w", "step"} <= manifest["arrays"].keys()
    got = _restore(tmp_path)
    assert got.step == 3 and got.data == {"pos": 3} and not got.damaged
    _same(got.state, _state(3))


def test_checksum_changes_with_any_single_bit():
    x = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    base = fingerprint({"x": x})[0]["x"]
    for i, bit in ((0, 0), (77, 31), (127, 13)):
        y = x.copy().view(np.uint32)
        y.flat[i] ^= np.uint32(1 << bit)
        assert fingerprint({"x": y.view(np.float32)})[0]["x"] != base
    # where the values sit matters too, not only which values there are
    assert fingerprint({"x": x[::-1].copy()})[0]["x"] != base


@pytest.mark.parametrize("damage", ["flipped_byte", "truncated_file", "no_manifest", "empty_step", "altered_values"])
def test_a_damaged_newest_step_is_named_and_the_newest_good_one_used(tmp_path, damage, capsys):
    _saved(tmp_path)
    step3 = tmp_path / "3"
    if damage == "flipped_byte":
        f = _largest_data_file(step3)
        raw = bytearray(f.read_bytes())
        raw[len(raw) // 2] ^= 0x10
        f.write_bytes(bytes(raw))
    elif damage == "truncated_file":
        f = _largest_data_file(step3)
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif damage == "no_manifest":  # killed after orbax finished, before the manifest was written
        (step3 / "manifest.json").unlink()
    elif damage == "empty_step":  # a `mkdir 4` by hand
        (tmp_path / "4").mkdir()
    elif damage == "altered_values":  # the data read back differs from what was saved
        m = json.loads((step3 / "manifest.json").read_text())
        m["arrays"]["params/w"] ^= 1
        (step3 / "manifest.json").write_text(json.dumps(m))
    got = _restore(tmp_path)
    bad, good = (4, 3) if damage == "empty_step" else (3, 2)
    assert got.step == good and got.data == {"pos": good}
    _same(got.state, _state(good))
    assert list(got.damaged) == [bad]
    err = capsys.readouterr().err
    assert f"checkpoint step {bad}" in err and f"using checkpoint step {good}, the newest good one" in err
    if damage == "flipped_byte":  # orbax reads it back without complaint: only the checksum sees it
        assert "does not match the checksum recorded when it was saved" in err
    if damage == "altered_values":
        assert "tensor 'params/w' does not match the checksum" in err
    if damage == "empty_step":
        assert "is empty" in err


def test_resume_from_a_step_and_setting_later_steps_aside(tmp_path):
    _saved(tmp_path)
    ckpt = Checkpointer(tmp_path, CheckpointConfig(every=1, keep=5))
    got = ckpt.restore_newest_good(_abstract(), 2)
    assert got.step == 2
    assert ckpt.set_aside_after(2) == [3]
    assert ckpt.all_steps() == [1, 2]
    assert ckpt.save(3, _state(33), {"pos": 33}, {"run": "x"})  # the step can be written again
    ckpt.close()
    aside = list((tmp_path.parent / (tmp_path.name + ".set-aside")).glob("*/3/manifest.json"))
    assert len(aside) == 1  # moved, not deleted
    # a damaged step asked for by name is an error naming it, not a silent fallback
    (tmp_path / "3" / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="checkpoint step 3 .* has no readable manifest.json"):
        _restore(tmp_path, 3)
    with pytest.raises(CheckpointError, match="no checkpoint step 9"):
        _restore(tmp_path, 9)
    assert issubclass(CheckpointError, UserError)


def test_a_non_finite_state_is_never_written(tmp_path):
    ckpt = Checkpointer(tmp_path, CheckpointConfig(every=1, keep=5))
    state = _state(1)
    # only the optimizer state is bad: a loss or param-norm check would not see it
    mu = state.opt_state[0].mu
    bad = state.opt_state[0]._replace(mu={**mu, "w": mu["w"].at[3, 4].set(jnp.nan)})
    state = TrainState(step=state.step, params=state.params, opt_state=(bad, *state.opt_state[1:]))
    with pytest.raises(NonFiniteStateError, match=r"after step 1 .* opt_state/0/mu/w; not saved"):
        ckpt.save(1, state, {}, {})
    ckpt.close()
    assert not [p for p in tmp_path.iterdir() if p.name[0].isdigit()]


@pytest.mark.parametrize("dtype", [np.float32, jnp.bfloat16, np.int32, np.bool_])
def test_host_checksums_of_slices_add_up_to_the_device_checksum(dtype):
    """What the streaming export sums layer by layer is what the manifest recorded on the devices,
    including arrays of more than one host block."""
    rng = np.random.default_rng(1)
    shape = (3, _BLOCK // 1000 + 7, 1000)  # a layer just over one block
    x = (rng.standard_normal(shape) > 0) if dtype is np.bool_ else rng.standard_normal(shape).astype(dtype)
    want = fingerprint({"x": jnp.asarray(x)})[0]["x"]
    per_layer = x[0].size
    assert host_checksum(x) == want
    assert sum(host_checksum(x[i], i * per_layer) for i in range(3)) % 2**32 == want
    assert host_checksum(x[1], 0) != host_checksum(x[1], per_layer)  # the position counts
