"""Runs inside the sandbox (standard library only; it never imports siamgpt_jax).

stdin: one JSON object {"jobs": [{"code": str, "cases": [str, ...]}, ...], "seconds_per_function":
float, "max_line_bytes": int}. For each job it forks a child that compiles the code, finds
`evaluate(response) -> bool` and calls it on every case. Only the child ever runs generated code:
it gets its own process group, stdin/stdout/stderr on /dev/null and a single pipe back, so it cannot
write a verdict for another job. This process, which never runs generated code, waits on that pipe
with a deadline, kills the child's group when it is over, and writes one JSON line per job to
stdout as soon as the job is done: {"job": i, "results": [[verdict or null, error or null], ...]}.
A job cut short reports its remaining cases with the reason (timeout, crashed, output_limit).
"""

import inspect  # imported before any fork: each child would otherwise pay for it
import json
import os
import select
import signal
import sys
import time


def _child(code: str, cases: list, out_fd: int) -> None:
    """Runs in the forked child: never returns."""
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, out_fd)
    os.closerange(out_fd + 1, 65536)

    def send(verdict, error):
        os.write(out_fd, (json.dumps([verdict, error]) + "\n").encode())

    try:
        namespace = {"__name__": "verifier"}
        exec(compile(code, "<verifier>", "exec"), namespace)  # noqa: S102 - inside the sandbox only
    except SyntaxError as e:
        for _ in cases:
            send(None, f"syntax_error: line {e.lineno}: {e.msg}")
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - anything at definition time is the function's fault
        for _ in cases:
            send(None, f"definition_error: {type(e).__name__}")
        os._exit(0)
    fn = namespace.get("evaluate")
    if not callable(fn):
        for _ in cases:
            send(None, "no_evaluate: the code defines no callable evaluate(response)")
        os._exit(0)
    try:
        inspect.signature(fn).bind("x")
    except (TypeError, ValueError):
        for _ in cases:
            send(None, "bad_signature: evaluate must take exactly one argument (the response)")
        os._exit(0)
    for case in cases:
        try:
            result = fn(case)
        except BaseException as e:  # noqa: BLE001
            send(None, f"exception: {type(e).__name__}")
            continue
        if isinstance(result, bool):
            send(result, None)
        else:
            send(None, f"not_bool: evaluate returned {type(result).__name__}")
    os._exit(0)


def _run_job(job: dict, seconds: float, max_line: int) -> list:
    cases = job["cases"]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.setpgid(0, 0)
        _child(job["code"], cases, write_fd)
    os.close(write_fd)
    results, buf, reason = [], b"", None
    deadline = time.monotonic() + seconds
    while len(results) < len(cases):
        left = deadline - time.monotonic()
        if left <= 0:
            reason = "timeout"
            break
        ready, _, _ = select.select([read_fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(read_fd, 65536)
        if not chunk:
            reason = "crashed"
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        if len(buf) > max_line:
            reason = "output_limit"
            break
        for line in lines:
            try:
                verdict, error = json.loads(line)
            except ValueError:
                verdict, error = None, "bad_output"
            results.append([verdict if isinstance(verdict, bool) else None, error])
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    os.close(read_fd)
    os.waitpid(pid, 0)
    results = results[: len(cases)]
    results += [[None, reason or "crashed"]] * (len(cases) - len(results))
    return results


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    out = os.fdopen(os.dup(1), "w")
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 1)  # stray writes to fd 1 never reach the parent
    for i, job in enumerate(request["jobs"]):
        results = _run_job(job, request["seconds_per_function"], request["max_line_bytes"])
        out.write(json.dumps({"job": i, "results": results}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
