"""Two processes resolve hub ids: process 0 resolves (and downloads), the other waits for its
commit. Process 1's own cache has `main` at a newer commit (the branch moved between the hosts'
looks), yet it reads process 0's commit; and process 0's error reaches process 1 as its own."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hub.cache import repo_folder
from tests.hub.conftest import MODEL

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_process_zero_resolves_and_the_others_follow(hub_home, tmp_path):
    c1, c2 = hub_home.model_commits
    moved = tmp_path / "hf"
    shutil.copytree(hub_home.home, moved, symlinks=True)
    (repo_folder(moved, "model", MODEL) / "refs" / "main").write_text(c2)

    coord = f"127.0.0.1:{_free_port()}"
    worker = Path(__file__).with_name("two_process_hub_worker.py")
    procs = []
    for pid, home in enumerate((hub_home.home, moved)):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_"))}
        env.update({"HF_HUB_CACHE": str(home / "hub"), "HF_HUB_OFFLINE": "1",
                    "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")})
        procs.append(subprocess.Popen([sys.executable, str(worker), coord, str(pid), "2", MODEL, "test-org/absent"],
                                      env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    zero, one = results
    assert zero[MODEL] == one[MODEL] == {"commit": c1}  # process 1 alone would have read c2
    assert "test-org/absent@main is not in the local hub cache" in zero["test-org/absent"]["error"]
    assert one["test-org/absent"]["error"] == zero["test-org/absent"]["error"] + " (reported by process 0)"
