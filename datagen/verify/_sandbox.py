"""Host side of the code sandbox: zygote processes and a pool of them.

``datagen.verify.code`` is the public face; this module only moves requests
to a zygote (``_sandbox_zygote.py``, which does the isolation) and results
back. One zygote runs one test at a time; a ``SandboxPool`` holds up to
``size`` zygotes so that that many tests run at once, one per thread.

Zygotes are spawned from the base interpreter (not a virtualenv's: the
sandbox has the stdlib only) with an empty environment. Each request is one
SOCK_SEQPACKET message: a small JSON control frame plus six memfds created
here (code, stdin, args, stdout, stderr, result), so the zygote never holds
another sample's code or output; the answer is one JSON status message, and
this process reads the outputs from its own copies of the memfds. What the
child wrote is decoded defensively (``_decode_result``): a hostile result
becomes that sample's verdict, never an exception here.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import os
import queue
import socket
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
    ``exit_code``/``signal``/``cpu_s`` come from the real wait status and
    rusage of the candidate process (reaped by the sandbox's init).
    ``oom_killed``: the sandbox's memory cgroup OOM-killed a process during
    this test (None without a cgroup). ``exception``: the candidate's uncaught
    exception type, if reported. ``value``: the JSON-decoded return value in
    call mode (``returned`` says whether there is one); ``unserialisable`` is
    set instead when the child could not JSON-serialise it, ``unreadable``
    when the parent could not decode what the child wrote (too deep, invalid
    UTF-8, malformed).
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
    unreadable: str | None = None
    wall_limit_s: float = 0.0
    oom_killed: bool | None = None
    memory_peak_bytes: int | None = None
    detail: str = ""


STDERR_TAIL = 4096
_logged: set[str] = set()
_logged_lock = threading.Lock()


def _log_once(message: str) -> None:
    with _logged_lock:
        if message in _logged:
            return
        _logged.add(message)
    log.warning("%s", message)


def interpreter() -> str:
    """The base interpreter (outside any virtualenv): the zygote needs only its stdlib."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _memfd(name: str, data: bytes = b"") -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    if data:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)  # the candidate reads stdin from the start
    return fd


def _read_memfd(fd: int, limit: int) -> tuple[bytes, int]:
    size = os.fstat(fd).st_size
    return (os.pread(fd, min(size, limit), 0) if size else b""), size


def _tail(fd: int, limit: int) -> bytes:
    size = os.fstat(fd).st_size
    start = max(0, size - limit)
    return os.pread(fd, size - start, start) if size else b""


def _decode_result(raw: bytes) -> dict[str, Any]:
    """What the child wrote on its result fd, as Execution fields; never raises.

    The child is untrusted: the payload may be malformed, nested past the
    parser's recursion limit, not UTF-8, or of the wrong types.
    """
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except RecursionError:
        return {"unreadable": "nested too deeply to decode"}
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        return {"unreadable": f"malformed ({type(exc).__name__})"}
    if not isinstance(parsed, dict):
        return {"unreadable": f"a JSON {type(parsed).__name__}, not an object"}
    fields: dict[str, Any] = {}
    if "value" in parsed:
        fields.update(returned=True, value=parsed["value"])
    if isinstance(parsed.get("exception"), str):
        fields["exception"] = parsed["exception"][:100]
    if isinstance(parsed.get("unserialisable"), str):
        fields["unserialisable"] = parsed["unserialisable"][:200]
    return fields


class Zygote:
    """One zygote process; not thread-safe (the pool hands it to one thread at a time).

    Started with an empty environment, so nothing of this process's
    environment (credentials) is ever in the zygote's memory or its children's.
    """

    def __init__(self) -> None:
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                # -I: no environment variables, no user site, no script dir on
                # sys.path. Not -S: site gives programs exit() and quit().
                [interpreter(), "-I", str(_ZYGOTE_SCRIPT)],
                stdin=child.fileno(),
                stdout=child.fileno(),
                stderr=None,
                close_fds=True,
                cwd="/",
                env={},
            )
        finally:
            child.close()
        raw = self.sock.recv(1 << 16)
        if not raw:
            self.proc.wait()
            raise SandboxError(f"sandbox zygote exited with {self.proc.returncode} before saying hello")
        hello = json.loads(raw)
        self.isolation: str = hello["isolation"]
        self.uid: int | None = hello["uid"]
        self.layers: dict[str, Any] = hello.get("layers", {})
        self.degraded: list[str] = hello.get("degraded", [])
        self.cgroup_path: str | None = hello.get("cgroup_path")
        for reason in self.degraded:
            _log_once(f"code sandbox degraded: {reason}")

    def run(self, request: dict[str, Any]) -> Execution:
        """Send one request, wait for its result. Raises ``SandboxError`` if the zygote died.

        ``request`` carries ``code``, and ``stdin`` or ``args_json``; they go
        to the zygote in memfds (its own memory never holds them), with the
        rest of the request (limits, mode, function name) as a JSON frame.
        """
        control = {k: v for k, v in request.items() if k not in ("code", "stdin", "args_json")}
        limit = int(request["output_limit_bytes"])
        fds = [
            _memfd("code", request["code"].encode("utf-8", "surrogatepass")),
            _memfd("stdin", request.get("stdin", "").encode("utf-8", "surrogatepass")),
            _memfd("args", request.get("args_json", "").encode("utf-8", "surrogatepass")),
            _memfd("stdout"),
            _memfd("stderr"),
            _memfd("result"),
        ]
        try:
            try:
                socket.send_fds(self.sock, [json.dumps(control).encode()], fds)
                raw = self.sock.recv(1 << 16)
            except OSError as exc:
                raise SandboxError(f"sandbox zygote died: {exc}") from exc
            if not raw:
                raise SandboxError("sandbox zygote died (connection closed)")
            header = json.loads(raw)
            stdout, out_size = _read_memfd(fds[3], limit)
            stderr = _tail(fds[4], STDERR_TAIL)
            result, _ = _read_memfd(fds[5], limit)
        finally:
            for fd in fds:
                os.close(fd)
        fields: dict[str, Any] = {
            k: header[k]
            for k in ("status", "exit_code", "signal", "cpu_s", "wall_s", "oom_killed", "memory_peak_bytes", "detail")
            if header.get(k) is not None
        }
        fields.update(_decode_result(result))
        return Execution(stdout=stdout, stdout_size=out_size, output_limit_bytes=limit, stderr=stderr,
                         wall_limit_s=float(request["wall_limit_s"]), **fields)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.cgroup_path:
            # The zygote removes its cgroup at exit; this covers one that was killed.
            with contextlib.suppress(OSError):
                os.rmdir(self.cgroup_path)


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
        """``namespaces`` (full isolation) or ``basic`` (no root: see ``_sandbox_zygote``)."""
        with self.zygote() as zyg:
            return zyg.isolation

    @property
    def layers(self) -> dict[str, Any]:
        """Which isolation layers are in force (namespaces, root, cgroup, seccomp, environment)."""
        with self.zygote() as zyg:
            return dict(zyg.layers)

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
