"""Terminal tables that fit (issue 19): ``datagen datasets`` in a real
pseudo-terminal 80 columns wide, and piped.

Before: at 80 columns ``ls`` showed 3,200 rows as ``3,2``, folded stage and
tags one letter per line and cut version ids without an ellipsis; ``head``
without ``--columns`` became 17 slivers.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pyarrow as pa
import pytest

from datagen.store import Store

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _rows(n: int) -> pa.Table:
    ids = [f"p{i}" for i in range(n)]
    return pa.table({"problem_id": ids, "sample_id": ids, "source": ["s"] * n, "domain": ["math"] * n,
                     "language": ["en"] * n, "prompt": [f"Compute {i} + {i}, then explain why." for i in range(n)],
                     "completion": ["<think>long reasoning " * 5 + "</think>42"] * n, "score": [0.123456789] * n})


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tables") / "store")
    store = Store(root)
    for name, n, stage in [("reasoning-generations-verified", 3200, "verify-with-judge"),
                           ("sft-mix", 123_456, "mix"), ("problems", 7, "import")]:
        w = store.writer(name, stage=stage)
        w.write(_rows(n))
        m = w.commit(stats={"stage": {"rows": n, "seconds/length": 0.00022539700000834273}})
        store.tag(m.ref, "release-candidate-2026")
    return root


def _in_terminal(argv: list[str], columns: int = 80) -> str:
    """Run ``datagen ARGV`` with its stdout on a pseudo-terminal ``columns`` wide."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm"
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its terminal (fds 0-2); never return into pytest
        try:
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
            os.execve(sys.executable, [sys.executable, "-m", "datagen", *argv], env)
        finally:
            os._exit(127)
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    out = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r\n", "\n")
    assert os.waitstatus_to_exitcode(status) == 0, out
    return out


def test_ls_at_80_columns_shows_every_row_count_whole(root):
    out = _in_terminal(["datasets", "ls", "--root", root])
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, out
    for count in ("3,200", "123,456", "7"):
        assert re.search(rf"│\s*{count}\s*│", out), (count, out)
    store = Store(root)
    for name in store.datasets():
        (m,) = store.versions(name)
        assert m.id in out, (m.id, out)  # the id to copy is kept whole
    # what had to be cut says so
    assert "reasoning-generations-verified" not in out and "…" in out


def test_head_without_columns_fits_80_columns_one_record_at_a_time(root):
    out = _in_terminal(["datasets", "head", "sft-mix", "-n", "2", "--root", root])
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert "record 1 of 2" in out and "record 2 of 2" in out
    assert re.search(r"│ prompt\s+│ Compute 1 \+ 1, then explain why\.\s+│", out), out


def test_show_rounds_floats(root):
    out = _in_terminal(["datasets", "show", "problems", "--root", root])
    assert "0.000225 " in out and "0.00022539700000834273" not in out


def test_piped_output_is_plain_and_whole(root):
    out = subprocess.run([sys.executable, "-m", "datagen", "datasets", "ls", "--root", root],
                         capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "40"}).stdout
    lines = out.splitlines()
    assert lines[1].split("\t") == ["dataset", "version", "rows", "created", "stage", "tags"]
    store = Store(root)
    for name in store.datasets():
        (m,) = store.versions(name)
        (row,) = [line.split("\t") for line in lines if line.startswith(name + "\t")]
        assert row[1] == m.id and row[2] == f"{m.rows:,}" and row[5] == "latest,release-candidate-2026"
    assert "│" not in out and "…" not in out
