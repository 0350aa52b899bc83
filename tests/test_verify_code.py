"""Code verifier: one literal case per verdict and compare rule, and adversarial
programs whose security property is asserted on the host afterwards."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from pathlib import Path

import psutil
import pytest

from datagen.verify._sandbox import SandboxPool
from datagen.verify.code import InvalidTestSpec, compare_stdout, extract_code, parse_tests, values_equal, verify_code

# One xdist worker runs this whole module, so its module-scoped pools and batch run once (CI: -n, loadgroup).
pytestmark = pytest.mark.xdist_group("sandbox-verify-code")

ADD = {"kind": "stdin_stdout", "time_limit_s": 0.5, "memory_limit_mb": 256,
       "cases": [{"input": "2 3\n", "output": "5\n"}]}
CALL = {"kind": "call", "fn_name": "add", "time_limit_s": 0.5, "memory_limit_mb": 256,
        "cases": [{"args": [2, 3], "expected": 5}]}


def solution(code: str) -> str:
    return f"<think>Let me write it.</think>\nHere it is:\n```python\n{code}\n```\n"


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(1)
    yield p
    p.close()


@pytest.fixture(scope="module")
def sandbox_uid(pool):
    with pool.zygote() as zygote:
        if zygote.isolation != "namespaces":
            pytest.skip("full isolation needs root (namespaces); CI runs as root")
        return zygote.uid


def run(code: str, tests=ADD, pool=None) -> dict:
    return verify_code(solution(code), tests, pool=pool)


def processes_of(uid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info["uids"]
        if uids and uid in (uids.real, uids.effective):
            found.append(proc)
    return found


# --------------------------------------------------------------------------- verdicts


def test_correct_stdin_stdout(pool):
    v = run("a, b = map(int, input().split())\nprint(a + b)", pool=pool)
    assert v == {"outcome": "correct", "score": 1.0, "detail": "passed 1/1 tests"}


def test_correct_call_function_and_solution_method(pool):
    assert run("def add(a, b):\n    return a + b", CALL, pool)["outcome"] == "correct"
    assert run("class Solution:\n    def add(self, a, b):\n        return a + b", CALL, pool)["outcome"] == "correct"


def test_incorrect_output(pool):
    v = run("print(6)", pool=pool)
    assert v["outcome"] == "incorrect" and v["score"] == 0.0
    assert v["detail"] == "test 1/1: line 1: expected '5', got '6'"


def test_incorrect_return_value(pool):
    v = run("def add(a, b):\n    return a - b", CALL, pool)
    assert v["outcome"] == "incorrect" and v["detail"] == "test 1/1: expected 5, got -1"


def test_stops_at_first_failure(pool):
    tests = dict(ADD, cases=[{"input": "1 1\n", "output": "2\n"}, {"input": "2 2\n", "output": "5\n"},
                             {"input": "3 3\n", "output": "6\n"}])
    v = run("a, b = map(int, input().split())\nprint(a + b)", tests, pool)
    assert v["outcome"] == "incorrect" and v["detail"].startswith("test 2/3:")


def test_timeout_cpu(pool):
    v = run("while True:\n    pass", pool=pool)
    # Under load the wall clock (2 * limit + 1 s) may fire before the CPU limit does.
    assert v["outcome"] == "timeout" and ("CPU time" in v["detail"] or "wall clock" in v["detail"])


def test_killed_by_the_cpu_limit_is_timeout_even_when_rusage_falls_short():
    from datagen.verify._sandbox import Execution
    from datagen.verify.code import _judge

    spec = parse_tests(ADD)
    # rusage is tick-accounted: SIGXCPU at the 1 s limit may report 0.98 s.
    ex = Execution(status="signaled", signal=24, cpu_s=0.98)
    assert _judge(ex, spec, spec.cases[0])[0] == "timeout"
    assert _judge(Execution(status="signaled", signal=11, cpu_s=0.1), spec, spec.cases[0])[0] == "runtime_error"


def test_a_program_starved_of_cpu_is_not_a_wall_clock_timeout(pool):
    # Wall budget 2 * 0.5 + 1 = 2 s; the program runs ~3.5 s of wall time but
    # only half of it on CPU: SIGSTOP/SIGCONT from a child ration it, as a
    # busy machine would. Its CPU time stays under the 1 s CPU rlimit.
    code = ("import os, signal, time\nparent = os.getpid()\nif os.fork() == 0:\n    for _ in range(35):\n"
            "        os.kill(parent, signal.SIGSTOP)\n        time.sleep(0.05)\n        os.kill(parent, signal.SIGCONT)\n"
            "        time.sleep(0.05)\n    os._exit(0)\nt = time.time()\nwhile time.time() - t < 3.5:\n    time.sleep(0.001)\n"
            "    sum(range(2000))\nos.wait()\nprint(5)")
    v = run(code, dict(ADD, time_limit_s=0.5), pool)
    assert v["outcome"] == "correct", v
    # A sleeper still stops at the wall budget.
    t = time.monotonic()
    assert run("import time\ntime.sleep(60)", dict(ADD, time_limit_s=0.5), pool)["outcome"] == "timeout"
    assert time.monotonic() - t < 5


def test_values_equal_survives_what_a_child_can_return():
    assert not values_equal(10 ** 400, 1e300, 1e-6)  # OverflowError before
    assert not values_equal(float("nan"), float("nan"), 1e-6)
    assert compare_stdout("1" * 400 + "\n", "1e300\n", float_tol=1e-6) is not None


def test_spec_with_non_finite_tolerance_is_refused():
    with pytest.raises(InvalidTestSpec, match="float_tol"):
        parse_tests(dict(ADD, float_tol=float("inf")))
    with pytest.raises(InvalidTestSpec, match="float_tol"):
        parse_tests(dict(ADD, float_tol=True))


def test_timeout_wall_clock(pool):
    v = run("import time\ntime.sleep(60)", pool=pool)
    assert v["outcome"] == "timeout" and "wall clock" in v["detail"]


def test_memory_2gb_allocation(pool):
    v = run("x = bytearray(2 * 1024 ** 3)\nprint(5)", pool=pool)
    assert v["outcome"] == "memory"


def test_runtime_error_exception(pool):
    v = run("print(5)\nraise ValueError('boom')", pool=pool)
    assert v["outcome"] == "runtime_error" and v["detail"] == "test 1/1: exit code 1: ValueError: boom"


def test_runtime_error_right_output_then_exit_1(pool):
    v = run("print(5)\nimport sys\nsys.exit(1)", pool=pool)
    assert v["outcome"] == "runtime_error" and v["detail"] == "test 1/1: exit code 1"


def test_runtime_error_syntax_error(pool):
    v = run("print(5)\nprint((", pool=pool)
    assert v["outcome"] == "runtime_error" and "SyntaxError" in v["detail"]


def test_unparseable_without_code_block(pool):
    v = verify_code("<think>hmm</think>The answer is print(5).", ADD, pool=pool)
    assert v == {"outcome": "unparseable", "score": 0.0, "detail": "no fenced code block after the reasoning"}


def test_unparseable_code_only_inside_reasoning(pool):
    v = verify_code("<think>```python\nprint(5)\n```</think>I am not sure.", ADD, pool=pool)
    assert v["outcome"] == "unparseable"


def test_unparseable_unclosed_think(pool):
    v = verify_code("<think>```python\nprint(5)\n```", ADD, pool=pool)
    assert v["outcome"] == "unparseable" and "never closed" in v["detail"]


def test_unparseable_other_language():
    code, why = extract_code("<think>x</think>```cpp\nint main(){}\n```")
    assert code is None and why == "last code block is 'cpp'; only Python is run"


def test_last_block_wins():
    code, _ = extract_code("<think>x</think>```python\nprint(1)\n```\nbetter:\n```python\nprint(2)\n```")
    assert code == "print(2)\n"


def test_error_bad_spec():
    v = verify_code(solution("print(5)"), "{not json")
    assert v["outcome"] == "error" and v["score"] is None and v["detail"].startswith("bad test spec: tests is not valid JSON")


def test_error_spec_without_cases():
    with pytest.raises(InvalidTestSpec, match="cases must be a non-empty list"):
        parse_tests({"kind": "stdin_stdout", "cases": []})


# --------------------------------------------------------------------------- compare rules


def test_compare_crlf_trailing_spaces_and_blank_lines():
    assert compare_stdout("5  \r\n6\r\n\r\n\n", "5\n6") is None


def test_compare_case_matters():
    assert compare_stdout("YES\n", "yes\n") == "line 1: expected 'yes', got 'YES'"


def test_compare_missing_line():
    assert compare_stdout("5\n", "5\n6\n") == "expected 2 lines, got 1"


def test_compare_float_tolerance_relative():
    assert compare_stdout("3.1416\n", "3.14159\n", float_tol=1e-4) is None
    assert compare_stdout("3.15\n", "3.14159\n", float_tol=1e-4) is not None
    assert compare_stdout("3.1416\n", "3.14159\n") is not None  # no tolerance: exact tokens


def test_values_equal_is_plain_data():
    assert values_equal([0, 1], [0, 1])
    assert not values_equal(True, 1)
    assert not values_equal(1, "1")
    assert values_equal(0.1 + 0.2, 0.3, 1e-9) and not values_equal(0.1 + 0.2, 0.3)


def test_float_tol_in_stdin_spec(pool):
    tests = dict(ADD, float_tol=1e-6, cases=[{"input": "", "output": "0.3\n"}])
    assert run("print(0.1 + 0.2)", tests, pool)["outcome"] == "correct"


# --------------------------------------------------------------------------- adversarial


def test_infinite_loop_leaves_nothing(pool, sandbox_uid):
    assert run("while True:\n    pass", pool=pool)["outcome"] == "timeout"
    assert processes_of(sandbox_uid) == []


def test_loop_ignoring_sigterm(pool, sandbox_uid):
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass"
    assert run(code, pool=pool)["outcome"] == "timeout"
    assert processes_of(sandbox_uid) == []


def test_fork_bomb(pool, sandbox_uid):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    v = run(code, pool=pool)
    assert v["outcome"] in ("timeout", "runtime_error")
    assert processes_of(sandbox_uid) == []
    assert run("print(5)", pool=pool)["outcome"] == "correct"  # the sandbox survives


def test_200mb_of_output(pool, sandbox_uid):
    code = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(200):\n    sys.stdout.write(chunk)"
    v = run(code, pool=pool)
    assert v["outcome"] == "runtime_error" and "output over the 16 MB cap" in v["detail"]
    assert processes_of(sandbox_uid) == []


def test_network_connect_is_blocked(pool, sandbox_uid):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        server.setblocking(False)
        port = server.getsockname()[1]
        code = ("import socket\ntry:\n"
                f"    socket.create_connection(('127.0.0.1', {port}), timeout=0.3)\n    print('connected')\n"
                "except OSError:\n    print('blocked')")
        assert run(code, dict(ADD, cases=[{"input": "", "output": "blocked\n"}]), pool)["outcome"] == "correct"
        with pytest.raises(BlockingIOError):
            server.accept()  # on the host: nobody connected


def test_dns_lookup_is_blocked(pool, sandbox_uid):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as resolver:  # a stand-in DNS server on the host
        resolver.bind(("127.0.0.1", 0))
        resolver.setblocking(False)
        port = resolver.getsockname()[1]
        code = ("import socket\nok = []\ntry:\n    socket.getaddrinfo('example.com', 80)\n    ok.append('dns')\n"
                "except OSError:\n    pass\ntry:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"    s.sendto(b'query', ('127.0.0.1', {port}))\n    ok.append('udp')\nexcept OSError:\n    pass\n"
                "print(ok or 'blocked')")
        assert run(code, dict(ADD, cases=[{"input": "", "output": "blocked\n"}]), pool)["outcome"] == "correct"
        with pytest.raises(BlockingIOError):
            resolver.recv(100)  # on the host: no query arrived


def test_write_to_etc_is_denied(pool, sandbox_uid):
    target = f"/etc/datagen-sandbox-{uuid.uuid4().hex}"
    hosts_before = hashlib.sha256(Path("/etc/hosts").read_bytes()).hexdigest()
    code = (f"for path, mode in (({target!r}, 'w'), ('/etc/hosts', 'a')):\n    try:\n"
            "        open(path, mode).write('pwned')\n        print('wrote')\n    except OSError:\n        print('denied')")
    v = run(code, dict(ADD, cases=[{"input": "", "output": "denied\ndenied\n"}]), pool)
    assert v["outcome"] == "correct", v
    assert not os.path.exists(target)
    assert hashlib.sha256(Path("/etc/hosts").read_bytes()).hexdigest() == hosts_before


def test_read_of_host_0600_file_in_tmp(pool, sandbox_uid, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the expected output\n")
    secret.chmod(0o600)
    os.chmod(tmp_path, 0o755)  # even with a traversable directory
    code = f"try:\n    print(open({str(secret)!r}).read())\nexcept OSError:\n    print('denied')"
    v = run(code, dict(ADD, cases=[{"input": "", "output": "denied\n"}]), pool)
    assert v["outcome"] == "correct", v
    assert secret.read_text() == "the expected output\n" and (secret.stat().st_mode & 0o777) == 0o600


def test_host_root_only_files_unreadable(pool, sandbox_uid):
    if not os.path.exists("/etc/shadow"):
        pytest.skip("no /etc/shadow here")
    code = "try:\n    open('/etc/shadow').read()\n    print('read')\nexcept OSError:\n    print('denied')"
    assert run(code, dict(ADD, cases=[{"input": "", "output": "denied\n"}]), pool)["outcome"] == "correct"


def test_setsid_background_process_is_killed(pool, sandbox_uid):
    marker = f"{uuid.uuid4().int % 10 ** 6}.{os.getpid()}"  # a unique sleep length to find it by
    # The interpreter is the one executable the minimal root holds.
    code = ("import os, sys\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep({marker})'])\n"
            "    os._exit(0)\nimport time\ntime.sleep(0.3)\n"
            # prints 5 only if the detached sleeper is really running
            "alive = [p for p in os.listdir('/proc') if p.isdigit() and "
            f"{marker!r} in open(f'/proc/{{p}}/cmdline').read()]\nprint(5 if alive else 'no sleeper')")
    assert run(code, pool=pool)["outcome"] == "correct"
    assert processes_of(sandbox_uid) == []
    left = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
    assert left == []


def test_killing_the_parent_process(pool, sandbox_uid):
    with pool.zygote() as zygote:
        zygote_pid = zygote.proc.pid
    code = ("import os, signal\nfor pid in (os.getppid(), 1, -1):\n    try:\n        os.kill(pid, signal.SIGKILL)\n"
            "    except OSError:\n        pass\nprint(5)")
    v = run(code, pool=pool)
    # The parent (init, root) and the zygote (outside the PID namespace) are out of
    # reach; kill(-1) spares the caller. The program goes on and passes.
    assert v["outcome"] == "correct", v
    assert psutil.pid_exists(zygote_pid) and psutil.Process(zygote_pid).status() != psutil.STATUS_ZOMBIE
    assert processes_of(sandbox_uid) == []
    assert run("print(5)", pool=pool)["outcome"] == "correct"


def test_eq_always_true_object_is_not_a_pass(pool):
    code = ("class Anything:\n    def __eq__(self, other):\n        return True\n"
            "def add(a, b):\n    return Anything()")
    v = run(code, CALL, pool)
    assert v["outcome"] == "incorrect" and "not JSON data" in v["detail"]


def test_subclass_with_eq_always_true_is_compared_as_data(pool):
    code = "class Liar(int):\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Liar(7)"
    v = run(code, CALL, pool)
    assert v["outcome"] == "incorrect" and v["detail"] == "test 1/1: expected 5, got 7"


def test_expected_output_never_enters_the_sandbox(pool):
    # The candidate searches everything it can see for the expected output.
    tests = dict(ADD, cases=[{"input": "", "output": "needle-31337\n"}])
    code = ("import os\nneedle = b'needle-' + str(31337).encode()\nhits = []\nfor root in ('/tmp', '/proc/self', '.'):\n"
            "    for d, _, files in os.walk(root):\n        for f in files:\n            try:\n"
            "                if b'needle-31337' in open(os.path.join(d, f), 'rb').read(1 << 20):\n"
            "                    hits.append(f)\n            except OSError:\n                pass\n"
            "print(hits[0] if hits else 'nothing')")
    v = run(code, tests, pool)
    assert v["outcome"] == "incorrect" and v["detail"].endswith("got 'nothing'")


def test_batch_preserves_order():
    from datagen.verify.code import verify_code_batch

    completions = [solution("print(5)"), solution("print(6)"), "no code"]
    verdicts = verify_code_batch(completions, [json.dumps(ADD)] * 3, workers=2)
    assert [v["outcome"] for v in verdicts] == ["correct", "incorrect", "unparseable"]


def test_a_zygote_killed_while_idle_is_replaced():
    from datagen.verify._sandbox import SandboxPool
    from datagen.verify.code import verify_code

    pool = SandboxPool(1)
    try:
        tests = {"kind": "stdin_stdout", "cases": [{"input": "", "output": "1\n"}]}
        assert verify_code("```python\nprint(1)\n```", tests, pool=pool)["outcome"] == "correct"
        [zyg] = pool._all
        zyg.proc.kill()
        zyg.proc.wait()
        assert verify_code("```python\nprint(1)\n```", tests, pool=pool)["outcome"] == "correct"
        assert pool._all and pool._all[0] is not zyg
    finally:
        pool.close()
