"""Real HTTP servers for the serving tests: a `siamgpt-jax serve` subprocess, or a small FastAPI app
on a uvicorn thread, each on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on (bound and released; nobody else picks it in the next instant)."""
    return free_port()


def listening_addresses(port: int) -> list[str]:
    """Local IPv4 addresses in LISTEN state on `port`, from /proc/net/tcp (e.g. ['127.0.0.1'])."""
    out = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if int(p, 16) == port and state == "0A":
            out.append(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return out


@contextlib.contextmanager
def serve_subprocess(args: list[str], port: int, *, timeout_s: float = 240.0, env: dict | None = None):
    """Start `siamgpt-jax serve ARGS --port PORT`; yield (process, base URL) once /health answers."""
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"siamgpt-serve-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "siamgpt_jax.cli", "serve", *args, "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                env=None if env is None else os.environ | env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not answer /health in {timeout_s}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def uvicorn_thread(app, port: int):
    """Run an ASGI app on 127.0.0.1:PORT in a thread; yield its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
