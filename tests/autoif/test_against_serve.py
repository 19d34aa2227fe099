"""The whole AutoIF pipeline against a real `siamgpt-jax serve` on a tiny random model. Its answers are
noise, so few items survive, but every stage must account for every item and nothing may crash."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.generate.helpers import tiny_hf_folder
from tests.generate.http_helpers import REPO, free_port, serve_subprocess


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    model = tiny_hf_folder(tmp_path_factory.mktemp("autoif-serve") / "tiny-teacher", num_hidden_layers=2)
    port = free_port()
    with serve_subprocess(["--model", str(model), "--max-len", "1024", "--max-batch", "8",
                           "--log-level", "warning"], port) as (_, url):
        yield f"{url}/v1#tiny-teacher"


def run_cli(tmp_path, endpoint, *overrides):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join((REPO / "data/autoif/seeds_th.jsonl").read_text(encoding="utf-8")
                             .splitlines(keepends=True)[:3]), encoding="utf-8")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "siamgpt_jax.cli", "autoif", "--config", "configs/autoif.yaml",
           "--backend", endpoint, "--no-progress", f"out_dir={out}", f"seeds={seeds}",
           "augment_requests=1", "instructions_per_request=5", "functions_per_instruction=2",
           "queries_per_instruction=1", "samples_per_prompt=2", "generation.max_new_tokens=24",
           "judge.max_new_tokens=8", *overrides]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "report.json").read_text()), out


def _accounted(report):
    for s in report["stages"]:
        assert s["judged"] == s["kept"] + sum(s["rejected"].values()), s
    return {s["stage"]: s for s in report["stages"]}


def test_functions_mode_accounts_for_every_item(tmp_path, endpoint):
    report, out = run_cli(tmp_path, endpoint, "mode=functions")
    stages = _accounted(report)
    assert list(stages) == ["seeds", "augment", "functions", "cross_validate", "backtranslate", "queries",
                            "responses", "quality"]
    assert stages["seeds"]["kept"] == 3
    assert sum(stages["augment"]["augment_answers"].values()) == 1  # the one request was answered or counted
    assert sum(stages["functions"]["function_answers"].values()) == 2 * stages["augment"]["kept"]
    assert report["model"] == "tiny-teacher" and report["cache"]["misses"] > 0
    assert report["pairs"] == sum(1 for _ in (out / "stream_b.jsonl").open())


def test_registry_mode_judges_real_responses(tmp_path, endpoint):
    report, out = run_cli(tmp_path, endpoint, "mode=registry", "registry_combinations=2")
    stages = _accounted(report)
    responses = stages["responses"]
    assert responses["judged"] == 2 * stages["queries"]["kept"] > 0
    # noise from a random model fails the constraints or the Thai checks, each with its reason
    assert responses["kept"] + sum(responses["rejected"].values()) == responses["judged"]
    assert all(r.split(":")[0] in ("failed_constraint", "stability", "empty_response", "truncated_response",
                                   "duplicate_response") for r in responses["rejected"])
    # a second run asks the server nothing: every stage is read back
    again, _ = run_cli(tmp_path, endpoint, "mode=registry", "registry_combinations=2")
    assert again["cache"]["misses"] == 0 and again["pairs"] == report["pairs"]
