"""A stand-in for the Hub's HTTP API on 127.0.0.1, so huggingface_hub raises its own exception
classes (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError, RemoteEntryNotFoundError)
from real responses: the status codes and X-Error-Code headers the Hub sends for each case.

Repos it knows (models):
    test-org/missing  every call: 401 RepoNotFound (what the Hub answers for an unknown or private repo)
    test-org/gated    every call: 403 GatedRepo
    test-org/holey    exists at HOLEY_COMMIT; its listing names config.json, which answers 404 EntryNotFound
    anything else     revision lookups answer 404 RevisionNotFound
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOLEY_COMMIT = "1234567890abcdef1234567890abcdef12345678"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status: int, body: object = None, error_code: str | None = None, message: str = "") -> None:
        data = json.dumps(body if body is not None else {"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if error_code:
            self.send_header("X-Error-Code", error_code)
            self.send_header("X-Error-Message", message)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if "/test-org/missing" in path:
            return self._send(401, error_code="RepoNotFound", message="Repository not found")
        if "/test-org/gated" in path:
            return self._send(403, error_code="GatedRepo", message="Access to model test-org/gated is restricted.")
        if path == "/api/models/test-org/holey/revision/main":
            return self._send(200, {"id": "test-org/holey", "sha": HOLEY_COMMIT, "private": False})
        if path == f"/api/models/test-org/holey/tree/{HOLEY_COMMIT}":
            return self._send(200, [{"type": "file", "path": "config.json", "size": 2, "oid": "0" * 40}])
        if "/resolve/" in path:
            return self._send(404, error_code="EntryNotFound", message="Entry not found")
        if "/revision/" in path:
            return self._send(404, error_code="RevisionNotFound", message="Invalid rev id")
        return self._send(404, message="no such route in the fake hub")

    do_HEAD = do_GET


class FakeHub:
    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
