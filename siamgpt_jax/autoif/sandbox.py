"""Run LLM-written verification functions where they can do no harm: bubblewrap, one process per batch.

Threat model (docs/AUTOIF.md): the code is hostile. It may loop, allocate without end, fork, sleep,
write or delete files, read secrets (files, environment), open sockets, signal other processes,
use ctypes or interpreter tricks, flood its output, or lie about other functions' verdicts. It
runs under bubblewrap with every namespace unshared (no network; its own PIDs, so nothing outside
can be signalled), an empty environment, a read-only view of the system's /usr only (no /etc, no
home, no project files), a throwaway /tmp, no capabilities, and rlimits on CPU time, address space
and process count (as root, the sandbox drops to an unprivileged uid so the process limit holds).
Inside, `sandbox_runner.py` forks one child per function, so a function only ever writes its own
verdicts, and kills it at its deadline. Outside, this module kills a batch at its wall limit, caps
what it reads, and re-runs the functions a failed batch did not finish one by one, so one hostile
function costs only its own verdicts: every case comes back with a verdict or a reason, never an
exception.

Where bubblewrap is missing, `Sandbox` refuses to start unless `unsafe_no_sandbox=True`, which runs
the same runner in a plain subprocess with the same rlimits and no isolation (reports say so).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from siamgpt_jax.errors import UserError

RUNNER = Path(__file__).with_name("sandbox_runner.py")
SANDBOX_RUNNER_PATH = "/sandbox/runner.py"  # where the runner appears inside the sandbox
UNPRIVILEGED_UID = 65534  # "nobody": the uid a root caller's sandbox runs as
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"


class SandboxUnavailableError(UserError):
    """bubblewrap is missing or cannot create namespaces here."""


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    seconds_per_function: float = 2.0  # wall time for one function on all its cases
    batch_seconds: float = 60.0  # wall time for one sandbox process
    cpu_seconds: int = 30  # RLIMIT_CPU of each process in the sandbox
    memory_bytes: int = 1 << 30  # RLIMIT_AS of each process in the sandbox
    max_processes: int = 16  # RLIMIT_NPROC: the runner, its child and a few more
    max_output_bytes: int = 4 << 20  # what is read back from one batch
    max_line_bytes: int = 64 << 10  # one verdict line from a function
    batch_size: int = 64  # functions per sandbox process


@dataclasses.dataclass(frozen=True)
class FunctionJob:
    """One generated function (source that defines `evaluate(response) -> bool`) and its test inputs."""

    code: str
    cases: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """verdict is None exactly when error says why (syntax_error, exception, timeout, crashed, ...)."""

    verdict: bool | None
    error: str | None = None


def _world_readable(path: Path) -> bool:
    """Whether an unprivileged uid can reach and read `path` (every parent searchable, file readable)."""
    path = path.resolve()
    for p in [*reversed(path.parents), path]:
        mode = p.stat().st_mode
        need = stat.S_IXOTH if p != path else stat.S_IROTH | stat.S_IXOTH
        if mode & need != need:
            return False
    return True


def _interpreter(drop_privileges: bool) -> tuple[str, str]:
    """(python executable, the prefix to bind read-only) that the sandbox can run."""
    own = Path(os.path.realpath(sys.executable))
    if not drop_privileges or _world_readable(own):
        return str(own), sys.base_prefix
    system = Path("/usr/bin/python3")
    if system.exists() and _world_readable(system):
        return str(system), "/usr"
    raise SandboxUnavailableError(
        f"no Python interpreter readable by the sandbox's unprivileged user: {own} is private and "
        f"/usr/bin/python3 is missing (install python3 from the system's packages)")


def _uid_process_count(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.stat(entry.path).st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


class Sandbox:
    """Runs FunctionJobs in bubblewrap (or, only when asked, unsandboxed), batch by batch."""

    def __init__(self, limits: SandboxLimits = SandboxLimits(), *, unsafe_no_sandbox: bool = False):
        self.limits = limits
        self.unsafe = unsafe_no_sandbox
        self.bwrap = shutil.which("bwrap")
        if not self.unsafe and self.bwrap is None:
            raise SandboxUnavailableError(
                f"bubblewrap (bwrap) is not installed, and generated code never runs unsandboxed: {INSTALL_HINT}, "
                "or pass --unsafe-no-sandbox to run it with rlimits only (not isolated; the report says so)")
        self.prlimit = shutil.which("prlimit")
        if self.prlimit is None:
            raise SandboxUnavailableError("prlimit (util-linux) is not installed; it sets the sandbox's resource limits")
        self.drop_privileges = os.getuid() == 0 and not self.unsafe
        self.python, self.python_prefix = _interpreter(self.drop_privileges)
        self.batches_run = 0
        self.isolated_reruns = 0
        if not self.unsafe:
            self._self_test()
            self.batches_run = 0  # count only the caller's batches

    @property
    def mode(self) -> str:
        return "unsafe-no-sandbox" if self.unsafe else "bubblewrap"

    def _command(self) -> list[str]:
        py = [self.python, "-I", "-S", "-B"]
        if self.unsafe:
            return [*py, str(RUNNER)]
        args = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
                "--setenv", "PATH", "/usr/bin", "--setenv", "LANG", "C.UTF-8",
                "--ro-bind", "/usr", "/usr"]
        for name in ("lib", "lib64", "bin"):
            target = Path("/usr") / name
            if target.exists() and Path(f"/{name}").is_symlink():
                args += ["--symlink", f"usr/{name}", f"/{name}"]
            elif Path(f"/{name}").is_dir():
                args += ["--ro-bind", f"/{name}", f"/{name}"]
        if not self.python_prefix.startswith("/usr"):
            args += ["--ro-bind", self.python_prefix, self.python_prefix]
        args += ["--ro-bind", str(RUNNER), SANDBOX_RUNNER_PATH, "--proc", "/proc", "--dev", "/dev",
                 "--tmpfs", "/tmp", "--chdir", "/tmp", "--cap-drop", "ALL"]
        return [*args, *py, SANDBOX_RUNNER_PATH]

    def _limits_prefix(self) -> list[str]:
        """util-linux's prlimit sets the rlimits and execs the rest, which inherits them. (A preexec_fn
        would do the same in a forked copy of this process, which is unsafe beside JAX's threads.)"""
        lim = self.limits
        # RLIMIT_NPROC counts every process of the uid, zombies included (an init that does not reap
        # leaves exited sandboxes behind), so the limit sits max_processes above what exists now
        uid = UNPRIVILEGED_UID if self.drop_privileges else os.getuid()
        nproc = _uid_process_count(uid) + lim.max_processes
        return [self.prlimit, f"--cpu={lim.cpu_seconds}", f"--as={lim.memory_bytes}", "--core=0",
                f"--fsize={lim.max_output_bytes}", f"--nproc={nproc}", "--"]

    def _self_test(self) -> None:
        ok = self._run_batch([FunctionJob("def evaluate(r):\n    return r == 'x'\n", ("x",))])
        if ok != {0: [CaseResult(True)]}:
            raise SandboxUnavailableError(
                f"bubblewrap is installed but could not run the sandbox here ({self._last_error or 'no output'}); "
                "it needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)")

    _last_error: str | None = None

    def _run_batch(self, jobs: Sequence[FunctionJob]) -> dict[int, list[CaseResult]]:
        """The jobs this batch finished, by index; a job missing from the result did not finish."""
        self.batches_run += 1
        lim = self.limits
        request = json.dumps({"jobs": [{"code": j.code, "cases": list(j.cases)} for j in jobs],
                              "seconds_per_function": lim.seconds_per_function,
                              "max_line_bytes": lim.max_line_bytes}).encode()
        # as root, the sandbox runs as an unprivileged uid (the process limit does not bind root);
        # Popen switches users itself, without running Python in the child
        as_user = dict(user=UNPRIVILEGED_UID, group=UNPRIVILEGED_UID, extra_groups=[]) if self.drop_privileges else {}
        proc = subprocess.Popen(self._limits_prefix() + self._command(), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={}, cwd="/", **as_user)
        deadline = time.monotonic() + lim.batch_seconds
        try:
            out, err = proc.communicate(request, timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        self._last_error = err.decode(errors="replace").strip().splitlines()[-1][:300] if err.strip() else None
        done: dict[int, list[CaseResult]] = {}
        for line in out[: lim.max_output_bytes].splitlines():
            try:
                rec = json.loads(line)
                i, results = int(rec["job"]), rec["results"]
            except (ValueError, KeyError, TypeError):
                break
            if 0 <= i < len(jobs) and len(results) == len(jobs[i].cases):
                done[i] = [CaseResult(v if isinstance(v, bool) else None, None if isinstance(v, bool) else str(e))
                           for v, e in results]
        return done

    def run(self, jobs: Sequence[FunctionJob]) -> list[list[CaseResult]]:
        """One list of CaseResults per job, in order. Never raises for anything a function does."""
        results: list[list[CaseResult] | None] = [None] * len(jobs)
        size = max(1, self.limits.batch_size)
        for start in range(0, len(jobs), size):
            batch = list(jobs[start:start + size])
            done = self._run_batch(batch)
            for i, r in done.items():
                results[start + i] = r
            # A batch that died (a function killed the runner, or the batch ran out of time) leaves
            # jobs unfinished: each runs again alone, so only the culprit loses its verdicts.
            for i in range(len(batch)):
                if results[start + i] is None:
                    self.isolated_reruns += 1
                    alone = self._run_batch([batch[i]]).get(0)
                    results[start + i] = alone or [CaseResult(None, "sandbox_crashed")] * len(batch[i].cases)
        return results  # type: ignore[return-value]
