# ruff: noqa: BLE001, S102, S110
# (This file runs untrusted code on purpose: it must exec it and catch whatever it raises.)
"""The sandbox's zygote: a small, long-lived process that forks one fresh,
isolated child per test execution. Runs as a script (``python -I
_sandbox_zygote.py``) started with an EMPTY environment; stdlib only.

Why a zygote: starting a Python interpreter per test costs ~20 ms of CPU; a
fork of this small process costs well under 1 ms, which is what makes >= 100
isolated executions per second on 2 cores possible.

What the zygote's memory never holds, so that no forked candidate can find it
there: the harness's environment (it is spawned with an empty one — clearing
``os.environ`` would not wipe the inherited block, which a program can read
back from ``/proc/self/stat`` env_start..env_end), any test's expected output,
and any other program's code, input or output. Code, input, stdout, stderr
and the result travel in memfds that the host creates and passes over a
SOCK_SEQPACKET socket (SCM_RIGHTS); the zygote only ever reads the small
control frame (limits, mode, function name) and the status report.

Layers, set up once per zygote (root, the normal case) and per test:

    zygote (root)  unshare(net, ipc, uts, mount): offline, no host hostname;
                   pivot_root into a minimal root: a read-only tmpfs with the
                   interpreter, its stdlib, the system library directories
                   (/usr/lib, /lib*, ld.so.cache) bound read-only, /dev with
                   null/zero/full/random/urandom only, and empty mount points;
                   the host's trees (/work, /home, /root, /data, /run, /etc,
                   /tmp …) do not exist there; a memory cgroup of its own.
      ── unshare(pid) + fork ──▶ init (PID 1 of a new PID namespace, root)
                   unshare(mount); fresh /proc; fresh tmpfs on /tmp, /dev/shm
                   and the working directory /sandbox; joins the cgroup;
         fork ──▶ candidate: setsid, rlimits (CPU, AS backstop, NPROC via a
                   uid of its own, FSIZE, NOFILE, CORE), drop to that uid,
                   no_new_privs, seccomp filter, cwd /sandbox, run the code
                   like ``python solution.py`` would.
    When the candidate exits, init kills and reaps whatever it left behind
    and reports the candidate's real wait status and the CPU time of every
    process of the test (work pushed into orphaned children counts), then
    exits; the kernel frees the tmpfs mounts with the mount namespace. On
    wall-clock expiry the zygote SIGKILLs init, which takes the whole PID
    namespace with it. The wall limit stretches (up to 8x) only while the
    test keeps using CPU and stays under its CPU limit: a program starved by
    other work on the machine is not a timeout, a sleeper is. The zygote
    reads the cgroup's OOM-kill counter after each test: any OOM kill means
    ``memory``.

Exit status: an uncaught exception or ``SystemExit`` propagates to the top of
this script untouched, so the interpreter itself prints the traceback, waits
for non-daemon threads and exits with its own status — nothing the program
could patch (``os._exit``, ``sys.exit``) decides the status of a crash. Only
a program that ran to its end takes the short path (wait for threads, run
atexit, flush, exit 0).

Degradation, each layer on its own, each probed at start (reported in the
hello frame; the host logs it once and names it in every verdict): no root
-> no namespaces ("basic": setsid + process-group kill, a Python-level
socket block) and so no minimal root either; pivot_root refused -> the host
filesystem stays visible under permissions; no memory cgroup we can create
and move processes into (v1 or v2; tried with or without root) -> a
per-process address-space cap only; an architecture without a syscall table
here (only x86_64 and aarch64 have one) or a kernel that refuses the filter
-> no syscall filter (also applied without root: it needs only
no_new_privs).

Protocol on fd 0 (a SOCK_SEQPACKET socket, one message per frame): hello
(JSON) on start; then per request one JSON message carrying six fds (code,
stdin, args, stdout, stderr, result) in, and one JSON status message out.
"""

import atexit
import ctypes
import json
import os
import resource
import select
import signal
import socket
import sys
import time
import types

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 4, 38, 22, 2
M_ARENA_MAX = -8
PAGE = os.sysconf("SC_PAGE_SIZE")
WORKDIR = "/sandbox"
N_FDS = 6  # code, stdin, args, stdout, stderr, result
WALL_STRETCH = 8  # how far past its wall limit a test still using CPU may run
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src, dst, fstype, flags, data=None):
    enc = (lambda s: s.encode() if isinstance(s, str) else s)
    _check(_libc.mount(enc(src), enc(dst), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {dst}")


# --------------------------------------------------------------------------- seccomp

# Denied with EPERM: new namespaces, mounts and root changes, tracing and
# reading other processes' memory, kernel modules and kexec, eBPF, perf,
# keyrings, userfaultfd, handle-based opens, io_uring (its operations bypass
# seccomp), swap/reboot/clock/syslog/accounting. Numbers checked against
# libseccomp's tables (seccomp_syscall_resolve_name_arch).
_SYSCALLS = {
    "x86_64": (0xC000003E, {
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "ptrace": 101,
        "process_vm_readv": 310, "process_vm_writev": 311, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320, "bpf": 321, "perf_event_open": 298,
        "keyctl": 250, "add_key": 248, "request_key": 249, "userfaultfd": 323, "open_by_handle_at": 304,
        "name_to_handle_at": 303, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "move_mount": 429,
        "open_tree": 428, "mount_setattr": 442, "swapon": 167, "swapoff": 168, "reboot": 169, "syslog": 103,
        "acct": 163, "settimeofday": 164, "clock_settime": 227, "adjtimex": 159, "clock_adjtime": 305, "iopl": 172,
        "ioperm": 173, "quotactl": 179, "lookup_dcookie": 212, "vhangup": 153, "pidfd_getfd": 438, "kcmp": 312,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "uselib": 134, "create_module": 174,
        "get_kernel_syms": 177, "query_module": 178, "nfsservctl": 180, "_sysctl": 156, "fanotify_init": 300,
        "clone": 56, "clone3": 435}),
    "aarch64": (0xC00000B7, {
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "ptrace": 117,
        "process_vm_readv": 270, "process_vm_writev": 271, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "kexec_load": 104, "kexec_file_load": 294, "bpf": 280, "perf_event_open": 241,
        "keyctl": 219, "add_key": 217, "request_key": 218, "userfaultfd": 282, "open_by_handle_at": 265,
        "name_to_handle_at": 264, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "move_mount": 429,
        "open_tree": 428, "mount_setattr": 442, "swapon": 224, "swapoff": 225, "reboot": 142, "syslog": 116,
        "acct": 89, "settimeofday": 170, "clock_settime": 112, "adjtimex": 171, "clock_adjtime": 266,
        "quotactl": 60, "lookup_dcookie": 18, "vhangup": 58, "pidfd_getfd": 438, "kcmp": 272,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "nfsservctl": 42,
        "fanotify_init": 262, "clone": 220, "clone3": 435}),
}
_NS_FLAGS = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000


def _seccomp_program():
    """The BPF filter as a (keep-alive buffer, sock_fprog) pair, or (None, reason)."""
    machine = os.uname().machine
    if machine not in _SYSCALLS:
        return None, f"no syscall table for {machine}"
    arch, nrs = _SYSCALLS[machine]
    eperm, enosys = _RET_ERRNO | 1, _RET_ERRNO | 38

    def stmt(code, k):
        return (code, 0, 0, k)

    def jeq(k, jt, jf=0):
        return (0x15, jt, jf, k)

    prog = [stmt(0x20, 4),  # A = seccomp_data.arch
            jeq(arch, 1), stmt(0x06, eperm),  # a foreign ABI (int 0x80 on x86_64): refused
            stmt(0x20, 0)]  # A = seccomp_data.nr
    if machine == "x86_64":
        prog += [(0x35, 0, 1, 0x40000000), stmt(0x06, eperm)]  # x32 ABI: refused
    for name, nr in nrs.items():
        if name not in ("clone", "clone3"):  # every other syscall in the table is denied
            prog += [jeq(nr, 0, 1), stmt(0x06, eperm)]
    # clone3 passes its flags in memory the filter cannot read: ENOSYS makes
    # glibc fall back to clone, whose flags (argument 0) we can check.
    prog += [jeq(nrs["clone3"], 0, 1), stmt(0x06, enosys)]
    prog += [jeq(nrs["clone"], 0, 3), stmt(0x20, 16),  # A = low 32 bits of args[0]
             (0x45, 0, 1, _NS_FLAGS), stmt(0x06, eperm)]
    prog += [stmt(0x06, _RET_ALLOW)]

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    buf = (SockFilter * len(prog))(*[SockFilter(*ins) for ins in prog])
    return buf, SockFprog(len(prog), ctypes.cast(buf, ctypes.POINTER(SockFilter)))


# --------------------------------------------------------------------------- memory cgroup


class MemoryCgroup:
    """A memory cgroup of this zygote's own (v1 or v2), driven through directory fds
    so that it keeps working after pivot_root has hidden /sys."""

    def __init__(self):
        self.version, self.path, self.dir_fd, self.parent_fd, self.name = None, None, -1, -1, None
        self.limit = None
        mounts = {}  # "v1" or "v2" -> (root, mount point)
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fields, rfields = left.split(), right.split()
                if rfields[0] == "cgroup" and "memory" in rfields[2].split(","):
                    mounts.setdefault("v1", (fields[3], fields[4]))
                elif rfields[0] == "cgroup2":
                    mounts.setdefault("v2", (fields[3], fields[4]))
        with open("/proc/self/cgroup") as fh:
            entries = [line.rstrip("\n").split(":", 2) for line in fh]
        here = None
        for _, controllers, path in entries:
            if "v1" in mounts and "memory" in controllers.split(","):
                here = ("v1", path)
                break
        else:
            for hid, controllers, path in entries:
                if hid == "0" and "v2" in mounts:
                    here = ("v2", path)
        if here is None:
            raise OSError("no memory cgroup hierarchy is mounted")
        version, path = here
        root, mountpoint = mounts[version]
        rel = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
        parent = os.path.normpath(os.path.join(mountpoint, rel))
        if version == "v2":
            with open(os.path.join(parent, "cgroup.subtree_control")) as fh:
                if "memory" not in fh.read().split():
                    # Enabling it fails (EBUSY) while this cgroup holds processes, us included.
                    with open(os.path.join(parent, "cgroup.subtree_control"), "w") as out:
                        out.write("+memory")
        self.name = f"datagen-sandbox-{os.getpid()}"
        self.path = os.path.join(parent, self.name)
        os.mkdir(self.path, 0o700)
        self.version = version
        self.parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        self.dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        if version == "v1":
            self._write("memory.swappiness", "0", quiet=True)
        else:
            self._write("memory.swap.max", "0", quiet=True)
        # A cgroup we can create but not move processes into (v2 delegation
        # rules, read-only files) is no cgroup: find out now, not per test.
        pid = os.fork()
        if pid == 0:
            try:
                self.join()
                os._exit(0)
            except BaseException:
                os._exit(1)
        if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
            self.remove()
            raise OSError(f"cannot move processes into {self.path}")

    def _write(self, name, value, quiet=False):
        try:
            fd = os.open(name, os.O_WRONLY, dir_fd=self.dir_fd)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError:
            if not quiet:
                raise

    def _read(self, name):
        try:
            fd = os.open(name, os.O_RDONLY, dir_fd=self.dir_fd)
        except OSError:
            return ""
        try:
            return os.read(fd, 4096).decode()
        finally:
            os.close(fd)

    def set_limit(self, nbytes):
        if nbytes == self.limit:
            return
        if self.version == "v1":
            # memsw (memory + swap) must stay >= memory: order the writes by direction.
            if self.limit is None or nbytes > self.limit:
                self._write("memory.memsw.limit_in_bytes", str(nbytes), quiet=True)
                self._write("memory.limit_in_bytes", str(nbytes))
            else:
                self._write("memory.limit_in_bytes", str(nbytes))
                self._write("memory.memsw.limit_in_bytes", str(nbytes), quiet=True)
        else:
            self._write("memory.max", str(nbytes))
        self.limit = nbytes

    def oom_kills(self):
        """OOM kills so far (v1 before Linux 4.13 has no counter: failcnt stands in)."""
        text = self._read("memory.oom_control" if self.version == "v1" else "memory.events")
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return int(self._read("memory.failcnt") or 0) if self.version == "v1" else 0

    def reset_peak(self):
        if self.version == "v1":
            self._write("memory.max_usage_in_bytes", "0", quiet=True)

    def peak(self):
        text = self._read("memory.max_usage_in_bytes" if self.version == "v1" else "memory.peak").strip()
        return int(text) if text.isdigit() else None

    def join(self):
        """Move the calling process (a test's init) into the cgroup; its children follow."""
        self._write("cgroup.procs", "0")

    def remove(self):
        if self.parent_fd >= 0:
            try:
                os.rmdir(self.name, dir_fd=self.parent_fd)
            except OSError:
                pass


# --------------------------------------------------------------------------- minimal root


def _minimal_root(uid):
    """pivot_root into a fresh read-only tmpfs holding only what Python needs.

    Runs in the zygote's private mount namespace. The interpreter, the
    entries of ``sys.path`` (stdlib, its zip, lib-dynload) and any library
    the interpreter has mapped from outside the system library directories
    (a pyenv ``libpython``) are bound read-only at their own paths; the
    stdlib's ``site-packages`` is covered by an empty directory.
    """
    new = "/tmp"  # a tmpfs mounted over /tmp in OUR namespace only; it becomes /
    _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=755")
    system_libs = []
    for path in ("/lib", "/lib32", "/lib64", "/libx32", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32"):
        if os.path.islink(path):
            _mkdirs(new + os.path.dirname(path))
            os.symlink(os.readlink(path), new + path)
        elif os.path.isdir(path):
            system_libs.append(path)
    files, dirs = set(), set(system_libs)
    files.add(os.path.realpath(sys.executable))
    for entry in sys.path:
        if entry and os.path.exists(entry):
            (dirs if os.path.isdir(entry) else files).add(os.path.realpath(entry))
    with open("/proc/self/maps") as fh:
        for line in fh:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/") and ".so" in parts[5]:
                real = os.path.realpath(parts[5].strip())
                if not any(real.startswith(d + "/") for d in system_libs) and os.path.isfile(real):
                    files.add(real)
    if os.path.isfile("/etc/ld.so.cache"):
        files.add("/etc/ld.so.cache")
    # sys.executable may be a symlink chain (python3 -> python3.11): keep the name it has.
    if os.path.realpath(sys.executable) != sys.executable and os.path.isabs(sys.executable):
        _mkdirs(new + os.path.dirname(sys.executable))
        if not os.path.lexists(new + sys.executable):
            os.symlink(os.path.realpath(sys.executable), new + sys.executable)
    for src in sorted(dirs):
        if any(src.startswith(d + "/") for d in dirs):
            continue  # inside another bound directory
        _mkdirs(new + src)
        _bind_ro(src, new + src)
        site = os.path.join(src, "site-packages")
        if os.path.basename(src).startswith("python") and os.path.isdir(site):
            _mount("tmpfs", new + site, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4k,mode=555")
    for src in sorted(files):
        if os.path.lexists(new + src):
            continue  # already inside a bound directory
        _mkdirs(new + os.path.dirname(src))
        with open(new + src, "w"):
            pass
        _bind_ro(src, new + src)
    # /dev: a few harmless character devices, bound from the host's.
    _mkdirs(new + "/dev")
    _mount("tmpfs", new + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
    for name in ("null", "zero", "full", "random", "urandom"):
        if os.path.exists("/dev/" + name):
            with open(f"{new}/dev/{name}", "w"):
                pass
            _mount("/dev/" + name, f"{new}/dev/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{new}/dev/{name}")
    os.mkdir(new + "/dev/shm")
    for path in ("/proc", "/tmp", WORKDIR, "/etc", "/.old"):
        _mkdirs(new + path)
    with open(new + "/etc/passwd", "w") as fh:
        fh.write(f"root:x:0:0::/:/nonexistent\nsandbox:x:{uid}:{uid}::{WORKDIR}:/nonexistent\n")
    with open(new + "/etc/group", "w") as fh:
        fh.write(f"root:x:0:\nsandbox:x:{uid}:\n")
    _check(_libc.syscall(155 if os.uname().machine == "x86_64" else 41, new.encode(), (new + "/.old").encode()),
           "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old", MNT_DETACH), "umount old root")
    os.rmdir("/.old")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return sorted(dirs | files)


def _mkdirs(path):
    os.makedirs(path, mode=0o755, exist_ok=True)


def _bind_ro(src, dst):
    _mount(src, dst, None, MS_BIND)
    _mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


# --------------------------------------------------------------------------- zygote


class CandidateJob:
    """What a freshly forked candidate carries up the stack to the top of this script."""

    def __init__(self, req, code, args, setup_w, workdir):
        self.req, self.code, self.args, self.setup_w, self.workdir = req, code, args, setup_w, workdir


class Zygote:
    def __init__(self, sock):
        self.sock = sock
        self.uid = self.gid = None
        self.isolation = "basic"
        # Spawned with an empty environment; Python's C-locale coercion may add LC_CTYPE.
        inherited = sorted(set(os.environ) - {"LC_CTYPE"})
        self.layers = {"environment": "empty" if not inherited else None}
        self.degraded = [] if not inherited else [f"environment: inherited {', '.join(inherited)}"]
        self.cgroup = None
        self.seccomp = None
        # /proc as the zygote sees it (the host's PID namespace), kept open
        # across pivot_root to watch a test's CPU use (see _wait).
        self.proc_fd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
        # glibc reserves 64 MB of address space per malloc arena (up to 8 per
        # core): cap the arenas so that threads cost their stacks, not 64 MB each.
        _libc.mallopt(M_ARENA_MAX, 2)
        if os.geteuid() != 0:
            self.layers["namespaces"] = None
            self.degraded.append("namespaces: not running as root (no PID, network or mount isolation; "
                                 "a Python-level socket block only)")
        else:
            try:
                _check(_libc.unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWNS | CLONE_NEWUTS),
                       "unshare(net, ipc, uts, mnt)")
                # Private first, or every mount below would propagate to the host.
                _mount(None, "/", None, MS_REC | MS_PRIVATE)
                _libc.sethostname(b"sandbox", 7)
                self.pidns_fd = os.open("/proc/self/ns/pid", os.O_RDONLY)
                # A uid of our own (unique among live zygotes: derived from our pid),
                # so RLIMIT_NPROC is a per-sandbox budget and no other file is ours.
                self.uid = self.gid = 200000 + os.getpid()
                self.isolation = "namespaces"
                self.layers["namespaces"] = "pid,net,ipc,uts,mount"
            except OSError as exc:
                self.layers["namespaces"] = None
                self.degraded.append(f"namespaces: {exc}")
        try:
            self.cgroup = MemoryCgroup()
            self.layers["cgroup"] = f"memory {self.cgroup.version}"
        except Exception as exc:  # unreadable /proc, odd layouts: degrade, never die
            self.cgroup = None
            self.layers["cgroup"] = None
            self.degraded.append(f"memory cgroup: {exc} (per-process address-space cap only)")
        self.layers["root"] = "host"
        if self.isolation != "namespaces":
            self.degraded.append("minimal root: needs a mount namespace (host filesystem visible under permissions)")
        else:
            try:
                _minimal_root(self.uid)
                self.layers["root"] = "minimal"
            except Exception as exc:
                self.degraded.append(f"minimal root: {exc} (host filesystem visible under permissions)")
        try:
            buf, prog = _seccomp_program()
        except Exception as exc:
            buf, prog = None, repr(exc)
        if buf is not None:
            # Probe it in a throwaway child: a kernel without seccomp must
            # degrade this layer here, not fail every test's setup.
            pid = os.fork()
            if pid == 0:
                ok = (_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                      and _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) == 0
                      and _libc.unshare(CLONE_NEWUTS) != 0)
                os._exit(0 if ok else 1)
            if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
                buf, prog = None, "the kernel refused the filter (or it did not block unshare)"
        if buf is None:
            self.layers["seccomp"] = None
            self.degraded.append(f"seccomp: {prog}")
        else:
            self.seccomp = (buf, prog)
            self.layers["seccomp"] = "deny-list"

    # ------------------------------------------------------------------ loop
    def serve(self):
        """Answer requests until EOF (returns None), or, in a freshly forked
        candidate, return its ``CandidateJob`` so it runs at the top level."""
        hello = {"isolation": self.isolation, "uid": self.uid, "pid": os.getpid(), "layers": self.layers,
                 "degraded": self.degraded, "cgroup_path": self.cgroup.path if self.cgroup else None}
        self.sock.send(json.dumps(hello).encode())
        job = None
        try:
            while True:
                try:
                    msg, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, N_FDS)
                except OSError:
                    return None
                if not msg:
                    for fd in fds:
                        os.close(fd)
                    return None
                header = None
                try:
                    if len(fds) != N_FDS:
                        raise RuntimeError(f"expected {N_FDS} fds, got {len(fds)}")
                    header = self.run(json.loads(msg), fds)
                except Exception as exc:  # the sandbox failed, not the candidate
                    header = {"status": "sandbox_error", "detail": repr(exc)}
                if isinstance(header, CandidateJob):
                    job = header  # the fds are already where the candidate needs them
                    return job
                for fd in fds:
                    os.close(fd)
                self.sock.send(json.dumps(header).encode())
        finally:
            if self.cgroup is not None and job is None:
                self.cgroup.remove()

    def run(self, req, fds):
        status_r, status_w = os.pipe()
        try:
            wall_limit = float(req["wall_limit_s"])
            oom_before = 0
            if self.cgroup is not None:
                self.cgroup.set_limit(int(req["memory_limit_mb"]) << 20)
                self.cgroup.reset_peak()
                oom_before = self.cgroup.oom_kills()
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
                child_w, status_r, status_w = status_w, -1, -1  # ours now: the finally below must not close them
                return self._init(req, fds, child_w)  # returns only in the candidate
            os.close(status_w)
            status_w = -1
            timed_out = not self._wait(pid, wall_limit, started, float(req["cpu_limit_s"]))
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
            header = {"wall_s": round(wall, 4)}
            if self.cgroup is not None:
                header["oom_killed"] = self.cgroup.oom_kills() > oom_before
                header["memory_peak_bytes"] = self.cgroup.peak()
            if timed_out:
                header["status"] = "wall_timeout"
            elif not raw:
                code = os.waitstatus_to_exitcode(init_status)
                header.update(status="sandbox_error", detail=f"sandbox init exited with {code} without a report")
            else:
                header.update(json.loads(raw))
            return header
        finally:
            for fd in (status_r, status_w):
                if fd >= 0:
                    os.close(fd)

    def _wait(self, pid, wall_limit, started, cpu_budget):
        """Wait for init; False when the wall clock ran out.

        Past ``wall_limit`` the test goes on only while its processes keep
        using CPU (at least a clock tick each second: a sleeper or a blocked
        program stops here, a program starved by other work on the machine
        does not), up to ``WALL_STRETCH`` times the limit, and only while
        all its processes together have used less than ``cpu_budget`` (a
        fork bomb's spinners each stay under the per-process CPU rlimit, but
        not under this). The CPU limit itself is the rlimit's, exact
        whatever the load.
        """
        pidfd = os.pidfd_open(pid)
        try:
            if _poll(pidfd, wall_limit):
                return True
            cpu = self._tree_cpu(pid)
            while time.monotonic() - started < WALL_STRETCH * wall_limit:
                if _poll(pidfd, 1.0):
                    return True
                now_cpu = self._tree_cpu(pid)
                if now_cpu - cpu < 1 / CLOCK_TICKS or now_cpu >= cpu_budget:
                    return False
                cpu = now_cpu
            return False
        finally:
            os.close(pidfd)

    def _tree_cpu(self, pid):
        """CPU seconds of ``pid`` and every live descendant (plus what they reaped),
        read from the /proc opened before pivot_root; 0 where it cannot be read."""
        total, todo, seen = 0, [pid], set()
        while todo and len(seen) < 4096:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            try:
                fd = os.open(f"{p}/stat", os.O_RDONLY, dir_fd=self.proc_fd)
                try:
                    fields = os.read(fd, 4096).rsplit(b")", 1)[1].split()
                finally:
                    os.close(fd)
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
                fd = os.open(f"{p}/task", os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.proc_fd)
                try:
                    tids = os.listdir(fd)
                finally:
                    os.close(fd)
                for tid in tids:
                    fd = os.open(f"{p}/task/{tid}/children", os.O_RDONLY, dir_fd=self.proc_fd)
                    try:
                        todo += [int(c) for c in os.read(fd, 1 << 16).split()]
                    finally:
                        os.close(fd)
            except (OSError, ValueError, IndexError):
                continue
        return total / CLOCK_TICKS

    # ------------------------------------------------------------------ init
    def _init(self, req, fds, status_w):
        """PID 1 of the test's namespace: prepare the filesystem view, fork the
        candidate, reap it, report, exit (taking every left-over with it).
        Returns only in the forked candidate, with its ``CandidateJob``."""
        report = {"status": "sandbox_error", "detail": "init failed"}
        try:
            try:
                self.sock.close()
                _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if self.isolation == "namespaces":
                    # A copy of the zygote's mount view, so the mounts below vanish with this test.
                    _check(_libc.unshare(CLONE_NEWNS), "unshare(mount)")
                    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                    # nr_inodes: inodes are kernel memory the memory cgroup may not count.
                    size = f"size={int(req['tmpfs_mb'])}m,nr_inodes=16384,mode=1777"
                    for path in ("/tmp", "/dev/shm", WORKDIR):
                        if os.path.isdir(path):
                            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, size)
                    workdir = WORKDIR if os.path.isdir(WORKDIR) else "/tmp"
                    if workdir == WORKDIR:
                        os.chown(WORKDIR, self.uid, self.gid)
                else:
                    import tempfile

                    workdir = tempfile.mkdtemp(prefix="datagen-sbx-")
                if self.cgroup is not None:
                    self.cgroup.join()
                setup_r, setup_w = os.pipe()
                child = os.fork()
            except BaseException as exc:
                report = {"status": "sandbox_error", "detail": f"init: {exc!r}"}
                raise
            if child == 0:
                os.close(status_w)
                os.close(setup_r)
                # Never returns on failure; on success the candidate goes up to the top level.
                return self._candidate(req, fds, workdir, setup_w)
            os.close(setup_w)
            while True:
                # As PID 1 we also inherit orphans; reap until the candidate is.
                pid, status, usage = os.wait4(-1, 0)
                if pid == child:
                    break
            cpu = usage.ru_utime + usage.ru_stime
            if self.isolation == "namespaces":
                # The program is over: end what it left behind now and reap it
                # all, so the CPU time below counts every process of the test
                # (work pushed into orphaned children included), not just
                # what the main process waited for.
                try:
                    os.kill(-1, signal.SIGKILL)  # every process of this PID namespace but us
                except OSError:
                    pass
                while True:
                    try:
                        os.wait4(-1, 0)
                    except ChildProcessError:
                        break
                everything = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = everything.ru_utime + everything.ru_stime
            setup_error = os.read(setup_r, 4096)
            if setup_error:
                report = {"status": "sandbox_error",
                          "detail": f"candidate setup: {setup_error.decode(errors='replace')}"}
            else:
                report = {
                    "status": "exited" if os.WIFEXITED(status) else "signaled",
                    "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                    "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                    "cpu_s": round(cpu, 4),
                    "maxrss_kb": usage.ru_maxrss,
                }
            if self.isolation != "namespaces":
                import shutil

                shutil.rmtree(workdir, ignore_errors=True)
        except BaseException as exc:
            if report.get("detail") == "init failed":
                report = {"status": "sandbox_error", "detail": f"init: {exc!r}"}
        try:
            os.write(status_w, json.dumps(report).encode())
        finally:
            os._exit(0)

    def _candidate(self, req, fds, workdir, setup_w):
        """Set up the fresh child that runs the candidate's code; return its job.

        A failure before the code starts is the sandbox's, not the
        candidate's: it is written to ``setup_w`` (closed just before the code
        runs, so the code cannot forge one) and the child exits 120.
        """
        try:
            os.setsid()
            code_fd, stdin_fd, args_fd, stdout_fd, stderr_fd, result_fd = fds
            code = _read_all(code_fd)
            args = _read_all(args_fd)
            memory = int(req["memory_limit_mb"]) << 20
            with open("/proc/self/statm") as fh:
                base = int(fh.read().split()[0]) * PAGE
            cpu = int(req["cpu_limit_s"])
            # With a memory cgroup counting every thread and child, the
            # address-space cap is only a backstop against absurd single
            # allocations; without one it is the per-process limit.
            address_space = base + (max(4 * memory, memory + (1 << 30)) if self.cgroup else memory)
            limits = [
                (resource.RLIMIT_CPU, (cpu, cpu + 1)),
                (resource.RLIMIT_AS, (address_space, address_space)),
                (resource.RLIMIT_FSIZE, (int(req["output_limit_bytes"]),) * 2),
                (resource.RLIMIT_NOFILE, (64, 64)),
                (resource.RLIMIT_CORE, (0, 0)),
            ]
            if self.uid is not None:
                limits.append((resource.RLIMIT_NPROC, (int(req["nproc"]),) * 2))
            for which, value in limits:
                resource.setrlimit(which, value)
            for target, fd in ((0, stdin_fd), (1, stdout_fd), (2, stderr_fd), (3, result_fd)):
                os.dup2(fd, target)
            os.closerange(4, setup_w)
            os.closerange(setup_w + 1, 1 << 16)
            if self.uid is not None:
                os.setgroups([])
                os.setgid(self.gid)
                os.setuid(self.uid)
            # setuid cleared "dumpable", which makes /proc/self root's: give the
            # program its own /proc entries back (ptrace stays blocked by seccomp).
            _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
            _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
            if self.seccomp is not None:
                _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(self.seccomp[1]), 0, 0),
                       "seccomp")
            os.chdir(workdir)
            os.environ.clear()
            os.environ.update(PATH=os.path.dirname(sys.executable) + ":/usr/bin:/bin", HOME=workdir,
                              LANG="C.UTF-8", PYTHONIOENCODING="utf-8")
            if self.isolation != "namespaces":
                _block_sockets()
            return CandidateJob(req, code, args, setup_w, workdir)
        except BaseException as exc:
            try:
                os.write(setup_w, repr(exc).encode()[:4000])
            finally:
                os._exit(120)


def _read_all(fd):
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0) if size else b""


def _poll(fd, timeout):
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))


def _killpg(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _block_sockets():
    def refuse(*args, **kwargs):
        raise PermissionError("network access is disabled in the sandbox")

    socket.socket.connect = refuse  # weak: bypassable via ctypes or os.exec; see module docstring
    socket.getaddrinfo = refuse
    socket.create_connection = refuse


# --------------------------------------------------------------------------- the candidate, at top level


def _prepare_candidate(job):
    """Make this process look like ``python solution.py`` started in the work dir."""
    import io

    os.close(job.setup_w)
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8",
                                 errors="replace")
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8",
                                  errors="backslashreplace")
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                                  write_through=True)
    sys.argv = ["solution.py"]
    sys.path.insert(0, job.workdir)
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    main.__file__ = "solution.py"
    sys.modules["__main__"] = main

    def excepthook(kind, value, tb, _default=sys.__excepthook__, _write=os.write, _frame=sys._getframe):
        # An uncaught exception reached the top: report its type (a crash is
        # runtime_error even if an atexit handler then exits 0; MemoryError is
        # memory). Only when the interpreter itself calls us, with no Python
        # caller: a program logging a handled error through the hook has not crashed.
        try:
            _frame(1)
        except ValueError:
            try:
                _write(3, json.dumps({"exception": kind.__name__}).encode())
            except BaseException:
                pass
        _default(kind, value, tb)

    sys.excepthook = excepthook
    return main.__dict__


def _report_value(value):
    try:
        payload = json.dumps({"value": value}, allow_nan=True)
    except (TypeError, ValueError, RecursionError) as exc:
        payload = json.dumps({"unserialisable": f"{type(value).__name__}: {type(exc).__name__}"})
    os.ftruncate(3, 0)
    os.pwrite(3, payload.encode(), 0)


def _find_callable(namespace, name):
    fn = namespace.get(name)
    if callable(fn):
        return fn
    solution = namespace.get("Solution")
    if isinstance(solution, type) and hasattr(solution, name):
        return getattr(solution(), name)
    raise NameError(f"function {name!r} is not defined (nor as a method of class Solution)")


def _finish():
    """The end of a program that ran to completion: what finalization would do
    that a program can observe, then exit 0. (Anything that raises here takes
    the interpreter's own exit path instead.)"""
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()  # waits for non-daemon threads, as the interpreter does at exit
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    # We die with the harness through our socket: when it exits (or is
    # killed) the socket closes and serve() returns at EOF. Not
    # PR_SET_PDEATHSIG: that fires when the *thread* that started us exits,
    # and zygotes are started lazily from short-lived worker threads.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _sock = socket.socket(fileno=os.dup(0))
    _devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(_devnull, 0)
    os.dup2(_devnull, 1)
    os.close(_devnull)
    _job = Zygote(_sock).serve()
    if _job is None:
        sys.exit(0)
    # From here on this is the candidate, at the top level of the script: an
    # exception it raises is uncaught, exactly as in ``python solution.py``.
    _globals = _prepare_candidate(_job)
    exec(compile(_job.code.decode("utf-8", "surrogateescape"), "solution.py", "exec"), _globals)
    if _job.req["mode"] == "call":
        _report_value(_find_callable(_globals, _job.req["fn_name"])(*json.loads(_job.args)))
    _finish()
