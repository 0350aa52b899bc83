"""The symbolic side of the math verifier, in a persistent child process.

Why a process: sympy can run for ever on a pathological answer (a power
tower, a huge factorial), and SIGALRM only works on the main thread of the
main interpreter, which a Prefect task or a thread pool is not. So the
parent sends one job at a time over a pipe and waits at most ``timeout_s``
for the reply; past that it kills the child (SIGKILL, it cannot refuse) and
starts a fresh one for the next job. Startup (importing sympy) is paid once
per worker, not per job, and is not counted against a job's time limit.

Protocol: one JSON line per message. Parent -> child ``{"gold", "answers"}``;
child -> parent ``{"ok": true, "result": bool}`` or ``{"ok": false, "error": str}``.
The child first writes ``{"ready": true}``.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time

#: The child's address-space limit: a runaway expression raises MemoryError
#: (answered as `error`) instead of swapping the machine.
_MEMORY_LIMIT = 4 * 1024**3
_STARTUP_TIMEOUT_S = 60.0


class SymbolicWorker:
    """A restartable child process that judges answer pairs with sympy.

    Thread-safe: calls are serialized by a lock (one job in flight at a time).
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._buf = b""
        self._lock = threading.Lock()
        self.restarts = 0

    # -- lifecycle
    def _start(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "datagen.verify._math_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )
        self._buf = b""
        line = self._read_line(_STARTUP_TIMEOUT_S)
        if line is None or not json.loads(line).get("ready"):
            self.close()
            raise RuntimeError("symbolic worker did not start")

    def close(self) -> None:
        """Kill the child (if any) and reap it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            proc.wait()
            for f in (proc.stdin, proc.stdout):
                if f is not None:
                    f.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the live child, for benchmarks."""
        if self._proc is None:
            return 0.0
        try:
            with open(f"/proc/{self._proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return 0.0

    # -- I/O
    def _read_line(self, timeout_s: float) -> bytes | None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("symbolic worker exited")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def judge(self, gold: str, answers: list[str], timeout_s: float) -> tuple[str, bool | None, str]:
        """-> ("ok", result, ""), ("timeout", None, ""), or ("error", None, why)."""
        with self._lock:
            try:
                if self._proc is None or self._proc.poll() is not None:
                    self.close()
                    self._start()
                assert self._proc is not None and self._proc.stdin is not None
                self._proc.stdin.write(json.dumps({"gold": gold, "answers": answers}).encode() + b"\n")
                self._proc.stdin.flush()
                line = self._read_line(timeout_s)
            except (OSError, EOFError, RuntimeError, ValueError) as exc:
                self.close()
                return "error", None, f"{type(exc).__name__}: {exc}"
            if line is None:
                self.close()  # killed mid-job: the next job gets a fresh child
                self.restarts += 1
                return "timeout", None, ""
            reply = json.loads(line)
            if reply.get("ok"):
                return "ok", bool(reply["result"]), ""
            return "error", None, reply.get("error", "unknown")


_shared: SymbolicWorker | None = None
_shared_pid: int | None = None
_shared_lock = threading.Lock()


def shared_worker() -> SymbolicWorker:
    """The process-wide worker (started lazily on the first symbolic job).

    A forked child (multiprocessing) gets its own: sharing the parent's
    pipes would interleave two processes' jobs.
    """
    global _shared, _shared_pid
    with _shared_lock:
        if _shared is None or _shared_pid != os.getpid():
            _shared, _shared_pid = SymbolicWorker(), os.getpid()
            atexit.register(_shared.close)
        return _shared


# =========================================================================== child side


def _symbolic_eq_factory():
    import sympy
    from latex2sympy2_extended import latex2sympy

    from datagen.verify import _math_fast as fast
    from datagen.verify.math import REL_TOL

    imaginary = sympy.Symbol("i")

    def to_sympy(text: str):
        expr = latex2sympy(text)
        # i is the imaginary unit in a final answer, as on the fast path
        return expr.subs(imaginary, sympy.I) if isinstance(expr, sympy.Basic) else expr

    def eq(x: str, y: str) -> bool | None:
        quick = fast.fast_equal(x, y, REL_TOL)
        if quick is not None:
            return quick
        try:
            a, b = to_sympy(x), to_sympy(y)
        except Exception:  # noqa: BLE001 -- latex2sympy raises many types on bad input
            return _math_verify_eq(x, y)
        try:
            if isinstance(a, sympy.Basic) and isinstance(b, sympy.Basic):
                if a == b:
                    return True
                if isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr):
                    diff = sympy.simplify(a - b)
                    if diff == 0:
                        return True
                    free = sorted(diff.free_symbols, key=str)
                    points = [{s: sympy.Rational(7 + 3 * k + j, 5 + k) for j, s in enumerate(free)} for k in range(3)]
                    for p in points:
                        va, vb = complex(a.subs(p).evalf(30)), complex(b.subs(p).evalf(30))
                        if abs(va - vb) > max(REL_TOL * max(abs(va), abs(vb)), 1e-12):
                            return False
                    return True
                return bool(sympy.simplify(a) == sympy.simplify(b)) or _math_verify_eq(x, y)
        except (TypeError, ValueError, AttributeError, NotImplementedError, ZeroDivisionError):
            return _math_verify_eq(x, y)
        return _math_verify_eq(x, y)

    return eq


def _math_verify_eq(x: str, y: str) -> bool:
    """Last resort for forms our structure does not model (inequalities, …)."""
    from math_verify import parse, verify

    gold = parse(f"${x}$", parsing_timeout=None)
    ans = parse(f"${y}$", parsing_timeout=None)
    if not gold or not ans:
        return x.replace(" ", "").lower() == y.replace(" ", "").lower()
    return bool(verify(gold, ans, timeout_seconds=None))


def _serve() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT, _MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):
        pass
    sys.setrecursionlimit(10000)
    from datagen.verify.math import judge_texts

    eq = _symbolic_eq_factory()
    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        try:
            job = json.loads(line)
            result = judge_texts(job["gold"], job["answers"], eq)
            reply = {"ok": True, "result": bool(result)}
        except BaseException as exc:  # noqa: BLE001 -- MemoryError, RecursionError: report, keep serving
            reply = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    _serve()
