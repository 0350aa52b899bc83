"""The code sandbox's properties (issue 11), each asserted on the host after the run,
each with a positive control showing the probe would have seen what it looks for.

Runs as root in CI (namespaces, pivot_root, memory cgroup, seccomp); where a
layer is missing here the tests that need it skip and say which.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from datagen.verify._sandbox import SandboxPool
from datagen.verify.code import verify_code, verify_code_batch

# One xdist worker runs this whole module, so its module-scoped pools and batch run once (CI: -n, loadgroup).
pytestmark = pytest.mark.xdist_group("sandbox-isolation")

REPO = Path(__file__).resolve().parents[1]


def solution(code: str) -> str:
    return f"<think>Let me write it.</think>\n```python\n{code}\n```\n"


def stdout_is(expected: str, time_limit_s: float = 2, memory_limit_mb: int = 256, stdin: str = "") -> dict:
    return {"kind": "stdin_stdout", "time_limit_s": time_limit_s, "memory_limit_mb": memory_limit_mb,
            "cases": [{"input": stdin, "output": expected}]}


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(1)
    yield p
    p.close()


@pytest.fixture(scope="module")
def layers(pool):
    got = pool.layers
    if pool.isolation != "namespaces":
        pytest.skip("full isolation needs root; CI runs as root")
    return got


def need(layers: dict, layer: str) -> None:
    if not layers.get(layer):
        pytest.skip(f"sandbox layer {layer!r} is not available on this machine")


def processes_of(uid: int) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and uid in (p.info["uids"].real,
                                                                                    p.info["uids"].effective)]


def on_host(code: str, env: dict | None = None, stdin: str = "") -> str:
    """The same probe, unsandboxed (the positive control)."""
    out = subprocess.run([sys.executable, "-I", "-c", code], input=stdin, capture_output=True, text=True,
                         timeout=60, check=True, env=env)
    return out.stdout


# --------------------------------------------------------------------------- filesystem


PLANT_PROBE = """
import os
targets = {targets!r}
marker = {marker!r}
found = []
for path in targets:
    try:
        found.append(open(path).read().strip())
    except OSError:
        pass
for root in ('/', {extra!r}):
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if os.path.join(d, x) not in ('/proc', '/sys')]
        if any(marker in f for f in files):
            found.append('listed:' + d)
print(found or 'unreachable')
"""


def test_files_planted_in_checkout_and_home_are_unreachable(pool, layers):
    need(layers, "root")
    marker = f"dg-planted-{uuid.uuid4().hex}"
    planted = [REPO / f".{marker}.jsonl", Path("/home") / f"{marker}.jsonl"]
    for path in planted:
        path.write_text('{"input": "", "output": "the expected output"}\n')
        path.chmod(0o644)
    try:
        probe = PLANT_PROBE.format(targets=[str(p) for p in planted], marker=marker, extra=str(REPO))
        v = verify_code(solution(probe), stdout_is("unreachable\n", time_limit_s=5), pool=pool)
        assert v["outcome"] == "correct", v
        # Positive control: unsandboxed, the same probe finds both files.
        assert "the expected output" in on_host(probe)
        for path in planted:  # the files were there, readable, all along
            assert path.read_text().startswith('{"input"') and (path.stat().st_mode & 0o777) == 0o644
    finally:
        for path in planted:
            path.unlink(missing_ok=True)


def test_minimal_root_holds_only_interpreter_stdlib_and_private_dirs(pool, layers):
    need(layers, "root")
    code = ("import os\nprint(sorted(os.listdir('/')))\nprint(os.getcwd(), os.listdir('.'), os.listdir('/tmp'))\n"
            "print([p for p in ('/work', '/home', '/root/.ssh', '/data', '/run', '/etc/hostname', '/bin/sh')"
            " if os.path.exists(p)])\nopen('scratch', 'w').write('x')\nopen('/tmp/t', 'w').write('y')\n"
            "try:\n    open('/usr/lib/dg-write-probe', 'w')\nexcept OSError as e:\n    print(type(e).__name__)")
    with pool.zygote() as zygote:
        ex = zygote.run({"code": code, "stdin": "", "mode": "stdin", "cpu_limit_s": 2, "wall_limit_s": 5,
                         "memory_limit_mb": 256, "output_limit_bytes": 1 << 20, "nproc": 64, "tmpfs_mb": 16})
    lines = ex.stdout.decode().splitlines()
    assert ex.exit_code == 0, ex
    assert set(eval(lines[0])) <= {"dev", "etc", "lib", "lib64", "lib32", "libx32", "proc", "root", "sandbox", "tmp",
                                   "usr"}, lines[0]
    assert lines[1] == "/sandbox [] []"  # its own empty working directory and an empty private /tmp
    assert lines[2] == "[]"
    assert lines[3] in ("OSError", "PermissionError")  # read-only
    # Only the interpreter's own tree under /root (pyenv), and no site-packages.
    code = ("import os, sys\nfound = []\nfor d, dirs, files in os.walk('/root'):\n    found += [os.path.join(d, f) for f in files]\n"
            "print(all(p.startswith(sys.base_prefix) for p in found), any('site-packages/' in p for p in found))")
    v = verify_code(solution(code), stdout_is("True False\n"), pool=pool)
    assert v["outcome"] == "correct", v


# --------------------------------------------------------------------------- secrets


SECRET_PROBE = r"""
import os, re
PIDS = [p for p in os.listdir('/proc') if p.isdigit()] + ['self']
pattern = re.compile(rb'dgs3cr3t[0-9a-f]{32}')
hits = set()
def scan(data, where):
    for m in pattern.finditer(data):
        hits.add((where, m.group().decode()))
scan('\n'.join(f'{k}={v}' for k, v in os.environ.items()).encode(), 'os.environ')
for pid in PIDS:
    for name in ('environ', 'cmdline'):
        try:
            scan(open(f'/proc/{pid}/{name}', 'rb').read(), f'/proc/{pid}/{name}')
        except OSError:
            pass
    try:  # the process's whole readable memory, the initial environment block included
        stat = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
        env_start, env_end = int(stat[-3]), int(stat[-2])
        mem = open(f'/proc/{pid}/mem', 'rb', buffering=0)
        mem.seek(env_start)
        scan(mem.read(env_end - env_start), f'/proc/{pid}/stat env block')
        for line in open(f'/proc/{pid}/maps'):
            span, perms = line.split()[:2]
            if perms[0] != 'r' or '[vvar' in line or '[vsyscall' in line:
                continue
            lo, hi = (int(x, 16) for x in span.split('-'))
            try:
                mem.seek(lo)
                scan(mem.read(hi - lo), f'/proc/{pid}/mem')
            except (OSError, OverflowError, ValueError):
                pass
    except (OSError, IndexError, ValueError):
        pass
print(sorted(hits) or 'clean')
"""


def test_secret_in_the_verifiers_environment_is_nowhere_in_reach(layers, monkeypatch):
    need(layers, "root")
    value = "dgs3cr3t" + secrets.token_hex(16)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", value)
    monkeypatch.setenv("HF_TOKEN", value)
    fresh = SandboxPool(1)  # zygotes started while the secret is in our environment
    try:
        # Positive control 1: unsandboxed, the probe finds it in the environment and memory.
        # (Itself only: as root on the host it could read every process's memory.)
        assert value in on_host(SECRET_PROBE.replace("PIDS = [", "PIDS = ['self'] or ["), env=dict(os.environ))
        # Positive control 2: sandboxed, the probe finds what IS in its memory (its stdin).
        got = fresh.layers
        assert got["environment"] == "empty"
        v = verify_code(solution("import sys\ndata = sys.stdin.read()\n" + SECRET_PROBE),
                        stdout_is("clean\n", time_limit_s=10, stdin=value + "\n"), pool=fresh)
        assert v["outcome"] == "incorrect" and "dgs3cr3t" in v["detail"], v
        # The property: nothing of it in environ, /proc/*/environ, /proc/1, env blocks, memory.
        v = verify_code(solution(SECRET_PROBE), stdout_is("clean\n", time_limit_s=10), pool=fresh)
        assert v["outcome"] == "correct", v
        # And a program that raises with whatever it found puts nothing of it in the detail.
        leak = SECRET_PROBE.replace("print(sorted(hits) or 'clean')", "raise SystemExit(str(sorted(hits)))")
        v = verify_code(solution(leak), stdout_is("x\n", time_limit_s=10), pool=fresh)
        assert value not in json.dumps(v) and v["outcome"] == "runtime_error", v
    finally:
        fresh.close()


# --------------------------------------------------------------------------- exit status and output


def test_right_output_then_crash_with_patched_exit_is_runtime_error(pool):
    code = ("import os, sys\nprint(5)\nreal = os._exit\nos._exit = lambda code: real(0)\nsys.exit = lambda *a: real(0)\n"
            "raise RuntimeError('crash after the output')")
    v = verify_code(solution(code), stdout_is("5\n"), pool=pool)
    assert v["outcome"] == "runtime_error" and "RuntimeError" in v["detail"], v
    # Control: the same program without the crash passes.
    v = verify_code(solution("import os\nprint(5, flush=True)\nos._exit(0)"), stdout_is("5\n"), pool=pool)
    assert v["outcome"] == "correct", v


def test_output_of_non_daemon_threads_is_kept(pool):
    code = ("import threading, time\ndef late():\n    time.sleep(0.3)\n    print(5)\n"
            "threading.Thread(target=late).start()")
    assert verify_code(solution(code), stdout_is("5\n"), pool=pool)["outcome"] == "correct"


def test_sixteen_threads_pass(pool):
    code = ("from concurrent.futures import ThreadPoolExecutor\nimport sys\nn = int(sys.stdin.readline())\n"
            "with ThreadPoolExecutor(16) as ex:\n    total = sum(ex.map(lambda i: sum(range(i * 1000)), range(n)))\n"
            "print(total)")
    expected = sum(sum(range(i * 1000)) for i in range(64))
    v = verify_code(solution(code), stdout_is(f"{expected}\n", memory_limit_mb=512, stdin="64\n"), pool=pool)
    assert v["outcome"] == "correct", v


def test_children_add_up_under_the_memory_cap(pool, layers):
    need(layers, "cgroup")
    code = ("import os, time\nkids = []\nfor _ in range(8):\n    pid = os.fork()\n    if pid == 0:\n"
            "        block = bytearray(b'x') * (200 << 20)\n        time.sleep(1.5)\n        os._exit(0)\n"
            "    kids.append(pid)\nfor pid in kids:\n    os.waitpid(pid, 0)\nprint(5)")
    v = verify_code(solution(code), stdout_is("5\n", time_limit_s=3, memory_limit_mb=512), pool=pool)
    assert v["outcome"] == "memory", v
    with pool.zygote() as zygote:
        assert processes_of(zygote.uid) == []
    # Control: 2 children x 200 MB fit under the same cap.
    v = verify_code(solution(code.replace("range(8)", "range(2)")), stdout_is("5\n", time_limit_s=3,
                                                                             memory_limit_mb=512), pool=pool)
    assert v["outcome"] == "correct", v


def test_spinner_is_timeout_even_under_load(pool):
    spinner = solution("while True:\n    pass")
    assert verify_code(spinner, stdout_is("5\n", time_limit_s=1), pool=pool)["outcome"] == "timeout"
    hogs = [subprocess.Popen([sys.executable, "-c", "import time\nt = time.time() + 20\nwhile time.time() < t: pass"])
            for _ in range(3)]
    try:
        verdicts = verify_code_batch([spinner] * 2, [stdout_is("5\n", time_limit_s=1)] * 2, workers=2)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert [v["outcome"] for v in verdicts] == ["timeout", "timeout"], verdicts


# --------------------------------------------------------------------------- syscall filter


SYSCALL_PROBE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(ret):
    return 'ok' if ret == 0 else os.strerror(ctypes.get_errno()) if ret == -1 else 'ok'
results = []
for flag in (0x10000000, 0x00020000, 0x40000000, 0x20000000):  # user, mount, net, pid namespaces
    results.append(errno_of(libc.unshare(flag)))
results.append(errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)))
results.append(errno_of(libc.ptrace(0, 0, None, None)))  # PTRACE_TRACEME
results.append(errno_of(libc.syscall(313, -1, b'', 0)))  # finit_module
results.append(errno_of(libc.syscall(425, 1, None)))  # io_uring_setup
print(' '.join(r.replace(' ', '_') for r in results))
"""


def test_syscall_filter_blocks_namespaces_mounts_ptrace_modules(pool, layers):
    need(layers, "seccomp")
    if os.uname().machine != "x86_64":
        pytest.skip("the probe uses x86_64 syscall numbers")
    denied = " ".join(["Operation_not_permitted"] * 8)
    v = verify_code(solution(SYSCALL_PROBE), stdout_is(denied + "\n"), pool=pool)
    assert v["outcome"] == "correct", v
    # Control: outside the sandbox (as root here) a user namespace is created.
    control = on_host("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                      "pid = os.fork()\nif pid == 0:\n    os._exit(0 if libc.unshare(0x10000000) == 0 else 1)\n"
                      "print(os.waitpid(pid, 0)[1])")
    assert control.strip() == "0"


def test_unshare_via_clone_flags_is_blocked_too(pool, layers):
    need(layers, "seccomp")
    code = ("import ctypes, os, signal\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "stack = ctypes.create_string_buffer(1 << 16)\nCB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)\n"
            "fn = CB(lambda _: 0)\ntop = ctypes.c_void_p(ctypes.addressof(stack) + (1 << 16))\n"
            "pid = libc.clone(fn, top, 0x10000000 | signal.SIGCHLD, None)\n"
            "print('blocked' if pid == -1 else 'cloned')\nif pid > 0:\n    os.waitpid(pid, 0)")
    v = verify_code(solution(code), stdout_is("blocked\n"), pool=pool)
    assert v["outcome"] == "correct", v


# --------------------------------------------------------------------------- one sample never stops a run


DEEP_RESULT = ("import os\ndef add(a, b):\n    os.ftruncate(3, 0)\n    os.pwrite(3, b'{\"value\": ' + b'[' * 200000 + b']' * 200000 + b'}', 0)\n"
               "    os._exit(0)")
HUGE_INT = "def add(a, b):\n    return 10 ** 400"
BAD_UTF8_RESULT = ("import os\ndef add(a, b):\n    os.ftruncate(3, 0)\n    os.pwrite(3, b'{\"value\": \"\\xff\\xfe\"}', 0)\n"
                   "    os._exit(0)")
BAD_UTF8_STDOUT = "import os\nos.write(1, b'\\xff\\xfe5\\n')"
WRONG_TYPE_RESULT = ("import os\ndef add(a, b):\n    os.ftruncate(3, 0)\n    os.pwrite(3, b'[1, 2, 3]', 0)\n    os._exit(0)")
CALL_FLOAT = json.dumps({"kind": "call", "fn_name": "add", "time_limit_s": 2, "float_tol": 1e-6,
                         "cases": [{"args": [1, 2], "expected": 3.0}]})
STDIN_FIVE = json.dumps(stdout_is("5\n"))
GOOD = solution("def add(a, b):\n    return a + b")


def test_hostile_samples_get_typed_outcomes_and_the_batch_goes_on():
    completions = [GOOD, solution(DEEP_RESULT), solution(HUGE_INT), solution(BAD_UTF8_RESULT),
                   solution(BAD_UTF8_STDOUT), solution(WRONG_TYPE_RESULT), 12345, GOOD, GOOD, GOOD]
    tests = [CALL_FLOAT] * 6 + [CALL_FLOAT, "[" * 100000, {"kind": "call", "fn_name": "add", "float_tol": "x",
                                                            "cases": [{"args": [], "expected": 1}]},
                                  json.dumps({"kind": "call", "fn_name": "add", "float_tol": 1e-6, "cases": [
                                      {"args": [10 ** 400, 1], "expected": 1e300}]})]
    tests[4] = STDIN_FIVE
    verdicts = verify_code_batch(completions, tests, workers=2)
    got = [(v["outcome"], v["detail"]) for v in verdicts]
    assert got[0] == ("correct", "passed 1/1 tests")
    assert got[1] == ("incorrect", "test 1/1: return value unreadable: nested too deeply to decode")
    assert got[2][0] == "incorrect" and got[2][1].startswith("test 1/1: expected 3.0, got 1000000")  # no OverflowError
    assert got[3] == ("incorrect", "test 1/1: return value unreadable: malformed (UnicodeDecodeError)")
    assert got[4][0] == "incorrect" and "\ufffd" in got[4][1]
    assert got[5] == ("incorrect", "test 1/1: return value unreadable: a JSON list, not an object")
    assert got[6] == ("unparseable", "completion is a int, not text")
    assert got[7] == ("error", "bad test spec: tests is nested too deeply to parse")
    assert got[8][0] == "error" and "float_tol" in got[8][1]
    assert got[9][0] == "incorrect"  # 10**400 + 1 against 1e300 within float_tol: no OverflowError


def test_datagen_verify_writes_every_row_despite_hostile_samples(tmp_path):
    rows = [{"problem_id": f"p{i}", "sample_id": f"p{i}:0", "source": "t", "domain": "code", "language": "en",
             "prompt": "add", "completion": c, "tests": t}
            for i, (c, t) in enumerate([(GOOD, CALL_FLOAT), (solution(DEEP_RESULT), CALL_FLOAT),
                                        (solution(HUGE_INT), CALL_FLOAT), (solution(BAD_UTF8_STDOUT), STDIN_FIVE),
                                        (GOOD, CALL_FLOAT)])]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli = "import sys\nfrom datagen.cli.main import main\nsys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", cli, "verify", str(src), "--verifier", "code", "--output",
                           str(out), "--no-progress"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = [json.loads(line)["verdicts"]["code"]["outcome"] for line in out.read_text().splitlines()]
    assert got == ["correct", "incorrect", "incorrect", "incorrect", "correct"]


def test_no_layer_is_silently_missing(pool):
    with pool.zygote() as zygote:
        layers, degraded = zygote.layers, zygote.degraded
    missing = [name for name, value in layers.items() if not value]
    # Every missing layer is named in `degraded` (logged once, and in each verdict's detail).
    assert len(degraded) >= len(missing)
    v = verify_code(GOOD, CALL_FLOAT, pool=pool)
    assert ("[sandbox degraded:" in v["detail"]) == bool(degraded)
    if os.geteuid() == 0 and Path("/sys/fs/cgroup").exists():
        assert degraded == [], degraded  # CI: the full sandbox


BASIC_PROBE = """
import json, os, sys
from datagen.verify._sandbox import SandboxPool
from datagen.verify.code import verify_code
pool = SandboxPool(1)
tests = {"kind": "stdin_stdout", "time_limit_s": 1, "cases": [{"input": "2 3\\n", "output": "5\\n"}]}
out = [pool.isolation]
for code in ("a, b = map(int, input().split())\\nprint(a + b)", "import os\\nprint(5)\\nos._exit = lambda c: None\\nraise ValueError",
             "while True:\\n    pass"):
    out.append(verify_code("```python\\n" + code + "\\n```", tests, pool=pool))
pool.close()
print(json.dumps(out))
"""


def test_without_root_it_degrades_and_says_so():
    # A user namespace without a uid mapping: euid is not 0, as for a non-root user.
    try:
        proc = subprocess.run(["unshare", "--user", sys.executable, "-c", BASIC_PROBE], capture_output=True,
                              text=True, timeout=120, check=False, cwd=REPO)
    except FileNotFoundError:
        pytest.skip("no unshare(1) here")
    if proc.returncode != 0 and "unshare failed" in proc.stderr:
        pytest.skip("user namespaces are not available here")
    assert proc.returncode == 0, proc.stderr[-2000:]
    isolation, *verdicts = json.loads(proc.stdout)
    assert isolation == "basic"
    assert [v["outcome"] for v in verdicts] == ["correct", "runtime_error", "timeout"], verdicts
    assert all("[sandbox degraded: namespaces, minimal root" in v["detail"] for v in verdicts), verdicts
    assert "code sandbox degraded: namespaces: not running as root" in proc.stderr  # logged


def test_memory_cgroup_is_removed_with_its_zygote(layers):
    need(layers, "cgroup")
    p = SandboxPool(1)
    with p.zygote() as zygote:
        path = zygote.cgroup_path
    assert path and os.path.isdir(path)
    p.close()
    deadline = time.time() + 5
    while os.path.isdir(path) and time.time() < deadline:
        time.sleep(0.05)
    assert not os.path.isdir(path)


def test_ctypes_is_available_to_programs(pool):
    # ctypes (and libffi from the system library directories) must load in the minimal root.
    v = verify_code(solution("import ctypes\nprint(ctypes.sizeof(ctypes.c_int) + 1)"), stdout_is("5\n"), pool=pool)
    assert v["outcome"] == "correct", v
