# ruff: noqa: BLE001, S102, S110
# (This file runs untrusted code on purpose: it must exec it and catch whatever it raises.)
"""The sandbox's zygote: a small, long-lived process that forks one fresh,
isolated child per test execution. Runs as a script (``python -I
_sandbox_zygote.py``); stdlib only, so its image holds nothing but this file.

Why a zygote: starting a Python interpreter per test costs ~20 ms of CPU; a
fork of this small process costs well under 1 ms, which is what makes >= 100
isolated executions per second on 2 cores possible. The candidate's code runs
in a forked child, never in the zygote, so each test still gets a fresh
process whose memory holds only this harness and its own input (expected
outputs never leave the parent process).

Per test (root, the normal case; see ``datagen.verify.code`` for the contract):

    zygote ── unshare(PID) + fork ──▶ init (PID 1 of a new PID namespace, root)
                                        unshare(mount ns): private /, fresh
                                        /proc, fresh tmpfs on /tmp, /var/tmp,
                                        /dev/shm; fork ──▶ candidate
                                          setsid, rlimits (CPU, AS, NPROC,
                                          FSIZE, NOFILE, CORE), drop to the
                                          zygote's private uid/gid, no_new_privs,
                                          cwd = the empty tmpfs /tmp, run code
    init reaps the candidate, reports its status and exits; the kernel then
    SIGKILLs everything left in the PID namespace (setsid or not) and frees
    the tmpfs mounts with the mount namespace. On wall-clock expiry the zygote
    SIGKILLs init, which has the same effect.

The zygote itself joins a fresh network + IPC namespace once at start (no
interfaces, loopback down), so every candidate it forks is offline; each
zygote has its own namespaces and its own uid, so concurrent tests in other
zygotes can neither talk to each other nor share a process-count budget.

Without root (or where namespaces are refused) it falls back to "basic"
isolation: rlimits, setsid + process-group kill, a Python-level socket block.
That fallback is weak and reported as such in the hello frame.

Protocol on fds 0/1 (frames are a 4-byte big-endian length + payload):
hello (JSON) on start; then per request one JSON frame in, and out one JSON
header frame followed by three raw frames: stdout, stderr tail, result.
"""

import builtins
import ctypes
import io
import json
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback  # imported here, once: the candidate's uid re-importing it per test costs ~5 ms
import types

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
STDERR_TAIL = 4096
PAGE = os.sysconf("SC_PAGE_SIZE")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _read_exact(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _write_frame(fd, payload):
    data = struct.pack(">I", len(payload)) + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_frame(fd):
    (n,) = struct.unpack(">I", _read_exact(fd, 4))
    return _read_exact(fd, n)


def _memfd(name, data=b""):
    fd = os.memfd_create(name, 0)
    if data:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_memfd(fd, limit):
    os.lseek(fd, 0, os.SEEK_SET)
    size = os.fstat(fd).st_size
    return os.pread(fd, min(size, limit), 0), size


class Zygote:
    def __init__(self, proto_in, proto_out):
        self.proto_in, self.proto_out = proto_in, proto_out
        self.uid = self.gid = None
        self.isolation = "basic"
        self.reason = ""
        if os.geteuid() == 0:
            try:
                _check(_libc.unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWNS), "unshare(net, ipc, mount)")
                # Private first, or every mount below would propagate to the host.
                _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount private /")
                _expose_interpreter()
                self.pidns_fd = os.open("/proc/self/ns/pid", os.O_RDONLY)
                # A uid of our own (unique among live zygotes: derived from our pid)
                # so RLIMIT_NPROC is a per-sandbox budget and no other process's
                # files are ours.
                self.uid = self.gid = 200000 + os.getpid()
                self.isolation = "namespaces"
            except OSError as exc:
                self.reason = str(exc)
        else:
            self.reason = "not running as root"

    # ------------------------------------------------------------------ loop
    def serve(self):
        hello = {"isolation": self.isolation, "uid": self.uid, "reason": self.reason, "pid": os.getpid()}
        _write_frame(self.proto_out, json.dumps(hello).encode())
        while True:
            try:
                req = json.loads(_read_frame(self.proto_in))
            except EOFError:
                return
            try:
                header, out, err, res = self.run(req)
            except Exception as exc:  # the sandbox failed, not the candidate
                header, out, err, res = {"status": "sandbox_error", "detail": repr(exc)}, b"", b"", b""
            _write_frame(self.proto_out, json.dumps(header).encode())
            for payload in (out, err, res):
                _write_frame(self.proto_out, payload)

    def run(self, req):
        out_limit = int(req["output_limit_bytes"])
        fds = {
            "stdin": _memfd("stdin", req.get("stdin", "").encode()),
            "stdout": _memfd("stdout"),
            "stderr": _memfd("stderr"),
            "result": _memfd("result"),
        }
        status_r, status_w = os.pipe()
        try:
            wall_limit = float(req["wall_limit_s"])
            started = time.monotonic()
            if self.isolation == "namespaces":
                _check(_libc.unshare(CLONE_NEWPID), "unshare(pid)")
            pid = -1
            try:
                pid = os.fork()
            finally:
                if self.isolation == "namespaces" and pid != 0:
                    # Back to our own PID namespace for the next fork.
                    _check(_libc.setns(self.pidns_fd, CLONE_NEWPID), "setns(pid)")
            if pid == 0:
                os.close(status_r)
                self._init(req, fds, status_w)  # never returns
            os.close(status_w)
            status_w = -1
            timed_out = not _wait_fd(os.pidfd_open(pid), wall_limit)
            if timed_out:
                if self.isolation == "namespaces":
                    os.kill(pid, signal.SIGKILL)
                else:
                    _killpg(pid)
            _, init_status = os.waitpid(pid, 0)
            if self.isolation != "namespaces":
                _killpg(pid)  # the candidate's session, left-overs included
            wall = time.monotonic() - started
            raw = os.read(status_r, 4096)
            stdout, out_size = _read_memfd(fds["stdout"], out_limit)
            stderr_all, _ = _read_memfd(fds["stderr"], 1 << 20)
            result, _ = _read_memfd(fds["result"], out_limit)
            header = {"wall_s": round(wall, 4), "stdout_size": out_size, "output_limit_bytes": out_limit}
            if timed_out:
                header["status"] = "wall_timeout"
            elif not raw:
                code = os.waitstatus_to_exitcode(init_status)
                header.update(status="sandbox_error", detail=f"sandbox init exited with {code} without a report")
                stderr_all = stderr_all or b""
            else:
                header.update(json.loads(raw))
            return header, stdout, stderr_all[-STDERR_TAIL:], result
        finally:
            for fd in list(fds.values()) + [status_r, status_w]:
                if fd >= 0:
                    os.close(fd)

    # ------------------------------------------------------------------ init
    def _init(self, req, fds, status_w):
        """PID 1 of the test's namespace: prepare the filesystem view, fork the
        candidate, reap it, report, exit (taking every left-over with it)."""
        report = {"status": "sandbox_error", "detail": "init failed"}
        try:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if self.isolation == "namespaces":
                # A copy of the zygote's (already private) mount view, so the
                # tmpfs mounts below vanish with this test.
                _check(_libc.unshare(CLONE_NEWNS), "unshare(mount)")
                _check(_libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount /proc")
                size = f"size={int(req['tmpfs_mb'])}m,mode=1777".encode()
                for path in (b"/tmp", b"/var/tmp", b"/dev/shm"):
                    if os.path.isdir(path):
                        _check(_libc.mount(b"tmpfs", path, b"tmpfs", MS_NOSUID | MS_NODEV, size), f"mount {path}")
                workdir = "/tmp"
            else:
                import tempfile

                workdir = tempfile.mkdtemp(prefix="datagen-sbx-")
            setup_r, setup_w = os.pipe()
            child = os.fork()
            if child == 0:
                os.close(status_w)
                os.close(setup_r)
                _candidate(req, fds, workdir, self.uid, self.gid, self.isolation, setup_w)  # never returns
            os.close(setup_w)
            while True:
                # As PID 1 we also inherit orphans; reap until the candidate is.
                pid, status, usage = os.wait4(-1, 0)
                if pid == child:
                    break
            setup_error = os.read(setup_r, 4096)
            if setup_error:
                raise RuntimeError(f"candidate setup: {setup_error.decode(errors='replace')}")
            report = {
                "status": "exited" if os.WIFEXITED(status) else "signaled",
                "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 4),
                "maxrss_kb": usage.ru_maxrss,
            }
            if self.isolation != "namespaces":
                import shutil

                shutil.rmtree(workdir, ignore_errors=True)
        except BaseException as exc:
            report = {"status": "sandbox_error", "detail": f"init: {exc!r}"}
        finally:
            try:
                os.write(status_w, json.dumps(report).encode())
            finally:
                os._exit(0)


def _expose_interpreter():
    """Make the Python installation usable by the unprivileged uid.

    An interpreter under a 0700 directory (pyenv in /root) cannot even import
    ``traceback`` once we drop root. Rather than loosening host permissions,
    cover each such directory with an empty tmpfs in our private mount
    namespace (which also hides the rest of, e.g., /root) and bind-mount just
    the interpreter's prefix back at its path.
    """
    import tempfile

    needed = sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix)})
    plan = []  # (prefix, covered ancestor)
    for prefix in needed:
        parts = prefix.split(os.sep)
        for i in range(2, len(parts)):
            ancestor = os.sep.join(parts[:i])
            if not os.stat(ancestor).st_mode & 0o001:
                plan.append((prefix, ancestor))
                break
    if not plan:
        return
    staging = tempfile.mkdtemp(prefix="datagen-zygote-")
    try:
        staged = []
        for i, (prefix, _) in enumerate(plan):
            stage = os.path.join(staging, str(i))
            os.mkdir(stage)
            _check(_libc.mount(prefix.encode(), stage.encode(), None, MS_BIND | MS_REC, None), f"bind {prefix}")
            staged.append(stage)
        for ancestor in sorted({a for _, a in plan}):
            _check(_libc.mount(b"tmpfs", ancestor.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=1m,mode=755"),
                   f"cover {ancestor}")
        for (prefix, _), stage in zip(plan, staged):
            os.makedirs(prefix, mode=0o755, exist_ok=True)
            _check(_libc.mount(stage.encode(), prefix.encode(), None, MS_BIND | MS_REC, None), f"rebind {prefix}")
            _check(_libc.umount2(stage.encode(), MNT_DETACH), f"umount {stage}")
    finally:
        for name in os.listdir(staging):
            os.rmdir(os.path.join(staging, name))
        os.rmdir(staging)


def _wait_fd(fd, timeout):
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(max(0.0, timeout) * 1000))
    finally:
        os.close(fd)


def _killpg(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _candidate(req, fds, workdir, uid, gid, isolation, setup_w):
    """The fresh child that runs the candidate's code. Never returns.

    A failure before the candidate's code starts is the sandbox's, not the
    candidate's: it is written to ``setup_w``, which is closed just before
    the code runs (so the code cannot forge one).
    """
    try:
        os.setsid()
        memory = int(req["memory_limit_mb"]) << 20
        with open("/proc/self/statm") as fh:
            base = int(fh.read().split()[0]) * PAGE
        cpu = int(req["cpu_limit_s"])
        limits = [
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            # Address space: what this image already maps plus the test's budget.
            (resource.RLIMIT_AS, (base + memory, base + memory)),
            (resource.RLIMIT_FSIZE, (int(req["output_limit_bytes"]),) * 2),
            (resource.RLIMIT_NOFILE, (64, 64)),
            (resource.RLIMIT_CORE, (0, 0)),
        ]
        if uid is not None:
            limits.append((resource.RLIMIT_NPROC, (int(req["nproc"]),) * 2))
        for which, value in limits:
            resource.setrlimit(which, value)
        for target, name in ((0, "stdin"), (1, "stdout"), (2, "stderr"), (3, "result")):
            os.dup2(fds[name], target)
        os.closerange(4, setup_w)
        os.closerange(setup_w + 1, 1 << 16)
        if uid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        os.chdir(workdir)
        os.environ.clear()
        os.environ.update(PATH="/usr/local/bin:/usr/bin:/bin", HOME=workdir, LANG="C.UTF-8", PYTHONIOENCODING="utf-8")
        if isolation != "namespaces":
            _block_sockets()
    except BaseException as exc:
        try:
            os.write(setup_w, repr(exc).encode()[:4000])
        finally:
            os._exit(120)
    os.close(setup_w)
    try:
        _run_code(req)
    except BaseException as exc:  # a bug in the harness after setup; the exit code says so
        os.write(2, f"sandbox harness: {exc!r}".encode())
    os._exit(121)


def _block_sockets():
    import socket

    def refuse(*args, **kwargs):
        raise PermissionError("network access is disabled in the sandbox")

    socket.socket.connect = refuse  # weak: bypassable via ctypes or os.exec; see module docstring
    socket.getaddrinfo = refuse
    socket.create_connection = refuse


def _run_code(req):
    """Run the code like ``python solution.py`` would, then ``os._exit``."""
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8", errors="replace")
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8", errors="backslashreplace")
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True)
    sys.argv = ["solution.py"]
    sys.path[0] = os.getcwd()
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    main.__file__ = "solution.py"
    sys.modules["__main__"] = main
    code = 0
    marker = None
    try:
        compiled = compile(req["code"], "solution.py", "exec")
        exec(compiled, main.__dict__)
        if req["mode"] == "call":
            fn = _find_callable(main.__dict__, req["fn_name"])
            value = fn(*json.loads(req["args_json"]))
            try:
                payload = json.dumps({"value": value}, allow_nan=True)
            except (TypeError, ValueError) as exc:
                payload = json.dumps({"unserialisable": f"{type(value).__name__}: {exc}"})
            os.lseek(3, 0, os.SEEK_SET)
            os.ftruncate(3, 0)
            os.write(3, payload.encode())
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code & 0xFF
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException as exc:
        marker = type(exc).__name__
        try:
            traceback.print_exc()
        except BaseException:
            pass
        code = 1
    try:
        sys.stdout.flush()
    except BaseException as exc:  # e.g. EFBIG past the output cap
        marker = marker or type(exc).__name__
        code = code or 1
    if marker:
        try:
            os.lseek(3, 0, os.SEEK_SET)
            os.ftruncate(3, 0)
            os.write(3, json.dumps({"exception": marker}).encode())
        except BaseException:
            pass
    os._exit(code)


def _find_callable(namespace, name):
    fn = namespace.get(name)
    if callable(fn):
        return fn
    solution = namespace.get("Solution")
    if isinstance(solution, type) and hasattr(solution, name):
        return getattr(solution(), name)
    raise NameError(f"function {name!r} is not defined (nor as a method of class Solution)")


if __name__ == "__main__":
    # We die with the harness through our request pipe: when it exits (or is
    # killed) the pipe closes and serve() returns at EOF. Not PR_SET_PDEATHSIG:
    # that fires when the *thread* that started us exits, and zygotes are
    # started lazily from short-lived worker threads — it killed every
    # zygote at the end of each verify_code_batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    Zygote(proto_in, proto_out).serve()
