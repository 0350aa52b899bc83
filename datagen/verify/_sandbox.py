"""Host side of the code sandbox: zygote processes and a pool of them.

``datagen.verify.code`` is the public face; this module only moves requests
to a zygote (``_sandbox_zygote.py``, which does the isolation) and results
back. One zygote runs one test at a time; a ``SandboxPool`` holds up to
``size`` zygotes so that that many tests run at once, one per thread.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import os
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_ZYGOTE_SCRIPT = Path(__file__).with_name("_sandbox_zygote.py")


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the candidate's code)."""


@dataclasses.dataclass(frozen=True)
class Execution:
    """One test execution as the zygote saw it.

    ``status``: ``exited`` | ``signaled`` | ``wall_timeout`` | ``sandbox_error``.
    ``exception``: the candidate's uncaught exception type, if any.
    ``value``: the JSON-decoded return value in call mode (``returned`` says
    whether there is one); ``unserialisable`` is set instead when the value
    could not be JSON-serialised in the child.
    """

    status: str
    exit_code: int | None = None
    signal: int | None = None
    cpu_s: float = 0.0
    wall_s: float = 0.0
    stdout: bytes = b""
    stdout_size: int = 0
    output_limit_bytes: int = 0
    stderr: bytes = b""
    exception: str | None = None
    returned: bool = False
    value: Any = None
    unserialisable: str | None = None
    detail: str = ""


def _read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise SandboxError("sandbox zygote died (short read)")
    return data


def _read_frame(stream) -> bytes:
    (n,) = struct.unpack(">I", _read_exact(stream, 4))
    return _read_exact(stream, n) if n else b""


class Zygote:
    """One zygote process; not thread-safe (the pool hands it to one thread at a time)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(_ZYGOTE_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            close_fds=True,
            cwd="/",
        )
        hello = json.loads(_read_frame(self.proc.stdout))
        self.isolation: str = hello["isolation"]
        self.uid: int | None = hello["uid"]
        if self.isolation != "namespaces":
            log.warning("code sandbox runs with basic isolation only (%s): no network/uid/PID isolation",
                        hello.get("reason"))

    def run(self, request: dict[str, Any]) -> Execution:
        """Send one request, wait for its result. Raises ``SandboxError`` if the zygote died."""
        payload = json.dumps(request).encode()
        try:
            self.proc.stdin.write(struct.pack(">I", len(payload)) + payload)
            self.proc.stdin.flush()
            header = json.loads(_read_frame(self.proc.stdout))
            stdout = _read_frame(self.proc.stdout)
            stderr = _read_frame(self.proc.stdout)
            result = _read_frame(self.proc.stdout)
        except (OSError, ValueError) as exc:
            raise SandboxError(f"sandbox zygote died: {exc}") from exc
        fields: dict[str, Any] = {
            k: header[k]
            for k in ("status", "exit_code", "signal", "cpu_s", "wall_s", "stdout_size", "output_limit_bytes", "detail")
            if header.get(k) is not None
        }
        if result:
            try:
                parsed = json.loads(result)
            except ValueError:
                parsed = {}  # the candidate scribbled on its result fd; nothing to trust
            if isinstance(parsed, dict):
                if "value" in parsed:
                    fields.update(returned=True, value=parsed["value"])
                if isinstance(parsed.get("exception"), str):
                    fields["exception"] = parsed["exception"]
                if isinstance(parsed.get("unserialisable"), str):
                    fields["unserialisable"] = parsed["unserialisable"]
        return Execution(stdout=stdout, stderr=stderr, **fields)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self.proc.stdout.close()


class SandboxPool:
    """Up to ``size`` zygotes, started lazily and handed out one per thread."""

    def __init__(self, size: int | None = None) -> None:
        self.size = max(1, size or os.cpu_count() or 1)
        self._idle: queue.LifoQueue[Zygote] = queue.LifoQueue()
        self._started = 0
        self._lock = threading.Lock()
        self._all: list[Zygote] = []

    @contextlib.contextmanager
    def zygote(self) -> Iterator[Zygote]:
        """Borrow a zygote; a dead one (e.g. killed from outside) or one that failed
        mid-request is replaced."""
        zyg = self._take()
        healthy = False
        try:
            yield zyg
            healthy = True
        finally:
            if healthy and zyg.alive():
                self._idle.put(zyg)
            else:
                # Dead, or broken mid-request (its pipe may be out of step with
                # the next request): never hand it out again.
                if zyg.alive():
                    zyg.proc.kill()
                    zyg.close()
                with self._lock:
                    self._started -= 1
                    self._all.remove(zyg)

    def _take(self) -> Zygote:
        with self._lock:
            while True:
                try:
                    zyg = self._idle.get_nowait()
                except queue.Empty:
                    break
                if zyg.alive():
                    return zyg
                # Died while idle (killed from outside, OOM): replace it.
                self._started -= 1
                self._all.remove(zyg)
                zyg.close()
            start = self._started < self.size
            if start:
                self._started += 1
        if not start:
            zyg = self._idle.get()
            if zyg.alive():
                return zyg
            with self._lock:
                self._started -= 1
                self._all.remove(zyg)
            zyg.close()
            return self._take()
        try:
            zyg = Zygote()
        except BaseException:
            with self._lock:
                self._started -= 1
            raise
        with self._lock:
            self._all.append(zyg)
        return zyg

    @property
    def isolation(self) -> str:
        with self.zygote() as zyg:
            return zyg.isolation

    def close(self) -> None:
        with self._lock:
            zygotes, self._all, self._started = self._all, [], 0
        for zyg in zygotes:
            zyg.close()
        self._idle = queue.LifoQueue()


_default: SandboxPool | None = None
_default_lock = threading.Lock()


def default_pool() -> SandboxPool:
    """The process-wide pool (one zygote per CPU), closed at exit."""
    global _default
    with _default_lock:
        if _default is None:
            _default = SandboxPool()
            atexit.register(_default.close)
        return _default


def _forget_default_after_fork() -> None:
    # A forked child (multiprocessing) must not share the parent's zygote pipes.
    global _default
    _default = None


os.register_at_fork(after_in_child=_forget_default_after_fork)
