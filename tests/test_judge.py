"""The LLM judge: strict verdict parsing, typed outcomes, a real tiny model end to end."""

from __future__ import annotations

import pytest

from datagen.generate import GenOutput, GenResult, HFBackendConfig, make_backend
from datagen.tinymodel import save_tiny
from datagen.verify.judge import judge_one, parse_judge_output, verify_judge


class ScriptedJudge:
    """Test double: a judge backend that answers every request with a fixed text."""

    name = "scripted"

    def __init__(self, text, finish="stop", error=None):
        self.text, self.finish, self.error, self.seen = text, finish, error, []

    def generate(self, requests):
        self.seen.extend(requests)
        return [GenResult([GenOutput(self.text, self.finish, error=self.error)]) for _ in requests]


ROW = {"prompt": "What is the capital of France?", "answer": "Paris",
       "completion": "<think>France's capital... is Paris.</think>The capital is Paris."}


@pytest.mark.parametrize("text, expected", [
    ("The response says Paris.\nVERDICT: CORRECT", True),
    ("It says Lyon, not Paris.\nVERDICT: INCORRECT\n", False),
    ("<think>compare Paris with Paris</think>Both say Paris.\nVERDICT: CORRECT", True),
])
def test_parse_accepts_only_the_exact_final_line(text, expected):
    assert parse_judge_output(text)[0] is expected


@pytest.mark.parametrize("text, reason", [
    ("VERDICT: CORRECT\nI think so.", "no verdict line"),
    ("verdict: correct", "no verdict line"),
    ("VERDICT: PROBABLY CORRECT", "no verdict line"),
    ("Looks right.", "no verdict line"),
    ("VERDICT: INCORRECT\nVERDICT: CORRECT", "contradicting"),
    ("<think>still thinking", "ended inside its reasoning"),
    ("", "empty"),
])
def test_parse_rejects_anything_else(text, reason):
    decision, detail = parse_judge_output(text)
    assert decision is None and reason in detail


def test_correct_verdict_and_judge_sees_only_the_final_answer():
    judge = ScriptedJudge("Same city.\nVERDICT: CORRECT")
    [v] = verify_judge([ROW], judge)
    assert v["outcome"] == "correct" and v["score"] == 1.0
    content = judge.seen[0].messages[0]["content"]
    assert "The capital is Paris." in content and "Reference answer:\nParis" in content
    assert "France's capital..." not in content  # the candidate's reasoning is not shown


def test_incorrect_verdict_scores_zero():
    [v] = verify_judge([ROW], ScriptedJudge("Different.\nVERDICT: INCORRECT"))
    assert v == {"outcome": "incorrect", "score": 0.0, "detail": "scripted: VERDICT: INCORRECT"}


def test_unparseable_judge_output_is_error_not_incorrect():
    [v] = verify_judge([ROW], ScriptedJudge("I am not sure."))
    assert v["outcome"] == "error" and v["score"] is None
    assert "unparseable judge output" in v["detail"]


def test_failed_judge_request_is_error():
    [v] = verify_judge([ROW], ScriptedJudge(None, finish="error", error="HTTP 503"))
    assert v["outcome"] == "error" and "HTTP 503" in v["detail"]


def test_response_without_final_answer_is_unparseable_without_a_call():
    judge = ScriptedJudge("VERDICT: CORRECT")
    [v] = verify_judge([{**ROW, "completion": "<think>Paris, maybe"}], judge)
    assert v["outcome"] == "unparseable" and judge.seen == []


def test_row_without_reference_is_error():
    [v] = verify_judge([{**ROW, "answer": None}], ScriptedJudge("VERDICT: CORRECT"))
    assert v["outcome"] == "error" and "no reference" in v["detail"]


def test_judge_one_takes_a_triple():
    v = judge_one("2+2?", "4", "4", ScriptedJudge("ok\nVERDICT: CORRECT"))
    assert v["outcome"] == "correct"


def test_real_tiny_model_judge_gives_typed_outcomes(tmp_path):
    """A random tiny model cannot produce a verdict line: every outcome is error, never incorrect."""
    backend = make_backend(HFBackendConfig(model=str(save_tiny(tmp_path / "judge"))))
    from datagen.generate import SamplingConfig

    rows = [ROW, {**ROW, "completion": "Lyon"}, {**ROW, "completion": "<think>unfinished"}]
    verdicts = verify_judge(rows, backend, sampling=SamplingConfig(temperature=0.0, max_tokens=16))
    assert [v["outcome"] for v in verdicts] == ["error", "error", "unparseable"]
    assert all("unparseable judge output" in v["detail"] for v in verdicts[:2])


def test_cli_verify_with_judge_on_tiny_model(tmp_path):
    from datagen.cli.main import main
    from datagen.files import read_records, write_records

    model = save_tiny(tmp_path / "judge")
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_records(src, [{**ROW, "problem_id": "q1", "sample_id": "q1:0"},
                        {**ROW, "problem_id": "q2", "sample_id": "q2:0", "answer": None}])
    code = main(["verify", str(src), "--verifier", "judge", "--judge-backend", "hf", "--judge-model", str(model),
                 "--judge-max-tokens", "16", "--output", str(out), "--no-progress"])
    assert code == 0
    rows = read_records(out)
    assert [r["verdicts"]["judge"]["outcome"] for r in rows] == ["error", "error"]
    assert "unparseable judge output" in rows[0]["verdicts"]["judge"]["detail"]
    assert rows[0]["completion"] == ROW["completion"]  # rows keep their fields


def test_cli_judge_without_model_is_a_user_error(tmp_path, capsys):
    from datagen.cli.main import main
    from datagen.files import write_records

    src = tmp_path / "in.jsonl"
    write_records(src, [{**ROW, "problem_id": "q1", "sample_id": "q1:0"}])
    assert main(["verify", str(src), "--verifier", "judge", "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "--judge-model" in capsys.readouterr().err
