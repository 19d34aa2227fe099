"""The batching worker on its own: jobs that arrive together share a batch, a batch never exceeds
max_batch, and a backend exception fails only the job that caused it; the worker goes on.

The backend here is a scripted one on purpose: these tests are about the worker's handling of
whatever a backend does (including raising), which no real model does on demand. The real model
behind a real server is tested in test_serve.py."""

from __future__ import annotations

import asyncio
import threading

import pytest

from siamgpt_jax.generate.backend import Generation, GenerationRequest
from siamgpt_jax.generate.batcher import BatchFailed, Batcher


class ScriptedBackend:
    """Echoes each prompt; raises on a batch holding a prompt 'boom'; records batch sizes."""

    model_name = "scripted"

    def __init__(self, hold: threading.Event | None = None):
        self.batches: list[list[str]] = []
        self.hold = hold

    def generate(self, requests):
        if self.hold is not None:
            self.hold.wait(10)
        prompts = [r.prompt for r in requests]
        self.batches.append(prompts)
        if "boom" in prompts:
            raise RuntimeError("induced failure")
        return [Generation(text=p.upper(), finish_reason="stop", prompt_tokens=len(p), completion_tokens=1)
                for p in prompts]

    def close(self):
        pass


def _reqs(*prompts):
    return [GenerationRequest(prompt=p) for p in prompts]


def _run(batcher, jobs):
    async def main():
        return await asyncio.gather(*(batcher.submit(j) for j in jobs), return_exceptions=True)

    return asyncio.run(main())


def test_jobs_arriving_together_share_a_batch_up_to_max_batch():
    backend = ScriptedBackend()
    batcher = Batcher(backend, max_batch=4, window_s=0.5)
    results = _run(batcher, [_reqs("a"), _reqs("b", "c"), _reqs("d"), _reqs("e", "f")])
    batcher.close()
    assert [[g.text for g in r] for r in results] == [["A"], ["B", "C"], ["D"], ["E", "F"]]
    assert backend.batches == [["a", "b", "c", "d"], ["e", "f"]]  # e, f would exceed 4: next batch
    stats = batcher.snapshot()
    assert stats["batches"] == 2 and stats["max_batch_size"] == 4 and stats["batch_sizes"] == {"2": 1, "4": 1}
    assert stats["jobs"] == 4 and stats["sequences"] == 6 and stats["prompt_tokens"] == 6


def test_a_failing_job_fails_alone_and_the_worker_goes_on():
    backend = ScriptedBackend()
    batcher = Batcher(backend, max_batch=8, window_s=0.5)
    ok1, bad, ok2 = _run(batcher, [_reqs("a"), _reqs("boom"), _reqs("b")])
    assert [g.text for g in ok1] == ["A"] and [g.text for g in ok2] == ["B"]
    assert isinstance(bad, BatchFailed) and "RuntimeError: induced failure" in str(bad)
    # the batch of three failed, then each job ran alone
    assert backend.batches == [["a", "boom", "b"], ["a"], ["boom"], ["b"]]
    [later] = _run(batcher, [_reqs("c")])
    assert [g.text for g in later] == ["C"]
    assert batcher.snapshot()["failed_batches"] == 2
    batcher.close()


def test_jobs_queued_while_a_batch_runs_are_taken_together():
    hold = threading.Event()
    backend = ScriptedBackend(hold)
    batcher = Batcher(backend, max_batch=8, window_s=0.0)

    async def main():
        first = asyncio.ensure_future(batcher.submit(_reqs("a")))
        await asyncio.sleep(0.2)  # the worker is now inside generate(["a"]), held
        rest = [asyncio.ensure_future(batcher.submit(_reqs(p))) for p in "bcd"]
        await asyncio.sleep(0.2)
        hold.set()
        return await asyncio.gather(first, *rest)

    asyncio.run(main())
    batcher.close()
    assert backend.batches == [["a"], ["b", "c", "d"]]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_batch"):
        Batcher(ScriptedBackend(), max_batch=0)
    batcher = Batcher(ScriptedBackend(), max_batch=2)
    with pytest.raises(ValueError, match="1..2 requests"):
        asyncio.run(batcher.submit(_reqs("a", "b", "c")))
    batcher.close()


def test_server_answers_a_backend_exception_with_500_and_goes_on():
    import httpx

    from siamgpt_jax.generate.server import create_app
    from tests.generate.http_helpers import free_port, uvicorn_thread

    with uvicorn_thread(create_app(ScriptedBackend(), window_s=0.0), free_port()) as url:
        r = httpx.post(f"{url}/v1/completions", json={"prompt": "boom"})
        assert r.status_code == 500
        assert r.json()["error"] == {"message": "generation failed: RuntimeError: induced failure",
                                     "type": "server_error", "param": None, "code": None}
        r = httpx.post(f"{url}/v1/completions", json={"prompt": "fine", "model": "scripted"})
        assert r.status_code == 200 and r.json()["choices"][0]["text"] == "FINE"


def test_server_refuses_an_oversized_body_before_reading_it():
    import httpx

    from siamgpt_jax.generate.server import create_app
    from tests.generate.http_helpers import free_port, uvicorn_thread

    with uvicorn_thread(create_app(ScriptedBackend(), window_s=0.0, max_body_bytes=1000), free_port()) as url:
        r = httpx.post(f"{url}/v1/completions", json={"prompt": "x" * 2000})
        assert r.status_code == 413 and "over the server's limit of 1000" in r.json()["error"]["message"]
        assert httpx.post(f"{url}/v1/completions", json={"prompt": "small"}).status_code == 200
        chunked = httpx.post(f"{url}/v1/completions", content=iter([b'{"prompt": "a"}']))  # no Content-Length
        assert chunked.status_code == 411


class StreamingScriptedBackend(ScriptedBackend):
    """Tells each row's text in two steps before returning it."""

    streams_text = True

    def generate(self, requests, on_text=None):
        for step in (1, 2):
            for i, r in enumerate(requests):
                if on_text is not None:
                    on_text(i, r.prompt.upper()[:step])
        return super().generate(requests)


def test_text_so_far_reaches_the_job_it_belongs_to_with_its_own_row_numbers():
    backend = StreamingScriptedBackend()
    batcher = Batcher(backend, max_batch=4, window_s=0.5)
    heard: dict[str, list] = {"first": [], "second": []}

    async def main():
        return await asyncio.gather(
            batcher.submit(_reqs("ab", "cd"), on_text=lambda i, t: heard["first"].append((i, t))),
            batcher.submit(_reqs("ef")),  # no callback: nothing is routed to it
            batcher.submit(_reqs("gh"), on_text=lambda i, t: heard["second"].append((i, t))))

    results = asyncio.run(main())
    batcher.close()
    assert backend.batches == [["ab", "cd", "ef", "gh"]]  # one batch
    assert [[g.text for g in r] for r in results] == [["AB", "CD"], ["EF"], ["GH"]]
    assert heard["first"] == [(0, "A"), (1, "C"), (0, "AB"), (1, "CD")]
    assert heard["second"] == [(0, "G"), (0, "GH")]
