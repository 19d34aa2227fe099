"""Run folders and resumes: one run per folder, resumes that neither repeat rows nor silently
reshape the run, a finished run left alone, and damaged checkpoints skipped. Errors come out of
`siamgpt-jax` as one line with exit code 2."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from siamgpt_jax.cli import main
from siamgpt_jax.config import ConfigError
from siamgpt_jax.train import loop
from siamgpt_jax.train.config import load_job_config
from siamgpt_jax.train.loop import train
from siamgpt_jax.train.run_folder import (
    RunFolderError, check_resume_config, config_changes, prepare_fresh_start, truncate_metrics,
)
from tests.train.test_loop import REPO, _overrides, corpus  # noqa: F401 (corpus is a fixture)


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _cli(args, capsys):
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_one_run_per_folder_resume_skips_damage_and_a_finished_run_is_a_no_op(tmp_path, corpus, capsys):
    base = _overrides(tmp_path, corpus, **{"train.steps": 4, "checkpoint.every": 2})
    demo = REPO / "configs/demo.yaml"  # the CLI needs a file: the same one for every call here
    first = train(load_job_config(demo, base), progress=False, stop_at_step=3)
    assert first.stopped_by == "stop_at_step" and [r["step"] for r in _rows(tmp_path)] == [1, 2, 3]

    # a fresh start into the folder is refused before anything is built
    with pytest.raises(RunFolderError, match=r"already holds checkpoints of a run \(steps \[2, 3\].*--resume.*--overwrite"):
        train(load_job_config(demo, base), progress=False)
    # a resume that would reshape the run says what changed
    rc, _, err = _cli(["train", "--config", str(REPO / "configs/demo.yaml"), *base, "train.steps=6",
                       "optim.learning_rate=1e-3", "--resume"], capsys)
    assert rc == 2 and err.count("\n") == 1, err
    assert "train.steps: 4 -> 6" in err and "optim.learning_rate: 0.003 -> 0.001" in err
    assert "--allow-config-change" in err and "Traceback" not in err

    # step 3's save was cut short (no manifest): the resume names it, restores step 2, sets 3 aside
    # and redoes step 3, so metrics.jsonl holds each step once
    (tmp_path / "checkpoints" / "3" / "manifest.json").unlink()
    resumed = train(load_job_config(demo, base + ["mesh.fsdp=4", "mesh.data=2"]), resume=True, progress=False)
    err = capsys.readouterr().err
    assert "checkpoint step 3" in err and "using checkpoint step 2" in err
    assert resumed.steps_done == 4 and len(resumed.losses) == 2
    assert [r["step"] for r in _rows(tmp_path)] == [1, 2, 3, 4]
    assert list((tmp_path / "checkpoints.set-aside").glob("*/3"))

    # resuming the finished run: a clean no-op, exit 0, nothing built
    def no_model(*_a, **_k):
        raise AssertionError("a finished run must not build the model")

    loop.build_model, saved = no_model, loop.build_model
    try:
        rc, out, err = _cli(["train", "--config", str(REPO / "configs/demo.yaml"), *base, "--resume"], capsys)
    finally:
        loop.build_model = saved
    assert rc == 0 and "nothing to train" in out and "at step 4 of train.steps=4" in out, (out, err)
    # --overwrite starts again explicitly
    prepare_fresh_start(tmp_path, tmp_path / "checkpoints", overwrite=True, is_chief=True)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.jsonl").exists()
    assert "--overwrite: removed" in capsys.readouterr().err


def test_no_steps_left_is_a_clean_exit(tmp_path, corpus, capsys):
    rc, out, err = _cli(["train", "--config", str(REPO / "configs/demo.yaml"),
                         *_overrides(tmp_path, corpus, **{"train.steps": 0})], capsys)
    assert rc == 0 and "nothing to train" in out, err


def test_config_changes_ignore_what_does_not_change_the_run():
    saved = {"run_dir": "a", "mesh": {"fsdp": 8}, "train": {"steps": 4, "log_every": 1}, "data": {"seq_len": 64}}
    same = {"run_dir": "b", "mesh": {"fsdp": 4}, "train": {"steps": 4, "log_every": 10}, "data": {"seq_len": 64}}
    assert config_changes(saved, same) == []
    assert config_changes(saved, {**same, "data": {"seq_len": 128}}) == ["data.seq_len: 64 -> 128"]


def test_allow_config_change_says_what_changed(capsys):
    check_resume_config({"train": {"steps": 4}}, {"train": {"steps": 6}}, 4, allow=True)
    assert "resuming with a changed config: train.steps: 4 -> 6" in capsys.readouterr().err
    with pytest.raises(RunFolderError, match="train.steps: 4 -> 6"):
        check_resume_config({"train": {"steps": 4}}, {"train": {"steps": 6}}, 4, allow=False)


def test_truncate_metrics_drops_rows_after_the_step_and_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3, 4)) + '{"step": 5, "lo')
    assert truncate_metrics(path, 2) == 3
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]


@pytest.mark.parametrize("key", ["train.global_batch=0", "train.micro_batches=0", "train.log_every=0",
                                 "checkpoint.every=0", "checkpoint.keep=0"])
def test_edge_values_are_config_errors(key):
    with pytest.raises(ConfigError, match=key.split("=")[0].replace(".", r"\.") + ": must be an integer >= 1"):
        load_job_config(REPO / "configs" / "demo.yaml", [key])


def test_user_errors_are_one_line_with_exit_2_and_debug_shows_the_traceback(tmp_path, corpus, capsys, monkeypatch):
    def no_model(*_a, **_k):
        raise AssertionError("the model was built before the inputs were checked")

    monkeypatch.setattr(loop, "build_model", no_model)
    demo = str(REPO / "configs/demo.yaml")
    cases = {
        "config file": (["train", "--config", str(tmp_path / "nope.yaml")], "config file not found"),
        "config value": (["train", "--config", demo, "train.global_batch=0"], "train.global_batch: must be"),
        "data file": (["train", "--config", demo, *_overrides(tmp_path, corpus),
                       f"data.sources=[{{path: {tmp_path / 'missing.jsonl'}}}]"], "data.sources[0].path"),
        "mesh": (["train", "--config", demo, *_overrides(tmp_path, corpus), "mesh.fsdp=3"], "mesh axis sizes"),
    }
    for name, (args, needle) in cases.items():
        rc, _, err = _cli(args, capsys)
        assert rc == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err, (name, err)
        assert err.startswith("siamgpt-jax train: error: "), err
    with pytest.raises(FileNotFoundError, match="data.sources"):
        main(["--debug", *cases["data file"][0]])


def test_a_signal_during_start_up_exits_quietly(tmp_path, corpus):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "siamgpt_jax.cli", "train", "--config",
                             str(REPO / "configs" / "demo.yaml"), *_overrides(tmp_path, corpus)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # importing jax, building the tokenizer and the model
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_resume_from_and_overwrite_through_the_command_line(tmp_path, corpus, capsys):
    """`train --resume-from STEP` continues from that step and moves later ones aside, redoing the
    same steps exactly; `--overwrite` starts the run again; the two cannot be combined."""
    demo = str(REPO / "configs/demo.yaml")
    base = _overrides(tmp_path, corpus, **{"train.steps": 4, "checkpoint.every": 2})
    rc, out, err = _cli(["train", "--config", demo, *base, "--no-progress"], capsys)
    assert rc == 0 and "trained steps 4/4" in out, err
    # the start-up line says what a step computes, from the run's step spec
    assert "step: 8 rows x 64 tokens, float32 compute / float32 params, remat none, attention xla" in out, out
    first = {r["step"]: r["loss"] for r in _rows(tmp_path)}

    rc, out, err = _cli(["train", "--config", demo, *base, "--no-progress", "--resume-from", "2"], capsys)
    assert rc == 0 and "trained steps 4/4" in out, err
    assert "resumed from" in out and "at step 2" in out
    assert [p.name for p in (tmp_path / "checkpoints.set-aside").glob("*/*")] == ["4"]
    again = {r["step"]: r["loss"] for r in _rows(tmp_path)}
    assert again == first  # steps 3 and 4 redone, bit for bit, and each step logged once

    rc, out, err = _cli(["train", "--config", demo, *base, "--overwrite", "--resume"], capsys)
    assert rc == 2 and "cannot be combined with --resume" in err
    rc, out, err = _cli(["train", "--config", demo, *base, "--no-progress", "--overwrite"], capsys)
    assert rc == 0 and "--overwrite: removed" in err, err
    assert {r["step"]: r["loss"] for r in _rows(tmp_path)} == first
