"""`siamgpt-jax generate` end to end: JSONL in, JSONL out, resume after an interrupt, bad input
named by file and line; and a training run folder or step folder as --model."""

import argparse
import json

import pytest

from siamgpt_jax.cli import main
from siamgpt_jax.errors import UserError
from siamgpt_jax.generate import cli as gen_cli
from tests.generate.helpers import TINY_VOCAB, byte_tokenizer, tiny_hf_folder

LINES = [
    {"id": "a", "messages": [{"role": "user", "content": "สวัสดีครับ"}]},
    {"id": "b", "prompt": "The capital of Thailand is"},
    {"id": "c", "messages": [{"role": "system", "content": "Answer in Thai."}, {"role": "user", "content": "Hi"}]},
]
FLAGS = ["--max-new-tokens", "6", "--max-len", "96", "--batch-size", "2", "--no-progress"]


def _run(argv):
    parser = argparse.ArgumentParser()
    gen_cli.add_arguments(parser)
    return gen_cli.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return tiny_hf_folder(tmp_path_factory.mktemp("cli") / "hf", seed=5)


def _write(path, lines):
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l, ensure_ascii=False)) + "\n" for l in lines), encoding="utf-8")
    return path


def test_generate_writes_every_line_and_resumes_after_an_interrupt(tmp_path, hf_dir):
    prompts = _write(tmp_path / "prompts.jsonl", LINES)
    out = tmp_path / "out.jsonl"
    assert main(["generate", "--model", str(hf_dir), "--prompts", str(prompts), "--out", str(out), *FLAGS, "--logprobs"]) == 0
    rows = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"] and [r["line"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert r["finish_reason"] in ("stop", "length") and isinstance(r["response"], str)
        assert r["prompt_tokens"] > 0 and 0 <= r["completion_tokens"] <= 6 == 6
        assert len(r["token_logprobs"]) == r["completion_tokens"]
    # an interrupt after line 1, in the middle of writing line 2: the rerun completes it identically
    full = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text(full[0] + full[1][:20], encoding="utf-8")
    assert _run(["--model", str(hf_dir), "--prompts", str(prompts), "--out", str(out), *FLAGS, "--logprobs"]) == 0
    assert out.read_text(encoding="utf-8").splitlines(keepends=True) == full
    # nothing left to do: the model is not even loaded
    assert _run(["--model", str(tmp_path / "gone"), "--prompts", str(prompts), "--out", str(out), *FLAGS]) == 0


def test_bad_input_names_the_file_and_line(tmp_path, hf_dir):
    out = tmp_path / "out.jsonl"
    bad_json = _write(tmp_path / "bad.jsonl", [LINES[0], "{not json"])
    with pytest.raises(UserError, match=r"bad\.jsonl:2: not valid JSON"):
        _run(["--model", str(hf_dir), "--prompts", str(bad_json), "--out", str(out), *FLAGS])
    neither = _write(tmp_path / "neither.jsonl", [{"text": "hi"}])
    with pytest.raises(UserError, match=r"neither\.jsonl:1: a line needs exactly one of 'messages' or 'prompt'"):
        _run(["--model", str(hf_dir), "--prompts", str(neither), "--out", str(out), *FLAGS])
    with pytest.raises(UserError, match="no such model folder"):
        _run(["--model", str(tmp_path / "nope"), "--prompts", str(_write(tmp_path / "p.jsonl", LINES)), "--out", str(out), *FLAGS])
    bad_role = _write(tmp_path / "role.jsonl", [LINES[1], {"messages": [{"role": "bot", "content": "x"}]}])
    with pytest.raises(UserError, match=r"role\.jsonl:2: message 0 has unknown role 'bot'"):
        _run(["--model", str(hf_dir), "--prompts", str(bad_role), "--out", str(out), *FLAGS])
    long = _write(tmp_path / "long.jsonl", [LINES[1], {"prompt": "x" * 300}])
    with pytest.raises(UserError, match=r"long\.jsonl:2: the prompt has 300 tokens.*--truncate"):
        _run(["--model", str(hf_dir), "--prompts", str(long), "--out", str(out), *FLAGS])
    assert not out.exists()  # every line is checked before anything is generated
    assert _run(["--model", str(hf_dir), "--prompts", str(long), "--out", str(out), *FLAGS, "--truncate"]) == 0
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[1])["prompt_tokens"] == 96 - 6


def test_a_training_run_folder_and_a_step_folder_load(tmp_path):
    """A run folder as the trainer writes it (its Checkpointer, its config record); training itself
    is left out to keep this quick (the demo test trains, then generates from the run folder)."""
    import dataclasses

    import jax.numpy as jnp

    from siamgpt_jax import config as config_lib
    from siamgpt_jax.generate.backend import GenerationRequest, SamplingParams
    from siamgpt_jax.generate.jax_backend import JaxBackend
    from siamgpt_jax.loader.tokenizer import load_tokenizer
    from siamgpt_jax.model.qwen3 import init_model
    from siamgpt_jax.train.checkpoint import CheckpointConfig, Checkpointer
    from siamgpt_jax.train.config import load_job_config
    from siamgpt_jax.train.state import ModelDef, TrainState

    tok_dir = byte_tokenizer().save(tmp_path / "tok")
    cfg = load_job_config(None, [f"run_dir={tmp_path / 'run'}", "model.preset=qwen3-tiny", "model.dtype=float32",
                                 f"model.overrides={{vocab_size: {TINY_VOCAB}, hidden_size: 32, intermediate_size: 64, head_dim: 8}}",
                                 f"data.tokenizer={tok_dir}"])
    arch = cfg.model.architecture()
    model = init_model(arch, seed=3, dtype=jnp.float32)
    _, params = ModelDef.split(model)
    ckpt = Checkpointer(tmp_path / "run" / "checkpoints", CheckpointConfig(async_save=False))
    state = TrainState(step=jnp.int32(7), params=params, opt_state=())
    ckpt.save(7, state, {}, {"job": config_lib.to_dict(cfg), "architecture": dataclasses.asdict(arch)}, force=True)
    ckpt.close()

    request = [GenerationRequest(messages=({"role": "user", "content": "hello"},), sampling=SamplingParams(max_new_tokens=5))]
    want = JaxBackend.from_model(model, load_tokenizer(tok_dir), chunk=4).generate(request)[0]
    for path in (tmp_path / "run", tmp_path / "run" / "checkpoints", tmp_path / "run" / "checkpoints" / "7"):
        backend = JaxBackend.from_path(path, chunk=4)  # the tokenizer comes from the run's config
        assert backend.generate(request)[0] == want
    assert backend.model_name == "run-step7"
