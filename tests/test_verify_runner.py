"""Per-sample isolation in ``verify_rows``: one sample never stops a run.

Two kinds of test: the runner's mechanics against a verifier written here to
fail on purpose (a real ``Verifier`` registered for the test, not a mock of
the real ones), and the real math, code and format verifiers — through
``verify_rows`` and through ``datagen verify`` — on files holding hostile
rows beside good ones.
"""

from __future__ import annotations

import json
import math

import pytest

from datagen.cli.main import main
from datagen.files import read_records, write_records
from datagen.records import OUTCOMES, verdict
from datagen.verify import runner
from datagen.verify.runner import Verifier, verify_rows

# ---------------------------------------------------------------- mechanics


def _picky_run(inputs, *, workers, on_done, **_):
    """Correct for every row, but raises on the whole call when any row says BOOM."""
    for x in inputs:
        if "BOOM" in x["completion"]:
            raise RecursionError("maximum recursion depth exceeded")
    on_done(len(inputs))
    return [verdict("correct", detail="ok") for _ in inputs]


@pytest.fixture
def picky(monkeypatch):
    monkeypatch.setitem(runner.VERIFIERS, "picky", Verifier(_picky_run, runner._prepare_format))
    return "picky"


def test_a_raising_row_is_isolated_and_counted(picky, monkeypatch):
    monkeypatch.setattr(runner, "CHUNK_ROWS", 4)
    rows = [{"completion": "BOOM" if i in (2, 9) else f"fine {i}"} for i in range(10)]
    rows, stats = verify_rows(rows, picky, progress=True)
    outcomes = [r["verdicts"][picky]["outcome"] for r in rows]
    assert outcomes == ["correct"] * 2 + ["error"] + ["correct"] * 6 + ["error"]
    assert rows[2]["verdicts"][picky] == {"outcome": "error", "score": None,
                                          "detail": "picky verifier failed: RecursionError: maximum recursion "
                                                    "depth exceeded"}
    assert stats == {"outcomes": {picky: {"correct": 8, "error": 2}}}


@pytest.mark.parametrize("returned, detail", [
    ([{"outcome": "correct", "score": 1.0}] * 2, "returned 2 verdicts for 1 rows"),
    (["correct"], "returned no valid verdict ('str')"),
    ([{"outcome": "great", "score": 1.0, "detail": ""}], "returned no valid verdict ('great')"),
    ([{"outcome": "correct", "score": float("nan"), "detail": ""}], "returned score nan for outcome correct"),
    ([{"outcome": "correct", "score": 7, "detail": ""}], "returned score 7 for outcome correct"),
    ([{"outcome": "correct", "score": True, "detail": ""}], "returned score True for outcome correct"),
])
def test_a_malformed_verdict_is_an_error(monkeypatch, returned, detail):
    def run(inputs, **_):
        return returned

    monkeypatch.setitem(runner.VERIFIERS, "bad", Verifier(run, runner._prepare_format))
    rows, stats = verify_rows([{"completion": "x"}], "bad")
    v = rows[0]["verdicts"]["bad"]
    assert v["outcome"] == "error" and v["score"] is None and detail in v["detail"]
    assert stats == {"outcomes": {"bad": {"error": 1}}}


def test_details_are_clipped_and_valid_unicode(monkeypatch):
    def run(inputs, **_):
        return [{"outcome": "incorrect", "score": 0.0, "detail": "\ud800" + "x" * 10_000},
                {"outcome": "incorrect", "score": 0, "detail": {"not": "text"}}]

    monkeypatch.setitem(runner.VERIFIERS, "noisy", Verifier(run, runner._prepare_format))
    rows, _ = verify_rows([{"completion": "a"}, {"completion": "b"}], "noisy")
    first, second = (r["verdicts"]["noisy"] for r in rows)
    assert first["detail"].startswith("\ufffd") and len(first["detail"]) <= runner.MAX_DETAIL_CHARS + 1
    assert second == {"outcome": "incorrect", "score": 0.0, "detail": "{'not': 'text'}"}


def test_a_row_that_cannot_be_read_is_its_own_error(monkeypatch):
    def prepare(row):
        if row["completion"] == "bad":
            raise OverflowError("int too large to convert to float")
        return {"completion": row["completion"]}

    monkeypatch.setitem(runner.VERIFIERS, "reader", Verifier(_picky_run, prepare))
    rows, _stats = verify_rows([{"completion": "ok"}, {"completion": "bad"}], "reader")
    assert [r["verdicts"]["reader"]["outcome"] for r in rows] == ["correct", "error"]
    assert "OverflowError" in rows[1]["verdicts"]["reader"]["detail"]


def test_unreadable_earlier_verdicts_are_replaced_and_counted():
    rows, stats = verify_rows([{"completion": "<think>r</think>5", "verdicts": "{not json"}], "format")
    assert rows[0]["verdicts"] == {"format": {"outcome": "correct", "score": 1.0, "detail": "ok"}}
    assert stats["unreadable_verdicts"] == 1


def test_bad_options_fail_before_any_row_is_judged():
    with pytest.raises(ValueError, match="min_reasoning_chars"):
        verify_rows([{"completion": "x"}], "format", min_reasoning_chars=-1)
    with pytest.raises(ValueError, match="judge_backend"):
        verify_rows([{"completion": "x", "answer": "5", "prompt": "p"}], "judge")
    with pytest.raises(KeyError, match="unknown verifier"):
        verify_rows([], "nope")


# ---------------------------------------------------------------- reading rows


@pytest.mark.parametrize("completion, answer, outcome", [
    ("<think>r</think>\\boxed{5}", 5, "correct"),           # integer gold as stored by many datasets
    ("<think>r</think>\\boxed{1/2}", 0.5, "correct"),
    ("<think>r</think>\\boxed{5}", True, "error"),
    ("<think>r</think>\\boxed{5}", {"value": 5}, "error"),
    ("<think>r</think>\\boxed{5}", math.inf, "error"),
    ("<think>r</think>\\boxed{5}", 10 ** 5000, "error"),
    ("<think>r</think>\\boxed{5}", None, "error"),
    ("<think>r</think>\\boxed{5}", "   ", "error"),
    (5, "5", "unparseable"),
    ({"content": "<think>r</think>\\boxed{5}"}, "5", "unparseable"),
    (["<think>r</think>\\boxed{5}"], "5", "unparseable"),
    (None, "5", "error"),
    ("", "5", "unparseable"),                                # the model said nothing: judged, not missing
], ids=lambda v: type(v).__name__)
def test_math_rows_of_every_type(completion, answer, outcome):
    rows, _ = verify_rows([{"completion": completion, "answer": answer}], "math", timeout_s=2)
    assert rows[0]["verdicts"]["math"]["outcome"] == outcome


@pytest.mark.parametrize("tests, outcome", [
    ([{"input": "", "output": "5\n"}], "error"),
    ("[1, 2]", "error"),
    ('{"kind": "stdin_stdout", "cases": [{"input": "", "output": ' + "1" * 5000 + "}]}", "error"),
    ("[" * 100_000 + "]" * 100_000, "error"),
    (42, "error"),
], ids=["list", "json-list", "huge-int", "deep", "int"])
def test_code_rows_with_unusable_tests(tests, outcome):
    rows, _ = verify_rows([{"completion": "<think>r</think>```python\nprint(5)\n```", "tests": tests}], "code")
    assert rows[0]["verdicts"]["code"]["outcome"] == outcome


def test_lone_surrogates_are_repaired_so_the_row_stays_writable(tmp_path):
    rows = [{"problem_id": "p", "sample_id": "p:0", "source": "t", "domain": "math", "language": "en",
             "prompt": "q\ud800", "answer": "5", "completion": "<think>r\udfff</think>\\boxed{5}",
             "extra": ["a\ud83d", "b"], "nested": {"k": "\udc80"}}]
    rows, stats = verify_rows(rows, "math")
    assert rows[0]["verdicts"]["math"]["outcome"] == "correct"
    assert stats["repaired_text"] == 1
    assert rows[0]["prompt"] == "q\ufffd" and rows[0]["extra"] == ["a\ufffd", "b"]
    assert rows[0]["nested"] == {"k": "\ufffd"}
    write_records(tmp_path / "o.parquet", rows)
    write_records(tmp_path / "o.jsonl", rows)
    assert read_records(tmp_path / "o.parquet")[0]["completion"] == "<think>r\ufffd</think>\\boxed{5}"


# ---------------------------------------------------------------- datagen verify on hostile files

TESTS = json.dumps({"kind": "stdin_stdout", "time_limit_s": 2, "cases": [{"input": "", "output": "5\n"}]})
TESTS_FLOAT = json.dumps({"kind": "stdin_stdout", "time_limit_s": 2, "float_tol": 1e-6,
                          "cases": [{"input": "", "output": "1.5\n"}]})
TESTS_CALL = json.dumps({"kind": "call", "fn_name": "f", "time_limit_s": 2, "cases": [{"args": [], "expected": 1.5}]})


def code(src):
    return f"<think>write it</think>\n```python\n{src}\n```"


def record(i, **kw):
    base = {"problem_id": f"p{i}", "sample_id": f"p{i}:0", "source": "t", "domain": "math", "language": "en",
            "prompt": "q", "i": i}
    base.update(kw)
    return base


GOOD = {
    "math": {"answer": "5", "completion": "<think>2+3</think>\\boxed{5}"},
    "code": {"domain": "code", "tests": TESTS, "completion": code("print(5)")},
    "format": {"completion": "<think>2+3</think>5"},
}
HOSTILE = {
    "math": [
        {"answer": "6", "completion": "<think>r</think>\\boxed{" + "{" * 2000 + "5" + "}" * 2000 + "}"},
        {"answer": "5", "completion": "<think>r</think>\\boxed{" + "9" * 6000 + "}"},
        {"answer": "7", "completion": "<think>r</think>\\boxed{1e400}"},
        {"answer": "5", "completion": "<think>r</think>" + "\\boxed{" * 8000},
        {"answer": "5", "completion": "<think>r\ud800</think>\\boxed{\udfff}"},
        {"answer": "2^{10^{10^{10}}}+1", "completion": "<think>r</think>\\boxed{2^{10^{10^{10}}}}"},
    ],
    "code": [
        {"domain": "code", "tests": TESTS_CALL, "completion": code(
            "def f():\n    x = []\n    for _ in range(100000):\n        x = [x]\n    return x")},
        {"domain": "code", "tests": TESTS_CALL, "completion": code("def f():\n    return 10**400")},
        {"domain": "code", "tests": TESTS_FLOAT, "completion": code("print(10**400)")},
        {"domain": "code", "tests": TESTS_FLOAT, "completion": code("print('1e400')")},
        {"domain": "code", "tests": TESTS, "completion": code("import sys\nsys.stdout.buffer.write(b'\\xff\\xfe5\\n')")},
        {"domain": "code", "tests": TESTS, "completion": code("print('5\\ud800')") + "\ud800"},
    ],
    "format": [
        {"completion": "<think>" * 200_000},
        {"completion": "<think>r\ud800</think>\udfff"},
        {"completion": "<think>r</think>" + "\\phantom{" * 100_000},
    ],
}


@pytest.mark.parametrize("verifier, out_ext", [  # math once: its hostile rows run into the symbolic time limit
    ("math", "parquet"), ("code", "jsonl"), ("code", "parquet"), ("format", "jsonl"), ("format", "parquet")])
def test_datagen_verify_survives_hostile_rows(tmp_path, verifier, out_ext):
    hostile = HOSTILE[verifier]
    rows = [record(0, **GOOD[verifier])]
    for k, fields in enumerate(hostile, 1):
        rows += [record(k, **fields)]
    rows.append(record(len(rows), **GOOD[verifier]))
    src, out = tmp_path / "in.jsonl", tmp_path / f"out.{out_ext}"
    with open(src, "w", encoding="utf-8") as fh:  # json.dumps escapes the lone surrogates as JSON allows
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    argv = ["verify", str(src), "--verifier", verifier, "--output", str(out), "--no-progress", "--workers", "2"]
    assert main(argv) == 0
    got = read_records(out)
    assert [r["i"] for r in got] == list(range(len(rows)))  # every row written, in order
    outcomes = [r["verdicts"][verifier]["outcome"] for r in got]
    assert outcomes[0] == outcomes[-1] == "correct"
    assert all(o in OUTCOMES and o != "correct" for o in outcomes[1:-1]), outcomes


@pytest.mark.parametrize("verifier", ["math", "code", "format"])
def test_datagen_verify_accounts_for_wrongly_typed_rows(tmp_path, verifier):
    """Rows whose completion or gold is of the wrong type: each one ends either
    in the output with a typed verdict (the runner's reading) or in the
    quarantine file with its reason (the CLI's input checks) — never lost,
    never a crash — and every other row is written."""
    wrong = [{"completion": 5}, {"completion": {"text": "<think>r</think>5"}}, {"completion": ["a", "b"]},
             {"completion": None}, {"completion": True}]
    if verifier == "math":
        wrong += [{"completion": "<think>r</think>\\boxed{5}", "answer": {"v": 5}},
                  {"completion": "<think>r</think>\\boxed{5}", "answer": [5]}]
    rows = [record(0, **GOOD[verifier])]
    rows += [record(k, **{**GOOD[verifier], **fields}) for k, fields in enumerate(wrong, 1)]
    rows.append(record(len(rows), **GOOD[verifier]))
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_records(src, rows)
    assert main(["verify", str(src), "--verifier", verifier, "--output", str(out), "--no-progress"]) == 0
    got = {r["i"]: r["verdicts"][verifier]["outcome"] for r in read_records(out)}
    rejected = tmp_path / "out.jsonl.rejected.jsonl"
    quarantined = [json.loads(line)["line"] for line in rejected.read_text().splitlines()] if rejected.exists() else []
    assert got[0] == got[len(rows) - 1] == "correct"
    for i in range(1, len(rows) - 1):
        assert (i in got and got[i] in ("error", "unparseable")) or (i + 1) in quarantined, (i, got, quarantined)
