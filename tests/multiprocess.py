"""Launching the multi-host tests' worker processes: each gets a clean environment (no SLURM/Open MPI
variables) with the repository on PYTHONPATH; all are waited for, and a timeout kills all of them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def coordinator() -> str:
    """127.0.0.1:PORT with a port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def worker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python ARGS` from the repository root, output captured."""
    return subprocess.Popen([sys.executable, *args], env=env or worker_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[str]:
    """Each process's stdout, after asserting it exited 0 (its stderr tail in the message)."""
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, err[-4000:]
        outs.append(out)
    return outs


def last_json(outs: list[str]) -> list[dict]:
    """The last stdout line of each worker, parsed: the workers report one JSON line at the end."""
    return [json.loads(out.strip().splitlines()[-1]) for out in outs]
