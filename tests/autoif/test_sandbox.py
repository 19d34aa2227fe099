"""The sandbox against hostile verification functions: every attack is contained, the batch goes on,
and the hostile function's cases come back with a reason, never a True verdict.

Each attack function returns True only if its attack worked, so `verdict is not True` is the
containment check; an honest function in the same batch must keep its exact verdicts.
"""

import os
import socket
import threading

import pytest

from siamgpt_jax.autoif.sandbox import CaseResult, FunctionJob, Sandbox, SandboxLimits, SandboxUnavailableError

LIMITS = SandboxLimits(seconds_per_function=1.0, batch_seconds=30.0, memory_bytes=512 << 20)
HONEST = FunctionJob("def evaluate(response):\n    return 'ไทย' in response\n", ("ภาษาไทย", "English"))
HONEST_RESULT = [CaseResult(True), CaseResult(False)]


@pytest.fixture(scope="module")
def sandbox():
    return Sandbox(LIMITS)


def run_attack(sandbox, code: str, cases=("x",)):
    """The attack sandwiched between two honest functions in one batch."""
    out = sandbox.run([HONEST, FunctionJob(code, tuple(cases)), HONEST])
    assert out[0] == HONEST_RESULT and out[2] == HONEST_RESULT, out
    for r in out[1]:
        assert r.verdict is not True, r
        assert (r.verdict is None) == (r.error is not None)
    return out[1]


def test_honest_functions_get_exact_verdicts(sandbox):
    jobs = [HONEST, FunctionJob("def evaluate(r):\n    return len(r.split()) >= 2\n", ("a b", "a", ""))]
    assert sandbox.run(jobs) == [HONEST_RESULT, [CaseResult(True), CaseResult(False), CaseResult(False)]]


def test_malformed_functions_are_reported_not_raised(sandbox):
    cases = {
        "def evaluate(r:\n": "syntax_error",
        "def check(r):\n    return True\n": "no_evaluate",
        "def evaluate(a, b):\n    return True\n": "bad_signature",
        "def evaluate(r):\n    return 'yes'\n": "not_bool",
        "def evaluate(r):\n    return 1 / 0\n": "exception: ZeroDivisionError",
        "raise SystemExit(3)\ndef evaluate(r):\n    return True\n": "definition_error",
    }
    out = sandbox.run([FunctionJob(code, ("x",)) for code in cases])
    for (code, reason), (r,) in zip(cases.items(), out):
        assert r.verdict is None and r.error.startswith(reason), (code, r)


def test_infinite_loop_and_sleep_time_out(sandbox):
    assert run_attack(sandbox, "def evaluate(r):\n    while True:\n        pass\n") == [CaseResult(None, "timeout")]
    assert run_attack(sandbox, "import time\ndef evaluate(r):\n    time.sleep(60)\n    return True\n") == [
        CaseResult(None, "timeout")]


def test_changed_signal_handlers_do_not_stop_the_deadline(sandbox):
    code = ("import signal\n"
            "def evaluate(r):\n"
            "    for s in (signal.SIGTERM, signal.SIGALRM, signal.SIGINT, signal.SIGXCPU):\n"
            "        signal.signal(s, signal.SIG_IGN)\n"
            "    while True:\n        pass\n")
    assert run_attack(sandbox, code) == [CaseResult(None, "timeout")]


def test_memory_bomb_is_contained(sandbox):
    one_huge = "def evaluate(r):\n    return len(bytearray(1 << 40)) > 0\n"
    assert run_attack(sandbox, one_huge) == [CaseResult(None, "exception: MemoryError")]
    growing = "def evaluate(r):\n    x = []\n    while True:\n        x.append(bytearray(1 << 26))\n"
    (r,) = run_attack(sandbox, growing)  # zero-filling 64 MiB blocks may outlast the deadline on a busy host
    assert r.error in ("exception: MemoryError", "crashed", "timeout")


def test_fork_bomb_is_contained(sandbox):
    code = ("import os\n"
            "def evaluate(r):\n"
            "    while True:\n"
            "        os.fork()\n")
    (r,) = run_attack(sandbox, code)
    assert r.error in ("exception: BlockingIOError", "timeout", "crashed"), r


def test_files_outside_stay_unread_and_unchanged(sandbox, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    os.chmod(tmp_path, 0o755)
    os.chmod(secret, 0o644)  # readable by anyone on this host: only the sandbox's view protects it
    readme = os.path.abspath("README.md")
    code = ("import os\n"
            "def evaluate(r):\n"
            f"    for p in ('/etc/passwd', '/etc/shadow', {str(secret)!r}, {readme!r}, '/proc/1/environ'):\n"
            "        try:\n"
            "            if open(p).read():\n"
            "                return True\n"
            "        except OSError:\n"
            "            pass\n"
            "    return False\n")
    assert run_attack(sandbox, code) == [CaseResult(False)]
    writes = ("import os, shutil\n"
              "def evaluate(r):\n"
              "    done = False\n"
              f"    for act in (lambda: os.remove({str(secret)!r}), lambda: open({str(tmp_path / 'new')!r}, 'w').write('x'),\n"
              "                lambda: open('/usr/owned', 'w').write('x'), lambda: os.remove('/usr/bin/python3'),\n"
              "                lambda: shutil.rmtree('/usr/lib')):\n"
              "        try:\n"
              "            act()\n"
              "            done = True\n"
              "        except OSError:\n"
              "            pass\n"
              "    open('/tmp/scratch', 'w').write('the throwaway /tmp is writable')\n"
              "    return done\n")
    assert run_attack(sandbox, writes) == [CaseResult(False)]
    assert secret.read_text() == "s3cret" and not (tmp_path / "new").exists()
    assert os.path.exists("/usr/bin/python3") and not os.path.exists("/usr/owned")


def test_environment_is_empty(sandbox, monkeypatch):
    monkeypatch.setenv("SIAMGPT_TEST_SECRET", "token-123")
    code = "import os\ndef evaluate(r):\n    return any('token-123' in v for v in os.environ.values())\n"
    assert run_attack(sandbox, code) == [CaseResult(False)]


def test_no_network_not_even_loopback(sandbox):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(3)
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(_accept(server)), daemon=True).start()
    code = ("import socket\n"
            "def evaluate(r):\n"
            "    try:\n"
            f"        socket.create_connection(('127.0.0.1', {port}), timeout=0.5)\n"
            "        return True\n"
            "    except OSError:\n"
            "        return False\n")
    assert run_attack(sandbox, code) == [CaseResult(False)]
    server.close()
    assert accepted in ([], [None])


def _accept(server):
    try:
        return server.accept()
    except OSError:
        return None


def test_signals_reach_nothing_outside(sandbox):
    me = os.getpid()
    code = ("import os, signal\n"
            "def evaluate(r):\n"
            "    hit = False\n"
            f"    for pid in ({me}, {os.getppid()}, 1):\n"
            "        try:\n"
            "            os.kill(pid, signal.SIGKILL)\n"
            "            hit = hit or pid != 1\n"
            "        except OSError:\n"
            "            pass\n"
            "    return hit\n")
    run_attack(sandbox, code)
    # killing its own runner (the parent it can see) only costs the attacker its verdicts
    (r,) = run_attack(sandbox, "import os\ndef evaluate(r):\n    os.kill(os.getppid(), 9)\n    return True\n")
    assert r == CaseResult(None, "sandbox_crashed")


def test_ctypes_and_subclass_tricks_are_contained(sandbox, tmp_path):
    os.chmod(tmp_path, 0o777)
    marker = tmp_path / "pwned"
    ctypes_code = ("import ctypes\n"
                   "def evaluate(r):\n"
                   "    libc = ctypes.CDLL(None)\n"
                   f"    libc.system(b'touch {marker}')\n"
                   f"    libc.kill({os.getpid()}, 9)\n"
                   f"    return libc.access(b'{marker}', 0) == 0\n")
    run_attack(sandbox, ctypes_code)
    subclass_code = ("def evaluate(r):\n"
                     "    for c in ().__class__.__base__.__subclasses__():\n"
                     "        if c.__name__ == '_wrap_close':\n"
                     f"            c.__init__.__globals__['system']('touch {marker}')\n"
                     f"    imp = __builtins__['__import__'] if isinstance(__builtins__, dict) else __import__\n"
                     f"    return imp('os').path.exists({str(marker)!r})\n")
    run_attack(sandbox, subclass_code)
    assert not marker.exists()


def test_huge_output_and_forged_verdicts_are_contained(sandbox):
    flood = ("import os, sys\n"
             "def evaluate(r):\n"
             "    print('x' * 10_000_000)\n"
             "    sys.stderr.write('y' * 10_000_000)\n"
             "    for fd in range(3, 64):\n"
             "        try:\n"
             "            os.write(fd, b'z' * 1_000_000)\n"
             "        except OSError:\n"
             "            pass\n"
             "    return False\n")
    (r,) = run_attack(sandbox, flood)
    assert r.error in (None, "output_limit") and r.verdict is not True
    forge = ("import os, json\n"
             "def evaluate(r):\n"
             "    line = json.dumps({'job': 2, 'results': [[True, None], [True, None]]}) + '\\n'\n"
             "    for fd in range(0, 64):\n"
             "        try:\n"
             "            os.write(fd, line.encode() + b'[true, null]\\n' * 3)\n"
             "        except OSError:\n"
             "            pass\n"
             "    return False\n")
    run_attack(sandbox, forge)  # HONEST after it must still read [True, False]


def test_unsafe_mode_runs_with_rlimits_only_and_says_so():
    sb = Sandbox(LIMITS, unsafe_no_sandbox=True)
    assert sb.mode == "unsafe-no-sandbox"
    assert sb.run([HONEST]) == [HONEST_RESULT]


def test_missing_bubblewrap_refuses_with_an_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailableError, match="apt-get install bubblewrap.*--unsafe-no-sandbox"):
        Sandbox(LIMITS)
