"""Two processes resolve hub ids: process 0 resolves (and downloads), the other waits for its
commit. Process 1's own cache has `main` at a newer commit (the branch moved between the hosts'
looks), yet it reads process 0's commit; and process 0's error reaches process 1 as its own."""

import shutil
from pathlib import Path

import pytest

from tests.hub.cache import repo_folder
from tests.multiprocess import coordinator, last_json, start, wait_all, worker_env
from tests.hub.conftest import MODEL



@pytest.mark.slow
def test_process_zero_resolves_and_the_others_follow(hub_home, tmp_path):
    c1, c2 = hub_home.model_commits
    moved = tmp_path / "hf"
    shutil.copytree(hub_home.home, moved, symlinks=True)
    (repo_folder(moved, "model", MODEL) / "refs" / "main").write_text(c2)

    coord = coordinator()
    worker = str(Path(__file__).with_name("two_process_hub_worker.py"))
    procs = [start([worker, coord, str(pid), "2", MODEL, "test-org/absent"],
                   worker_env(HF_HUB_CACHE=str(home / "hub"), HF_HUB_OFFLINE="1"))
             for pid, home in enumerate((hub_home.home, moved))]
    results = last_json(wait_all(procs, timeout=180))
    zero, one = results
    assert zero[MODEL] == one[MODEL] == {"commit": c1}  # process 1 alone would have read c2
    assert "test-org/absent@main is not in the local hub cache" in zero["test-org/absent"]["error"]
    assert one["test-org/absent"]["error"] == zero["test-org/absent"]["error"] + " (reported by process 0)"
