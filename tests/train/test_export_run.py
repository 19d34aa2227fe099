"""export-hf from a training run's checkpoint: the step named (or the latest), said in the output,
weights read a layer at a time from the orbax state and equal to the saved params, and the
tokenizer the run trained with written beside them."""

import dataclasses
import json

import jax
import numpy as np
import optax
import pytest
import safetensors.numpy as stn

from siamgpt_jax import config as config_lib
from siamgpt_jax.cli import main
from siamgpt_jax.convert import names
from siamgpt_jax.convert.errors import CheckpointError
from siamgpt_jax.errors import UserError
from siamgpt_jax.model.config import preset
from siamgpt_jax.model.qwen3 import init_model
from siamgpt_jax.train.checkpoint import CheckpointConfig, Checkpointer
from siamgpt_jax.train.config import JobConfig
from siamgpt_jax.train.export import load_trained_model, open_trained
from siamgpt_jax.train.state import ModelDef, create_train_state


def _save_run(run, tokenizer_dir=None):
    """A run folder with checkpoints at steps 3 and 6 (different params), as train writes them."""
    arch = preset("qwen3-tiny").replace(vocab_size=128, num_hidden_layers=3)
    job = JobConfig(run_dir=str(run))
    if tokenizer_dir is not None:
        job = dataclasses.replace(job, data=dataclasses.replace(job.data, tokenizer=str(tokenizer_dir)))
    saved = {"job": config_lib.to_dict(job), "architecture": dataclasses.asdict(arch)}
    ckpt = Checkpointer(run / "checkpoints", CheckpointConfig(async_save=False))
    params = {}
    for step, seed in ((3, 1), (6, 2)):
        _, params[step] = ModelDef.split(init_model(arch, seed=seed, param_dtype=np.float32))
        state = create_train_state(params[step], optax.adamw(1e-3))
        ckpt.save(step, state, {"records": step}, saved, force=True)
    ckpt.close()
    return arch, params


def _hf_weights(folder):
    out = {}
    for f in folder.glob("*.safetensors"):
        out.update(stn.load_file(str(f)))
    return out


def test_export_names_the_step_and_writes_that_steps_params(tmp_path, capsys):
    arch, params = _save_run(tmp_path / "run")
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer_config.json").write_text("{}")
    common = ["--dtype", "float32", "--no-progress", "--tokenizer-dir", str(tmp_path / "tok")]
    for source, step in ((tmp_path / "run", 6), (tmp_path / "run" / "checkpoints" / "3", 3)):
        out = tmp_path / f"hf{step}"
        assert main(["export-hf", str(source), str(out), *common]) == 0
        assert f"from step {step} of {tmp_path / 'run' / 'checkpoints'}" in capsys.readouterr().out
        got = _hf_weights(out)
        for e in names.entries(arch):
            want = np.asarray(jax.tree.reduce(lambda a, k: a[k], e.path.split("."), params[step]))
            for i, name in enumerate(names.hf_names(arch, e)):
                np.testing.assert_array_equal(got[name], names.to_hf(e, want[i] if e.layered else want))
    model = load_trained_model(tmp_path / "run" / "checkpoints" / "3")
    np.testing.assert_array_equal(np.asarray(model.embed[...]), np.asarray(params[3]["embed"]))
    arrays = open_trained(tmp_path / "run").arrays  # train saves stacked params a layer per chunk
    assert all(arrays[e.path].chunk_layout.read_chunk.shape[0] == 1 for e in names.entries(arch) if e.layered)


def test_export_of_an_orbax_item_whose_chunks_span_all_layers_reads_each_chunk_once(tmp_path):
    import orbax.checkpoint as ocp
    from flax import nnx

    from siamgpt_jax.convert import hf_export, params_ckpt, ts_arrays
    from siamgpt_jax.model.config import param_shapes

    arch = preset("qwen3-tiny").replace(vocab_size=128, num_hidden_layers=3)
    model = init_model(arch, seed=3, param_dtype=np.float32)
    with ocp.StandardCheckpointer() as ckptr:  # orbax's default chunking: one chunk per array
        ckptr.save(tmp_path / "item", {"params": nnx.to_pure_dict(nnx.state(model, nnx.Param))})
    arrays = {p: ts_arrays.orbax_array(tmp_path / "item", f"params.{p}") for p in param_shapes(arch)}
    assert arrays["layers.q_proj"].chunk_layout.read_chunk.shape[0] == 3
    reads = []
    real_read = ts_arrays.read
    ts_arrays.read = lambda arr, index=(): reads.append(index) or real_read(arr, index)
    try:
        hf_export.write_hf(arch, params_ckpt.array_reader(arrays), tmp_path / "a", dtype="float32", progress=False)
    finally:
        ts_arrays.read = real_read
    assert len(reads) == len(param_shapes(arch))  # each array once, not once per layer
    hf_export.save_hf(model, tmp_path / "b", dtype="float32", progress=False)
    a, b = _hf_weights(tmp_path / "a"), _hf_weights(tmp_path / "b")
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_export_writes_the_tokenizer_the_run_trained_with(tmp_path):
    import transformers

    from siamgpt_jax.loader.tokenizer import load_tokenizer

    tok = load_tokenizer(None)
    tok.save(tmp_path / "tok")
    _save_run(tmp_path / "run", tokenizer_dir=tmp_path / "tok")
    assert main(["export-hf", str(tmp_path / "run"), str(tmp_path / "hf"), "--no-progress"]) == 0
    text = "ภาษาไทย 2569 ทดสอบ"
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == tok.encode(text)
    assert json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())["chat_template"]

    (tmp_path / "tok" / "tokenizer.json").unlink()  # the recorded tokenizer is gone: say so, name the flag
    with pytest.raises(UserError, match=r"tokenizer of the run: .*tokenizer\.json.*\(pass --tokenizer-dir\)"):
        main(["--debug", "export-hf", str(tmp_path / "run"), str(tmp_path / "hf2"), "--no-progress"])
    assert not (tmp_path / "hf2").exists()


def _set_checksum(run, step, key, delta=1):
    path = run / "checkpoints" / str(step) / "manifest.json"
    m = json.loads(path.read_text())
    m["arrays"][key] ^= delta
    path.write_text(json.dumps(m))


def test_export_checks_every_tensor_against_its_manifest_and_stops_at_a_damaged_one(tmp_path, capsys):
    arch, _ = _save_run(tmp_path / "run")
    common = ["--dtype", "float32", "--no-progress"]
    assert main(["export-hf", str(tmp_path / "run"), str(tmp_path / "good"), *common]) == 0
    n_params = len(names.entries(arch))
    assert f"{n_params} tensors matched their saved checksums" in capsys.readouterr().out
    # what was read back differs from what was saved (here: the record of it, which is the same to the check)
    _set_checksum(tmp_path / "run", 6, "params/layers/q_proj")
    with pytest.raises(CheckpointError, match=r"checkpoint step 6 .*tensor 'params.layers.q_proj' does not match "
                                              r"the checksum recorded when it was saved"):
        main(["--debug", "export-hf", str(tmp_path / "run"), str(tmp_path / "bad"), *common])
    assert not (tmp_path / "bad").exists()  # nothing that looks like an export
    # the in-memory load (generate, serve and eval read run folders this way) checks the same record
    with pytest.raises(CheckpointError, match="tensor 'params.layers.q_proj' does not match"):
        load_trained_model(tmp_path / "run")
    load_trained_model(tmp_path / "run" / "checkpoints" / "3")  # the older step is intact


def test_a_step_whose_save_never_finished_is_skipped_by_default_and_refused_by_name(tmp_path):
    _save_run(tmp_path / "run")
    (tmp_path / "run" / "checkpoints" / "6" / "manifest.json").unlink()  # killed before the manifest
    assert open_trained(tmp_path / "run").step == 3
    with pytest.raises(CheckpointError, match=r"checkpoint step 6 .* its save never finished"):
        open_trained(tmp_path / "run" / "checkpoints" / "6")
