"""``datagen filter`` end to end, as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq

from datagen.files import read_records, write_records

GOOD = "<think>We add two and three. Two plus three is five, which we can check by counting.</think>The answer is 5."


def rows():
    base = {"source": "t", "domain": "math", "prompt": "What is 2 + 3?", "answer": "5"}
    return [
        {**base, "problem_id": "a", "sample_id": "a:0", "completion": GOOD},
        {**base, "problem_id": "a", "sample_id": "a:1", "completion": "<think>We add two and three and", "finish_reason": "length"},
        {**base, "problem_id": "b", "sample_id": "b:0", "prompt": "what is 2 + 3?", "completion": GOOD},
    ]


def datagen(*args):
    return subprocess.run([sys.executable, "-m", "datagen", "filter", *args], capture_output=True, text=True, timeout=120, check=False)


def test_cli_jsonl_every_row_comes_out_with_drop(tmp_path):
    src, out, stats = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "stats.json"
    write_records(src, rows())
    proc = datagen(str(src), "--output", str(out), "--stats", str(stats), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    got = read_records(out)
    assert [r["drop"] for r in got] == [None, "length:truncated", "dedup:exact_duplicate"]
    assert got[0]["reasoning"].startswith("We add two") and got[0]["summary"] == "The answer is 5."
    assert got[0]["language"] == "en"  # the target language defaults to en
    assert json.loads(stats.read_text())["dropped"] == {"dedup/exact_duplicate": 1, "length/truncated": 1}
    assert "exact_duplicate" in proc.stdout and "truncated" in proc.stdout


def test_cli_parquet_kept_only_and_filter_choice(tmp_path):
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    write_records(src, [{**r, "language": "en"} for r in rows()])  # Parquet input must fit the record
    proc = datagen(str(src), "-o", str(out), "--filter", "length", "--kept-only", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(out)
    assert table.column("sample_id").to_pylist() == ["a:0", "b:0"]
    assert table.column("drop").to_pylist() == [None, None]


def test_cli_config_yaml_and_unknown_key(tmp_path):
    src, out, cfg = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "f.yaml"
    write_records(src, rows())
    cfg.write_text("dedup:\n  enabled: false\nlength:\n  drop_truncated: false\n")
    proc = datagen(str(src), "-o", str(out), "--config", str(cfg), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert [r["drop"] for r in read_records(out)] == [None, "answer:missing_answer", None]
    cfg.write_text("dedup:\n  treshold: 0.5\n")
    proc = datagen(str(src), "-o", str(out), "--config", str(cfg))
    assert proc.returncode == 2 and "treshold" in proc.stderr


def test_cli_unknown_filter_is_a_user_error(tmp_path):
    src = tmp_path / "in.jsonl"
    write_records(src, rows())
    proc = datagen(str(src), "-o", str(tmp_path / "o.jsonl"), "--filter", "langauge")
    assert proc.returncode == 2 and "langauge" in proc.stderr
