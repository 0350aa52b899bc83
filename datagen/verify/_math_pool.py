"""The parent side of the math verifier's symbolic path: a pool of persistent child processes.

Why a process: sympy can run for ever on a pathological answer (a power
tower, a huge factorial), and SIGALRM only works on the main thread of the
main interpreter, which a Prefect task or a thread pool is not. So the
parent sends one job at a time over a pipe and waits at most ``timeout_s``
for the reply; past that it kills the child (SIGKILL, it cannot refuse) and
starts a fresh one for the next job. Startup (importing sympy) is paid once
per worker, not per job, and is not counted against a job's time limit.

The child is ``datagen.verify._math_worker`` (run as ``python -m``); this
module never imports it, and it imports the verifier, so the parent and the
child side form no import cycle.

Protocol: one JSON line per message. Parent -> child ``{"gold", "answers"}``;
child -> parent ``{"ok": true, "result": bool}`` or ``{"ok": false, "error": str}``.
The child first writes ``{"ready": true}``.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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
        self._retired_cpu = 0.0
        self._ready = False

    # -- lifecycle
    def _spawn(self) -> None:
        """Start the child without waiting for it (it imports sympy meanwhile)."""
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "datagen.verify._math_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )
        self._buf = b""
        self._ready = False

    def _start(self) -> None:
        """A live, ready child: spawned if there is none, awaited if still starting."""
        if self._proc is None or self._proc.poll() is not None:
            self.close()
            self._spawn()
        if not self._ready:
            line = self._read_line(_STARTUP_TIMEOUT_S)
            if line is None or not json.loads(line).get("ready"):
                self.close()
                raise RuntimeError("symbolic worker did not start")
            self._ready = True

    def close(self) -> None:
        """Kill the child (if any) and reap it."""
        self._retired_cpu += self._live_cpu()  # a killed child's CPU still counts (benchmarks)
        proc, self._proc, self._ready = self._proc, None, False
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
        """CPU time (user + system) of every child this worker ran, for benchmarks."""
        return self._retired_cpu + self._live_cpu()

    def _live_cpu(self) -> float:
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

    def judge(self, gold: str | list[str], answers: list[str], timeout_s: float) -> tuple[str, bool | None, str]:
        """-> ("ok", result, ""), ("timeout", None, ""), or ("error", None, why)."""
        with self._lock:
            try:
                self._start()
                assert self._proc is not None and self._proc.stdin is not None
                self._proc.stdin.write(json.dumps({"gold": gold, "answers": answers}).encode() + b"\n")
                self._proc.stdin.flush()
                line = self._read_line(timeout_s)
            except (OSError, EOFError, RuntimeError, ValueError) as exc:
                self.close()
                return "error", None, f"{type(exc).__name__}: {exc}"
            if line is None:
                self.close()  # killed mid-job
                self.restarts += 1
                try:
                    self._spawn()  # the replacement imports sympy while the caller goes on
                except OSError:
                    self._proc = None
                return "timeout", None, ""
            reply = json.loads(line)
            if reply.get("ok"):
                return "ok", bool(reply["result"]), ""
            return "error", None, reply.get("error", "unknown")


class WorkerPool:
    """``n`` symbolic workers judging jobs in parallel (one job per worker at
    a time, each with its own time limit): ``--workers`` for math."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"a worker pool needs at least 1 worker, got {n}")
        self.workers = [SymbolicWorker() for _ in range(n)]

    def judge_many(self, jobs: list[tuple[list[str], list[str]]], timeout_s: float) -> list[tuple[str, bool | None, str]]:
        """One ``SymbolicWorker.judge`` result per job, in order."""
        if len(self.workers) == 1 or len(jobs) <= 1:
            return [self.workers[0].judge(g, a, timeout_s) for g, a in jobs]
        free: queue.Queue[SymbolicWorker] = queue.Queue()
        for w in sorted(self.workers, key=lambda w: w.pid is None):  # running ones first: few jobs start none
            free.put(w)

        def run(job: tuple[list[str], list[str]]) -> tuple[str, bool | None, str]:
            w = free.get()
            try:
                return w.judge(job[0], job[1], timeout_s)
            finally:
                free.put(w)

        with ThreadPoolExecutor(max_workers=min(len(self.workers), len(jobs))) as ex:
            return list(ex.map(run, jobs))

    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid is not None]

    def cpu_seconds(self) -> float:
        return sum(w.cpu_seconds() for w in self.workers)

    def close(self) -> None:
        for w in self.workers:
            w.close()


_pools: dict[int, WorkerPool] = {}
_pools_pid: int | None = None
_shared_lock = threading.Lock()


def shared_pool(n: int = 1) -> WorkerPool:
    """The process-wide pool of ``n`` workers (started lazily on the first job).

    A forked child (multiprocessing) gets its own: sharing the parent's
    pipes would interleave two processes' jobs.
    """
    global _pools_pid
    with _shared_lock:
        if _pools_pid != os.getpid():
            _pools.clear()
            _pools_pid = os.getpid()
        if n not in _pools:
            _pools[n] = WorkerPool(n)
            atexit.register(_pools[n].close)
        return _pools[n]


def shared_worker() -> SymbolicWorker:
    """The first worker of the single-worker pool (kept for callers and benchmarks)."""
    return shared_pool(1).workers[0]
