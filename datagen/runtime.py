"""The lifecycle of one ``datagen`` command: its temp folder, its signals, its children.

- **One folder per run** (``$DATAGEN_TMP_BASE/datagen-runs/<pid>-<start>``,
  the base defaulting to the system temp dir): ``tempfile`` and child
  processes (``TMPDIR``) put their spool files there, and files that must
  live elsewhere (an output's ``.OUT.tmp-*`` beside it, for an atomic rename)
  are listed in it with ``track``. It is removed on exit; a run killed with
  ``kill -9`` cannot clean up, so every start sweeps the folders of runs whose
  process is gone (PID *and* start time, so a reused PID is not mistaken).
- **Children die with us**: the temporary Prefect server is started here
  (``flows.server.prefect_server``) in its own session with a parent-death signal
  (``PR_SET_PDEATHSIG``: the kernel kills it when we die, ``kill -9``
  included), and is listed in the run folder so the next start's sweep kills
  it too where that signal is not available.
- **Signals**: SIGINT and SIGTERM stop the command within a few seconds,
  whatever its threads are doing: the main thread gets ``KeyboardInterrupt``
  (so ``finally`` blocks run), and a watchdog cleans up and exits with
  130/143 if the graceful path has not finished after ``GRACE_S``. Shards
  without their completion marker stay unfinished; a rerun redoes only those.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: Seconds between a stop signal and the forced exit, if the graceful stop hangs.
GRACE_S = 2.0
_PR_SET_PDEATHSIG = 1

_run_dir: Path | None = None
_lock = threading.Lock()
_exit_code: int | None = None
# What start()/run_dir() changed, restored by cleanup() (a command run in-process, e.g. by tests).
_saved: dict[str, object] = {}
# Log handlers that quiet_tracebacks() filtered, unfiltered again by cleanup().
_filtered: list[logging.Handler] = []


def _proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # Field 2 (comm) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None


def base_dir() -> Path:
    """Where run folders live (inherited by child datagen processes through the env)."""
    base = os.environ.get("DATAGEN_TMP_BASE")
    if not base:
        base = tempfile.gettempdir()
        os.environ["DATAGEN_TMP_BASE"] = base
    return Path(base) / "datagen-runs"


def run_dir() -> Path:
    """This process's run folder (created on first use; ``tempfile`` points into it)."""
    global _run_dir
    with _lock:
        if _run_dir is None:
            pid = os.getpid()
            path = base_dir() / f"{pid}-{_proc_start(pid) or '0'}"
            path.mkdir(parents=True, exist_ok=True)
            (path / "tmp").mkdir(exist_ok=True)
            _run_dir = path
            _saved.setdefault("tempdir", tempfile.tempdir)
            _saved.setdefault("TMPDIR", os.environ.get("TMPDIR"))
            tempfile.tempdir = str(path / "tmp")
            os.environ["TMPDIR"] = str(path / "tmp")
            atexit.register(cleanup)
        return _run_dir


def _append(name: str, line: str) -> None:
    folder = _run_dir
    if folder is None:  # library use outside a datagen command: nothing to register with
        return
    with open(folder / name, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()


def track(path: str | os.PathLike) -> None:
    """Remove ``path`` when this run ends, or at the next start's sweep if it is killed
    (inside a ``datagen`` command; a no-op for library callers)."""
    _append("owned", str(Path(path).resolve()))


def track_child(pid: int) -> None:
    """Kill process ``pid`` (and its group) when this run ends or, if killed, at the next sweep."""
    _append("children", f"{pid} {_proc_start(pid) or '0'}")


def _release(folder: Path) -> None:
    """Kill the children and remove the files a run folder lists, then the folder."""
    children = folder / "children"
    if children.exists():
        for line in children.read_text().splitlines():
            pid_s, _, start = line.partition(" ")
            if not pid_s.isdigit():
                continue
            pid = int(pid_s)
            if pid != os.getpid() and _proc_start(pid) == start:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if os.getpgid(pid) == pid:
                        os.killpg(pid, signal.SIGKILL)
                    else:
                        os.kill(pid, signal.SIGKILL)
    owned = folder / "owned"
    if owned.exists():
        for line in owned.read_text().splitlines():
            if line:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                    os.unlink(line)
    shutil.rmtree(folder, ignore_errors=True)


def sweep() -> int:
    """Release the run folders of runs that are gone; returns how many."""
    base = base_dir()
    if not base.is_dir():
        return 0
    n = 0
    for folder in base.iterdir():
        pid_s, _, start = folder.name.partition("-")
        if not pid_s.isdigit() or int(pid_s) == os.getpid():
            continue
        if _proc_start(int(pid_s)) != start:
            _release(folder)
            n += 1
    return n


def cleanup() -> None:
    """End of run: kill our children, remove tracked files and the run folder."""
    global _run_dir
    with _lock:
        folder, _run_dir = _run_dir, None
    if folder is not None:
        _release(folder)
    if "tempdir" in _saved:
        tempfile.tempdir = _saved.pop("tempdir")  # type: ignore[assignment]
        old = _saved.pop("TMPDIR")
        if old is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = str(old)
    while _filtered:
        h = _filtered.pop()
        for f in [f for f in h.filters if isinstance(f, _NoTraceback)]:
            h.removeFilter(f)
    wakeup = _saved.pop("wakeup", None)
    if wakeup is not None and threading.current_thread() is threading.main_thread():
        old_fd, r, w = wakeup  # type: ignore[misc]
        signal.set_wakeup_fd(old_fd)
        os.close(w)
        os.close(r)  # the watcher's read fails and it ends
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = _saved.pop(f"signal{int(signum)}", None)
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signum, handler)


def _force_exit(code: int) -> None:
    time.sleep(GRACE_S)
    with contextlib.suppress(Exception):
        sys.stderr.write("interrupted\n" if code == 130 else "terminated\n")
        sys.stderr.flush()
    cleanup()
    os._exit(code)


_armed = threading.Event()  # the forced exit is scheduled
_main_saw_signal = False


def _arm(code: int) -> None:
    """Schedule the forced exit (once), whatever the main thread is doing."""
    global _exit_code
    with _lock:
        if _exit_code is None:
            _exit_code = code
        if _armed.is_set():
            return
        _armed.set()
    threading.Thread(target=_force_exit, args=(_exit_code,), daemon=True).start()


def _on_signal(signum, frame) -> None:
    """Main-thread handler: the graceful path (``KeyboardInterrupt``); a second signal exits at once."""
    global _main_saw_signal
    if _main_saw_signal:  # a second Ctrl-C: no more grace
        cleanup()
        os._exit(_exit_code or 128 + signum)
    _main_saw_signal = True
    _arm(128 + signum)
    raise KeyboardInterrupt


def _watch(fd: int) -> None:
    """The signal wakeup pipe's reader: Python runs handlers only in the main thread, between
    bytecodes, so a main thread stuck in a long C call (a model's generate) would never see
    the signal; this thread arms the forced exit anyway."""
    while True:
        try:
            data = os.read(fd, 64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in (signal.SIGINT, signal.SIGTERM):
                _arm(128 + signum)


def exit_code(default: int) -> int:
    """130 after SIGINT, 143 after SIGTERM, else ``default``."""
    return _exit_code or default


def start() -> None:
    """Called once at the start of a command: sweep dead runs, make our folder, trap signals."""
    with contextlib.suppress(OSError):
        sweep()
    run_dir()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            _saved.setdefault(f"signal{int(signum)}", signal.getsignal(signum))
            signal.signal(signum, _on_signal)
        if "wakeup" not in _saved:
            r, w = os.pipe()
            os.set_blocking(w, False)
            _saved["wakeup"] = (signal.set_wakeup_fd(w, warn_on_full_buffer=False), r, w)
            threading.Thread(target=_watch, args=(r,), name="datagen-signal-watch", daemon=True).start()


def finish(code: int) -> None:
    """Leave now with ``code``: clean up and skip interpreter shutdown, which would wait
    for in-flight worker threads (minutes of generation) before exiting."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    cleanup()
    os._exit(code)


# ----------------------------------------------------------------------------- the Prefect server


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


__all__ = ["base_dir", "cleanup", "exit_code", "finish", "run_dir", "start", "sweep", "track",
           "track_child"]


class _NoTraceback(logging.Filter):
    """Drops the traceback from log records: the CLI reports the error in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True


def quiet_tracebacks(debug: bool) -> None:
    """Without ``--debug``, log handlers (Prefect's console handler included) print
    no tracebacks; offline runs also send no telemetry (its failure logs an ERROR)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if debug:
        return
    flt = _NoTraceback()
    loggers = [logging.getLogger()] + [
        lg for lg in list(logging.Logger.manager.loggerDict.values()) if isinstance(lg, logging.Logger)
    ]
    for lg in loggers:
        for handler in lg.handlers:
            if not any(isinstance(f, _NoTraceback) for f in handler.filters):
                handler.addFilter(flt)
                _filtered.append(handler)
