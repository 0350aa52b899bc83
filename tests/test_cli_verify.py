"""``datagen verify``: files in and out by extension, verdicts added, errors per row."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from datagen.cli.main import main
from datagen.files import read_records, write_records

TESTS = json.dumps({"kind": "stdin_stdout", "time_limit_s": 1, "cases": [{"input": "2 3\n", "output": "5\n"}]})
GOOD = "<think>add</think>\n```python\na, b = map(int, input().split())\nprint(a + b)\n```"


def row(i, **kw):
    base = {"problem_id": f"p{i}", "sample_id": f"p{i}:0", "source": "t", "domain": "code", "language": "en",
            "prompt": "add two numbers", "extra_col": i}
    base.update(kw)
    return base


ROWS = [
    row(0, tests=TESTS, completion=GOOD),
    row(1, tests=TESTS, completion=GOOD.replace("a + b", "a * b")),
    row(2, tests="{not json", completion=GOOD),
    row(3, completion=GOOD),
    row(4, tests=TESTS),
]


def test_code_jsonl_to_parquet_keeps_fields_and_adds_verdicts(tmp_path, capsys):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.parquet"
    write_records(src, ROWS)
    assert main(["verify", str(src), "--verifier", "code", "--output", str(out), "--workers", "2"]) == 0
    got = read_records(out)
    assert [r["extra_col"] for r in got] == [0, 1, 2, 3, 4]
    outcomes = [r["verdicts"]["code"]["outcome"] for r in got]
    assert outcomes == ["correct", "incorrect", "error", "error", "error"]
    details = [r["verdicts"]["code"]["detail"] for r in got]
    assert details[2].startswith("tests is not valid JSON")
    assert details[3] == "missing tests (column 'tests')"
    assert details[4] == "missing completion"
    assert isinstance(pq.read_table(out).column("verdicts")[0].as_py(), str)  # JSON string in Parquet
    table = capsys.readouterr().out
    assert "correct" in table and "error" in table and "3" in table


def test_format_parquet_to_jsonl_keeps_earlier_verdicts(tmp_path):
    src, mid, out = tmp_path / "in.jsonl", tmp_path / "mid.parquet", tmp_path / "out.jsonl"
    write_records(src, ROWS[:2])
    assert main(["verify", str(src), "--verifier", "code", "--output", str(mid), "--no-progress"]) == 0
    assert main(["verify", str(mid), "--verifier", "format", "--output", str(out), "--no-progress"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert isinstance(lines[0]["verdicts"], dict)
    assert set(lines[0]["verdicts"]) == {"code", "format"}
    assert lines[0]["verdicts"]["format"] == {"outcome": "correct", "score": 1.0, "detail": "ok"}


def test_math_missing_answer_is_error(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_records(src, [row(0, domain="math", completion="<think>r</think>\\boxed{5}"),
                        row(1, domain="math", answer="5", completion="<think>r</think>\\boxed{5}")])
    assert main(["verify", str(src), "--verifier", "math", "--output", str(out), "--no-progress"]) == 0
    got = read_records(out)
    assert got[0]["verdicts"]["math"] == {"outcome": "error", "score": None,
                                          "detail": "missing gold answer (column 'answer')"}
    assert got[1]["verdicts"]["math"]["outcome"] == "correct"


@pytest.mark.parametrize("argv, message", [
    (["--verifier", "nope"], "unknown verifier 'nope'"),
    (["--verifier", "code", "--workers", "0"], "--workers must be >= 1"),
])
def test_user_errors(tmp_path, capsys, argv, message):
    src = tmp_path / "in.jsonl"
    write_records(src, ROWS[:1])
    assert main(["verify", str(src), "--output", str(tmp_path / "o.jsonl"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_bad_output_extension(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    write_records(src, ROWS[:1])
    assert main(["verify", str(src), "--verifier", "format", "--output", str(tmp_path / "o.csv")]) == 2
    assert "unsupported extension" in capsys.readouterr().err


def test_runner_stats():
    from datagen.verify.runner import verify_rows

    rows = [dict(r) for r in ROWS]
    rows, stats = verify_rows(rows, "format")
    assert stats == {"outcomes": {"format": {"correct": 4, "error": 1}}}
