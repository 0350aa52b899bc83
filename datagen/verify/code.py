"""Code verifier: run the candidate's Python against a test spec in a sandbox.

``verify_code(completion, tests)`` takes the last fenced code block after the
reasoning (``split_completion``) and runs it against the cases of a test spec
(shared/DESIGN.md, "Code test spec"): ``stdin_stdout`` (feed ``input``,
compare stdout to ``output``) or ``call`` (call ``fn_name(*args)``, or the
method of a ``Solution`` class, compare the JSON-serialised return value to
``expected``). Tests run in order and stop at the first failure.

Verdicts (``datagen.records.verdict``):

- ``correct`` — every case passed; ``incorrect`` — wrong output/return value
  (including a return value the parent cannot decode: too deep, not UTF-8);
- ``timeout`` — killed by the CPU limit (SIGXCPU, or SIGKILL at the hard
  limit), CPU time over ``time_limit_s``, or wall clock over
  ``2 * time_limit_s + 1`` s while making no CPU progress (sleeping,
  blocked). A sandbox still using CPU at that point (a genuine program
  starved by other work on the machine) gets more wall time, checked each
  second, up to 8x, so load alone does not make a timeout; the CPU limit, which load does not
  change, stays exact;
- ``memory`` — the sandbox's memory cgroup OOM-killed any of its processes,
  or an uncaught ``MemoryError``;
- ``runtime_error`` — non-zero exit, uncaught exception, killed by a signal,
  syntax error (even when the printed output is right), output over the cap;
- ``unparseable`` — no Python code block after the reasoning;
- ``error`` — the test spec is invalid, the sandbox itself failed, or the
  verifier hit a bug on this sample (could not judge: score None). One
  sample's failure never stops a batch.

The sandbox, layer by layer (mechanics in ``_sandbox_zygote.py``; each layer
is detected at start and degrades on its own, logged once and appended to
every verdict's detail as ``[sandbox degraded: …]``, never silently):

1. **Clean environment.** Zygotes are spawned with an empty environment, so
   the verifier's secrets (``AWS_SECRET_ACCESS_KEY``, ``HF_TOKEN``…) are not
   in any sandboxed process's environment, ``/proc/self/environ`` or
   inherited memory. Code, input and output travel in memfds: the zygote
   never holds another sample's code or output for a child to find.
2. **Namespaces** (needs root; CI runs as root): per zygote a network
   namespace with no interfaces (no connect, no DNS), IPC and UTS
   namespaces; per test a PID namespace (when its init exits the kernel kills
   every descendant) and a mount namespace.
3. **Minimal root** (``pivot_root``): a read-only tmpfs holding the
   interpreter, its standard library (site-packages hidden) and the system
   library directories (``/usr/lib``, ``/lib*``, ``ld.so.cache``) read-only,
   a few devices, a fresh ``/proc`` of the test's PID namespace, and per test
   an empty private ``/tmp``, ``/dev/shm`` and working directory
   ``/sandbox``. Working trees, ``/home``, ``/root``, ``/data``, ``/work``,
   host ``/run`` and ``/etc`` do not exist there. No shell, no third-party
   packages. Degrades to: the host filesystem, under permissions.
4. **Memory cgroup** (v1 or v2, a child of the verifier's own cgroup):
   ``memory_limit_mb`` caps every process and thread of a test together;
   threads cost what they touch. Degrades to: a per-process address-space
   cap (threads may then fail, children add up).
5. **Unprivileged uid + rlimits**: a uid of the zygote's own (so
   ``RLIMIT_NPROC`` is a per-sandbox budget), no groups, ``no_new_privs``;
   rlimits on CPU time, address space (a backstop against absurd single
   allocations), file size (= the stdout cap), open files, core dumps.
6. **Syscall filter** (seccomp BPF, x86_64 and aarch64): new namespaces
   (``unshare``, ``setns``, namespace flags of ``clone``), mounts and root
   changes, ``ptrace`` and ``process_vm_*``, module loading, kexec, eBPF,
   perf, keyrings, userfaultfd, io_uring and a few more fail with EPERM.
   Degrades to: no filter (another architecture, no seccomp).
7. **Real exit status**: the program runs at the top level of the child
   like ``python solution.py``; a crash takes the interpreter's own exit path
   (non-daemon threads joined, output flushed), so patching ``os._exit`` or
   ``sys.exit`` cannot turn a crash into success. Status, signal and CPU
   time are what init's ``wait4`` saw. Expected outputs never enter the
   sandbox: they stay in this process and are compared here.

Without root everything but the rlimits, the process-group kill and a
Python-level socket block (``ctypes`` bypasses it) is gone: "basic"
isolation stops accidents, not an adversary.

What it still does NOT protect against: kernel exploits through allowed
syscalls (no VM), timing side channels, CPU starvation of other work on the
machine (each process is CPU-capped, the wall clock caps the test), and
reading the harness's own code (it is in the stdlib's image, not secret).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import math
import re
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from datagen.records import split_completion, verdict
from datagen.verify._sandbox import Execution, SandboxError, SandboxPool, default_pool

log = logging.getLogger(__name__)

#: Fenced block languages we can run; a bare fence counts as Python.
PYTHON_LANGS = frozenset({"", "python", "python3", "py", "py3"})
OUTPUT_LIMIT_BYTES = 16 << 20
NPROC_LIMIT = 64  # processes AND threads of one sandbox (RLIMIT_NPROC counts tasks)
TMPFS_MB = 64

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.DOTALL | re.MULTILINE)


class InvalidTestSpec(ValueError):
    """The ``tests`` field is not a valid test spec; the message says what is wrong."""


@dataclasses.dataclass(frozen=True)
class TestSpec:
    kind: str  # "stdin_stdout" | "call"
    cases: tuple[dict[str, Any], ...]
    time_limit_s: float = 2.0
    memory_limit_mb: int = 512
    float_tol: float | None = None
    fn_name: str | None = None


def parse_tests(tests: str | Mapping[str, Any]) -> TestSpec:
    """Parse and check a test spec (JSON string or dict). Raises ``InvalidTestSpec``."""
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except ValueError as exc:
            raise InvalidTestSpec(f"tests is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidTestSpec("tests is nested too deeply to parse") from None
    if not isinstance(tests, Mapping):
        raise InvalidTestSpec(f"tests must be a JSON object, got {type(tests).__name__}")
    kind = tests.get("kind")
    if kind not in ("stdin_stdout", "call"):
        raise InvalidTestSpec(f"tests.kind must be 'stdin_stdout' or 'call', got {kind!r}")
    cases = tests.get("cases")
    if not isinstance(cases, list) or not cases:
        raise InvalidTestSpec("tests.cases must be a non-empty list")
    for i, case in enumerate(cases):
        if not isinstance(case, Mapping):
            raise InvalidTestSpec(f"tests.cases[{i}] must be an object")
        if kind == "stdin_stdout":
            if not isinstance(case.get("input", ""), str) or not isinstance(case.get("output"), str):
                raise InvalidTestSpec(f"tests.cases[{i}] needs string 'output' (and optional string 'input')")
        else:
            if not isinstance(case.get("args", []), list) or "expected" not in case:
                raise InvalidTestSpec(f"tests.cases[{i}] needs 'expected' (and 'args' as a list)")
    fn_name = tests.get("fn_name")
    if kind == "call" and not (isinstance(fn_name, str) and fn_name.isidentifier()):
        raise InvalidTestSpec("tests.fn_name must name a function for kind 'call'")
    time_limit = tests.get("time_limit_s", 2.0)
    memory = tests.get("memory_limit_mb", 512)
    tol = tests.get("float_tol")
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not 0 < time_limit <= 60:
        raise InvalidTestSpec(f"tests.time_limit_s must be in (0, 60], got {time_limit!r}")
    if isinstance(memory, bool) or not isinstance(memory, int) or not 16 <= memory <= 16384:
        raise InvalidTestSpec(f"tests.memory_limit_mb must be an integer in [16, 16384], got {memory!r}")
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < math.inf):
        raise InvalidTestSpec(f"tests.float_tol must be null or a finite non-negative number, got {tol!r}")
    return TestSpec(kind, tuple(cases), float(time_limit), memory, tol, fn_name)


def extract_code(completion: str | None, *, think_prefilled: bool = False) -> tuple[str | None, str]:
    """The last fenced code block after the reasoning, or ``(None, why)``.

    A block inside the reasoning is never the answer, and an unclosed think
    block has no answer at all. A last block in another language (```cpp)
    is reported as such: we only run Python.
    """
    if completion is not None and not isinstance(completion, str):
        return None, f"completion is a {type(completion).__name__}, not text"
    split = split_completion(completion, think_prefilled=think_prefilled)
    if not split.closed or split.summary is None:
        return None, "no final answer: the think block is never closed"
    blocks = _FENCE.findall(split.summary)
    if not blocks:
        return None, "no fenced code block after the reasoning"
    _, lang, body = blocks[-1]
    if lang.lower() not in PYTHON_LANGS:
        return None, f"last code block is {lang!r}; only Python is run"
    if not body.strip():
        return None, "last code block is empty"
    return body, ""


# --------------------------------------------------------------------------- comparison


def compare_stdout(actual: str, expected: str, float_tol: float | None = None) -> str | None:
    """None when equal under DESIGN.md's rules, else why not.

    Line by line, each line as whitespace-split tokens: CRLF, trailing spaces
    and trailing blank lines don't matter; case does; with ``float_tol``,
    numeric tokens match within that relative tolerance.
    """
    got, want = _lines(actual), _lines(expected)
    for i, (g, w) in enumerate(zip(got, want), 1):
        if g != w and not (float_tol is not None and _tokens_close(g, w, float_tol)):
            return f"line {i}: expected {_clip(' '.join(w))!r}, got {_clip(' '.join(g))!r}"
    if len(got) != len(want):
        return f"expected {len(want)} lines, got {len(got)}"
    return None


def _lines(text: str) -> list[list[str]]:
    lines = [line.split() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _tokens_close(got: list[str], want: list[str], tol: float) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if g == w:
            continue
        try:
            gf, wf = float(g), float(w)
        except (ValueError, OverflowError):
            return False
        if not (math.isfinite(gf) and math.isfinite(wf)) or not math.isclose(gf, wf, rel_tol=tol, abs_tol=tol * 1e-6):
            return False
    return True


def values_equal(got: Any, want: Any, float_tol: float | None = None) -> bool:
    """Plain-data equality of JSON values: bool is not int, floats within ``float_tol``."""
    if isinstance(want, bool) or isinstance(got, bool):
        return type(got) is type(want) and got == want
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        if float_tol is not None and (isinstance(want, float) or isinstance(got, float)):
            try:
                return math.isclose(float(got), float(want), rel_tol=float_tol, abs_tol=float_tol * 1e-6)
            except OverflowError:  # an int past float range (10**400) is close to no float
                return False
        return got == want
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(values_equal(g, w, float_tol) for g, w in zip(got, want))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(values_equal(got[k], want[k], float_tol) for k in want)
    return type(got) is type(want) and got == want


def _clip(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# --------------------------------------------------------------------------- verification


def verify_code(
    completion: str | None,
    tests: str | Mapping[str, Any],
    *,
    think_prefilled: bool = False,
    pool: SandboxPool | None = None,
    output_limit_bytes: int = OUTPUT_LIMIT_BYTES,
) -> dict[str, Any]:
    """Verdict ``{outcome, score, detail}`` of the completion's code on ``tests``.

    Never raises: an invalid spec, a failed sandbox or a bug of this
    verifier on this sample is an ``error`` verdict (score None), logged.
    """
    try:
        return _verify_code(completion, tests, think_prefilled=think_prefilled, pool=pool,
                            output_limit_bytes=output_limit_bytes)
    except Exception as exc:  # one sample never stops a batch; counted as error, never incorrect
        log.exception("code verifier failed on one sample")
        return verdict("error", detail=f"code verifier failed: {type(exc).__name__}: {_clip(str(exc))}")


def _verify_code(completion: str | None, tests: str | Mapping[str, Any], *, think_prefilled: bool,
                 pool: SandboxPool | None, output_limit_bytes: int) -> dict[str, Any]:
    try:
        spec = parse_tests(tests)
    except InvalidTestSpec as exc:
        return verdict("error", detail=f"bad test spec: {exc}")
    code, why = extract_code(completion, think_prefilled=think_prefilled)
    if code is None:
        return verdict("unparseable", detail=why)
    pool = pool or default_pool()
    # A failure of the sandbox itself (a fork refused under a burst of load, a
    # zygote that died) says nothing about the candidate: the whole record is
    # retried once on a fresh zygote before it becomes an ``error`` verdict.
    for attempt in range(SANDBOX_ATTEMPTS):
        try:
            result = _run_cases(pool, code, spec, output_limit_bytes)
        except SandboxError as exc:
            result = verdict("error", detail=f"sandbox failed: {exc}")
        if result["outcome"] != "error":
            break
        log.warning("code sandbox failure (attempt %d/%d): %s", attempt + 1, SANDBOX_ATTEMPTS, result["detail"])
    return result


SANDBOX_ATTEMPTS = 2


def _run_cases(pool: SandboxPool, code: str, spec: TestSpec, output_limit_bytes: int) -> dict[str, Any]:
    """Run the cases in order on one zygote, stopping at the first failure."""
    with pool.zygote() as zygote:
        # Never silent: a weaker sandbox than the full one says so in every verdict.
        # (Layer names only; the reasons are in the log, once.)
        names = ", ".join(reason.split(":", 1)[0] for reason in zygote.degraded)
        suffix = f" [sandbox degraded: {names}]" if names else ""
        for index, case in enumerate(spec.cases):
            execution = zygote.run(_request(code, spec, case, output_limit_bytes))
            failure = _judge(execution, spec, case)
            if failure is not None:
                outcome, detail = failure
                if outcome == "error":
                    # Out of step or broken: do not hand this zygote out again.
                    raise SandboxError(detail.removeprefix("sandbox failed: "))
                return verdict(outcome, detail=f"test {index + 1}/{len(spec.cases)}: {detail}{suffix}")
    return verdict("correct", detail=f"passed {len(spec.cases)}/{len(spec.cases)} tests{suffix}")


def verify_code_batch(
    completions: Sequence[str | None],
    tests: Sequence[str | Mapping[str, Any]],
    *,
    workers: int | None = None,
    think_prefilled: bool = False,
    on_done: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """``verify_code`` over many records, ``workers`` at a time (default: one per CPU).

    Threads suffice: the work happens in the zygotes' children. ``on_done(i)``
    is called as record ``i`` finishes (for progress bars).
    """
    if len(completions) != len(tests):
        raise ValueError(f"{len(completions)} completions but {len(tests)} test specs")
    pool = SandboxPool(workers) if workers else default_pool()
    results: list[dict[str, Any]] = [None] * len(completions)  # type: ignore[list-item]
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=pool.size) as executor:
            futures = {
                executor.submit(verify_code, c, t, think_prefilled=think_prefilled, pool=pool): i
                for i, (c, t) in enumerate(zip(completions, tests))
            }
            for future in concurrent.futures.as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                if on_done:
                    on_done(i)
    finally:
        if workers:
            pool.close()
    return results


def _request(code: str, spec: TestSpec, case: Mapping[str, Any], output_limit: int) -> dict[str, Any]:
    request = {
        "code": code,
        "mode": "stdin" if spec.kind == "stdin_stdout" else "call",
        "cpu_limit_s": math.ceil(spec.time_limit_s),
        "wall_limit_s": wall_limit_s(spec.time_limit_s),
        "memory_limit_mb": spec.memory_limit_mb,
        "output_limit_bytes": output_limit,
        "nproc": NPROC_LIMIT,
        "tmpfs_mb": TMPFS_MB,
    }
    if spec.kind == "stdin_stdout":
        request["stdin"] = case.get("input", "")
    else:
        request["fn_name"] = spec.fn_name
        request["args_json"] = json.dumps(case.get("args", []))
    return request


def wall_limit_s(time_limit_s: float) -> float:
    """Wall-clock budget of one test for a program that is not using CPU."""
    return 2 * time_limit_s + 1


def _judge(ex: Execution, spec: TestSpec, case: Mapping[str, Any]) -> tuple[str, str] | None:
    """(outcome, detail) for a failed execution, None when the case passed.

    Everything read here came from an untrusted process: comparisons that
    could blow up on its values (depth, size) are guarded.
    """
    if ex.status == "sandbox_error":
        return "error", f"sandbox failed: {ex.detail}"
    if ex.status == "wall_timeout":
        return "timeout", f"wall clock over {ex.wall_limit_s:g}s ({ex.wall_s:.1f}s)"
    if ex.oom_killed:
        return "memory", f"out of memory: the {spec.memory_limit_mb} MB sandbox limit was hit"
    cpu_limit = math.ceil(spec.time_limit_s)
    if (ex.cpu_s > spec.time_limit_s or ex.signal == signal.SIGXCPU
            or (ex.signal == signal.SIGKILL and ex.cpu_s >= cpu_limit * 0.9)):
        # SIGXCPU is the soft CPU limit, SIGKILL at ~the hard one: rusage is
        # tick-accounted, so the reported CPU time can fall just short of it.
        return "timeout", f"CPU time {ex.cpu_s:.2f}s over {spec.time_limit_s:g}s"
    if ex.exception == "MemoryError":
        return "memory", f"MemoryError under the {spec.memory_limit_mb} MB limit"
    if ex.stdout_size >= ex.output_limit_bytes > 0:
        return "runtime_error", f"output over the {ex.output_limit_bytes >> 20} MB cap"
    if ex.status == "signaled":
        return "runtime_error", f"killed by signal {ex.signal}"
    if ex.exit_code:
        tail = ex.stderr.decode("utf-8", "replace").strip().splitlines()
        return "runtime_error", f"exit code {ex.exit_code}" + (f": {_clip(tail[-1])}" if tail else "")
    if ex.exception:
        # Crashed, then exited 0 anyway (e.g. ``atexit.register(os._exit, 0)``).
        return "runtime_error", f"uncaught {_clip(ex.exception, 40)}, then exit code 0"
    if spec.kind == "stdin_stdout":
        why = compare_stdout(ex.stdout.decode("utf-8", "replace"), case["output"], spec.float_tol)
        return ("incorrect", why) if why else None
    if ex.unreadable:
        return "incorrect", f"return value unreadable: {ex.unreadable}"
    if ex.unserialisable:
        return "incorrect", f"return value is not JSON data ({_clip(ex.unserialisable)})"
    if not ex.returned:
        return "runtime_error", "no return value reported"
    try:
        equal = values_equal(ex.value, case["expected"], spec.float_tol)
    except RecursionError:
        return "incorrect", "return value nested too deeply to compare"
    if not equal:
        return "incorrect", f"expected {_preview(case['expected'])}, got {_preview(ex.value)}"
    return None


def _preview(value: Any) -> str:
    try:
        return _clip(json.dumps(value))
    except (ValueError, TypeError, RecursionError, OverflowError):
        return f"<unprintable {type(value).__name__}>"
