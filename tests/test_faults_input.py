"""Bad input never stops a file (issue 12): a byte that is not UTF-8, a malformed
line and a wrong type are each quarantined with file, line and reason on
import, verify and filter, while every good row comes through; empty input and
unknown domains fail loudly; ``datagen filter`` and ``datagen verify`` stream
within a fixed memory bound. Everything runs the real ``datagen`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

DATAGEN = str(Path(sys.executable).parent / "datagen")
GOOD = "<think>We add two and three. Two plus three is five, which we can check by counting.</think>The answer is 5."


def _good(i: int) -> dict:
    return {"problem_id": f"p{i}", "sample_id": f"p{i}:0", "source": "t", "domain": "math", "language": "en",
            "prompt": f"What is {i} + 5?", "answer": str(i + 5), "completion": GOOD}


def _bad_file(path: Path) -> Path:
    """Good rows on lines 1, 3, 5, 7; a non-UTF-8 byte on line 2, a malformed line 4,
    a wrong type (an integer completion) on line 6."""
    lines = [
        json.dumps(_good(1)).encode(),
        json.dumps(_good(2)).encode().replace(b"What is", b"What\xff is"),
        json.dumps(_good(3)).encode(),
        b'{"problem_id": "p4", "prompt": "What is 4 + 5?"',
        json.dumps(_good(5)).encode(),
        json.dumps({**_good(6), "completion": 42}).encode(),
        json.dumps(_good(7)).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _run(*args: str, cwd: Path, check_rc: int | None = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([DATAGEN, *args], check=False, capture_output=True, text=True, timeout=300, cwd=cwd)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


EXPECTED_REASONS = [(2, "invalid_utf8"), (4, "invalid_json"), (6, "wrong_type")]


def test_filter_quarantines_each_bad_row_and_keeps_every_good_one(tmp_path):
    src = _bad_file(tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    proc = _run("filter", str(src), "-o", str(out), "--no-progress", "--filter", "length", cwd=tmp_path)
    assert [r["problem_id"] for r in _jsonl(out)] == ["p1", "p3", "p5", "p7"]
    rejected = _jsonl(tmp_path / "out.jsonl.rejected.jsonl")
    assert [(r["line"], r["reason"]) for r in rejected] == EXPECTED_REASONS
    assert {r["file"] for r in rejected} == {str(src)}
    col = src.read_bytes().splitlines()[1].index(b"\xff") + 1
    assert rejected[0]["detail"] == f"byte 0xff at column {col} is not UTF-8; re-encode the file as UTF-8"
    assert rejected[1]["detail"] == "Expecting ',' delimiter at column 48"
    assert rejected[2]["detail"] == "column 'completion' must be str, got int"
    assert "quarantined 3 bad rows (file, line, reason)" in proc.stdout


def test_verify_quarantines_each_bad_row_and_keeps_every_good_one(tmp_path):
    src = _bad_file(tmp_path / "in.jsonl")
    out = tmp_path / "out.parquet"
    _run("verify", str(src), "--verifier", "format", "--output", str(out), "--no-progress", cwd=tmp_path)
    table = pq.read_table(out)
    assert table.column("problem_id").to_pylist() == ["p1", "p3", "p5", "p7"]
    assert all(json.loads(v)["format"]["outcome"] == "correct" for v in table.column("verdicts").to_pylist())
    rejected = _jsonl(tmp_path / "out.parquet.rejected.jsonl")
    assert [(r["line"], r["reason"]) for r in rejected] == EXPECTED_REASONS


def test_import_quarantines_bad_rows_and_head_rejected_shows_them(tmp_path):
    src = _bad_file(tmp_path / "in.jsonl")
    root = str(tmp_path / "store")
    proc = _run("datasets", "import", str(src), "--name", "probs", "--root", root, "--json", cwd=tmp_path)
    summary = json.loads(proc.stdout)
    assert summary["rows"] == 4 and summary["rejected"] == 3
    assert summary["rejected_by_reason"] == {"bad_completion": 1, "invalid_json": 1, "invalid_utf8": 1}
    version = summary["version"]
    proc = _run("datasets", "head", f"probs@{version}", "--rejected", "--json", "--root", root, cwd=tmp_path)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["row"], r["reason"], r["file"]) for r in rows] == [(2, "invalid_utf8", str(src)),
                                                                   (4, "invalid_json", str(src)),
                                                                   (6, "bad_completion", str(src))]
    col = src.read_bytes().splitlines()[1].index(b"\xff") + 1
    assert rows[0]["detail"] == f"invalid_utf8: byte 0xff at column {col} is not UTF-8; re-encode the file as UTF-8"
    proc = _run("datasets", "show", f"probs@{version}", "--root", root, cwd=tmp_path)
    assert "rejected/invalid_utf8" in proc.stdout and "rejected/bad_completion" in proc.stdout
    assert "--rejected" in proc.stdout


def test_import_refuses_unknown_domains_naming_the_known_ones(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps({"prompt": "Balance H2 + O2", "domain": "chemistry"}) + "\n"
                   + json.dumps({"prompt": "1+1?", "answer": "2"}) + "\n")
    root = str(tmp_path / "store")
    proc = _run("datasets", "import", str(src), "--name", "p", "--root", root, "--json", cwd=tmp_path)
    assert json.loads(proc.stdout)["rejected_by_reason"] == {"unknown_domain": 1}
    proc = _run("datasets", "head", "p", "--rejected", "--json", "--root", root, cwd=tmp_path)
    assert json.loads(proc.stdout.splitlines()[0])["detail"] == (
        "unknown_domain: domain 'chemistry' is not one of math, code, general; set the row's domain to one of them"
    )


def test_empty_input_fails_unless_allowed(tmp_path):
    src = tmp_path / "empty.jsonl"
    src.write_text("")
    root = str(tmp_path / "store")
    proc = _run("datasets", "import", str(src), "--name", "e", "--root", root, cwd=tmp_path, check_rc=2)
    assert proc.stderr == (
        f"datagen datasets: error: {src}: nothing to import (0 input rows, 0 quarantined: none); "
        "fix the input, or pass --allow-empty to commit an empty version\n"
    )
    assert _run("datasets", "ls", "--json", "--root", root, cwd=tmp_path).stdout.strip() == "[]"
    _run("datasets", "import", str(src), "--name", "e", "--root", root, "--allow-empty", cwd=tmp_path)
    proc = _run("filter", str(src), "-o", str(tmp_path / "o.jsonl"), cwd=tmp_path, check_rc=2)
    assert proc.stderr == (
        f"datagen filter: error: {src}: no usable rows (0 quarantined); fix the input, "
        "or pass --allow-empty to write an empty output\n"
    )
    proc = _run("verify", str(src), "--verifier", "format", "--output", str(tmp_path / "o.jsonl"), cwd=tmp_path,
                check_rc=2)
    assert proc.stderr.endswith("no usable rows (0 quarantined); fix the input, "
                                "or pass --allow-empty to write an empty output\n")


def test_ls_json_into_a_closed_pipe_is_quiet(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps({"prompt": "1+1?", "answer": "2"}) + "\n")
    root = str(tmp_path / "store")
    _run("datasets", "import", str(src), "--name", "p", "--root", root, cwd=tmp_path)
    # `true` exits at once: every write of ours meets a pipe with no reader.
    script = f"'{DATAGEN}' datasets ls --json --root '{root}' 2>err | true; echo ${{PIPESTATUS[0]}}"
    proc = subprocess.run(["bash", "-c", script], check=False, capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert (tmp_path / "err").read_text() == ""
    assert proc.stdout.strip() == "141"


def _peak_rss_mb(args: list[str], cwd: Path) -> tuple[int, float]:
    """Run the command; (exit code, peak RSS in MB of that process alone).

    Read from the child's own ``VmHWM`` while it runs, not from ``wait4``'s ``ru_maxrss``: Linux
    carries the high-water mark across fork/vfork + exec, so a child of a large pytest worker would
    report the worker's RSS (seen in CI: the same 924 MB for 20k and 200k rows).
    """
    p = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kb = 0
    status = Path(f"/proc/{p.pid}/status")
    while p.poll() is None:
        try:
            hwm = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
            peak_kb = max(peak_kb, int(hwm.split()[1]))
        except (OSError, StopIteration, ValueError):
            pass  # exiting (or a zombie: no VmHWM line)
        time.sleep(0.02)
    p.communicate()
    return p.returncode, peak_kb / 1024


def _records(path: Path, n: int) -> Path:
    import random

    rnd = random.Random(0)
    words = ["the", "of", "and", "to", "in", "is", "we", "that", "for", "it", "as", "with", "be", "on", "by",
             "sum", "add", "two", "three", "five", "check", "count"]
    with open(path, "w") as fh:
        for i in range(n):
            p = i // 10
            body = " ".join(rnd.choice(words) for _ in range(60))
            fh.write(json.dumps({"problem_id": f"p{p}", "sample_id": f"p{p}:{i % 10}", "source": "t",
                                 "domain": "math", "language": "en", "prompt": f"Problem {p}: what is {p} + {p}?",
                                 "answer": str(2 * p), "completion": f"<think>{body}.</think>The answer is {2 * p}."})
                     + "\n")
    return path


#: The bound this test holds `datagen filter` to, whatever the file size (a 100 MB,
#: 200k-row file peaked at ~900 MB before streaming; ~230 MB after).
FILTER_RSS_BOUND_MB = 300


def test_filter_of_200k_rows_stays_within_a_fixed_memory_bound(tmp_path):
    small = _records(tmp_path / "small.jsonl", 20_000)
    big = _records(tmp_path / "big.jsonl", 200_000)
    peaks = {}
    for src in (small, big):
        rc, peaks[src.stem] = _peak_rss_mb([DATAGEN, "filter", str(src), "-o", str(tmp_path / f"{src.stem}.parquet"),
                                            "--no-progress", "--filter", "length", "--filter", "answer"], tmp_path)
        assert rc == 0
    assert pq.ParquetFile(tmp_path / "big.parquet").metadata.num_rows == 200_000
    assert peaks["big"] < FILTER_RSS_BOUND_MB, peaks
    assert peaks["big"] - peaks["small"] < 40, peaks  # 10x the rows, (almost) no more memory


def test_a_huge_row_is_quarantined_not_loaded(tmp_path):
    src = tmp_path / "in.jsonl"
    with open(src, "w") as fh:
        fh.write(json.dumps(_good(1)) + "\n")
        fh.write(json.dumps({**_good(2), "completion": "<think>" + "x" * 50_000_000 + "</think>5"}) + "\n")
        fh.write(json.dumps(_good(3)) + "\n")
    out = tmp_path / "out.jsonl"
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps(_good(1)) + "\n")
    rc, base = _peak_rss_mb([DATAGEN, "verify", str(small), "--verifier", "format", "--output",
                             str(tmp_path / "small-out.jsonl"), "--no-progress"], tmp_path)
    assert rc == 0
    rc, peak = _peak_rss_mb([DATAGEN, "verify", str(src), "--verifier", "format", "--output", str(out),
                             "--no-progress", "--max-row-bytes", "1000000"], tmp_path)
    assert rc == 0
    assert [r["problem_id"] for r in _jsonl(out)] == ["p1", "p3"]
    rejected = _jsonl(tmp_path / "out.jsonl.rejected.jsonl")
    assert [(r["line"], r["reason"]) for r in rejected] == [(2, "row_too_large")]
    size = len(src.read_bytes().splitlines(keepends=True)[1])
    assert rejected[0]["detail"] == (f"line is {size:,} bytes, over the 1,000,000-byte limit "
                                     "(raise --max-row-bytes to accept it)")
    assert peak - base < 20, (base, peak)  # the 50 MB line was never held in memory


REPO = Path(__file__).resolve().parents[1]


def test_pipeline_cpu_names_the_command_that_makes_its_model_before_any_stage(tmp_path):
    proc = _run("run", "pipeline", "--config", str(REPO / "configs" / "pipeline-cpu.yaml"), cwd=tmp_path,
                check_rc=2)
    assert proc.stderr == (
        "datagen run: error: generate.generation.backend.model: no model folder 'models/tiny'; make it first: "
        "python -c \"from datagen.tinymodel import save_tiny; save_tiny('models/tiny')\"\n"
    )
    assert not (tmp_path / "datasets").exists()  # nothing ran, nothing committed


def test_an_empty_selection_fails_unless_allowed(tmp_path):
    rows = [{"problem_id": f"p{p}", "sample_id": f"p{p}:0", "source": "t", "domain": "math", "language": "en",
             "prompt": f"What is {p}+{p}?", "answer": str(2 * p), "completion": "<think>hm</think>7",
             "accepted": False, "verdicts": {"math": {"outcome": "incorrect", "score": 0.0, "detail": ""}}}
            for p in range(3)]
    src = tmp_path / "f.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    root = str(tmp_path / "store")
    _run("datasets", "import", str(src), "--name", "filtered", "--root", root, cwd=tmp_path)
    env_free = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    proc = subprocess.run([DATAGEN, "run", "select", "--root", root], check=False, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=env_free)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("datagen run: error: empty result: selected@")
    assert last.endswith("has 0 rows; see the stage statistics above (rerun with --allow-empty to accept it)")
    assert "grpo-prompts@" in last
