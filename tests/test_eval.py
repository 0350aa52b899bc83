"""The ``eval`` flow: R1's pass@1 (mean over k samples) and maj@k, hand-checked on fixed samples.

The fixed samples are graded by the real math verifier (no stub): a boxed
answer that differs from the gold is incorrect, a hedge between two answers
is not an answer, a completion without one does not vote.
"""

from __future__ import annotations

import pytest

from datagen.evaluate import EvalConfig, score_problem, summarize
from datagen.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _completion(answer: str | None) -> str:
    reasoning = "<think>\nones 7+5=12 write 2 carry 1\ntens 4+3+1=8 write 8\nso the sum is 82\n</think>\n\n"
    return reasoning + (f"\\boxed{{{answer}}}" if answer is not None else "I am not sure.")


#: problem -> (gold, the four samples' boxed answers). Hand-checked figures:
#:   p-a: 82 82 81 80  -> 2/4 correct (0.5); votes 82:2 -> majority 82, right (1)
#:   p-b:  3  3  7 --  -> 1/4 (0.25); votes 3:2, 7:1 -> majority 3, wrong (0)
#:   p-c: 15 16 16 15  -> 2/4 (0.5); tie 15:2 16:2 -> the answer reached first, 15, right (1)
#:   p-d: -- -- -- --  -> 0/4 (0.0); no votes -> wrong (0)
#: pass@1 = (0.5 + 0.25 + 0.5 + 0) / 4 = 0.3125;  maj@4 = (1 + 0 + 1 + 0) / 4 = 0.5
FIXED = {
    "p-a": ("82", ["82", "82", "81", "80"]),
    "p-b": ("7", ["3", "3", "7", None]),
    "p-c": ("15", ["15", "16", "16", "15"]),
    "p-d": ("4", [None, None, None, None]),
}


def _generations(root: str) -> str:
    from datagen.records import split_completion

    rows = []
    for pid, (gold, answers) in FIXED.items():
        for k, answer in enumerate(answers):
            completion = _completion(answer)
            split = split_completion(completion)
            rows.append({"problem_id": pid, "sample_id": f"{pid}:{k}", "source": "fixed", "domain": "math",
                         "language": "en", "prompt": f"problem {pid}", "answer": gold, "completion": completion,
                         "reasoning": split.reasoning, "summary": split.summary, "model": "fixed",
                         "finish_reason": "stop", "completion_tokens": 20})
    writer = Store(root).writer("fixed-generations", stage="generate", config={"fixed": True})
    writer.write(rows)
    return writer.commit(stats={}).ref


def test_eval_flow_on_fixed_samples_gives_the_hand_checked_pass1_and_majk(tmp_path):
    from flows.eval import EvalParams, eval_flow

    root = str(tmp_path / "store")
    generations = _generations(root)
    ref = eval_flow(EvalParams(root=root, input=generations, output="evals", eval=EvalConfig(k=4), gpu_limit=False))
    store = Store(root)
    manifest = store.resolve(ref)
    assert manifest.stats["eval"] == {"problems": 4, "k": 4, "pass@1": 0.3125, "maj@k": 0.5}
    rows = {r["problem_id"]: r for r in store.scan(ref).collect().to_dicts()}
    assert {pid: (r["correct"], r["pass@1"], r["majority_answer"], r["maj_correct"]) for pid, r in rows.items()} == {
        "p-a": (2, 0.5, "82", 1), "p-b": (1, 0.25, "3", 0), "p-c": (2, 0.5, "15", 1), "p-d": (0, 0.0, None, 0)}
    assert rows["p-b"]["outcomes"] == ["incorrect", "incorrect", "correct", "unparseable"]
    assert rows["p-b"]["answers"] == ["3", "3", "7", None]
    # Same input and config: the same version, not a new one.
    assert eval_flow(EvalParams(root=root, input=generations, output="evals", eval=EvalConfig(k=4),
                                gpu_limit=False)) == ref


def test_eval_refuses_a_problem_with_the_wrong_number_of_samples(tmp_path):
    from flows.eval import EvalParams, eval_flow

    root = str(tmp_path / "store")
    with pytest.raises(ValueError, match=r"has 4 samples; eval with k=8 needs exactly 8"):
        eval_flow(EvalParams(root=root, input=_generations(root), output="evals", eval=EvalConfig(k=8),
                             gpu_limit=False))


def test_score_problem_rules():
    # A right majority among wrong singletons; spacing does not split a vote.
    assert score_problem([{"correct": False, "answer": "1"}, {"correct": True, "answer": "12"},
                          {"correct": True, "answer": " 12 "}, {"correct": False, "answer": "13"}]) == {
        "k": 4, "correct": 2, "pass@1": 0.5, "majority_answer": "12", "majority_votes": 2, "maj_correct": 1}
    # One right sample is pass@1 1/3 but maj@3 0 when a wrong answer has more votes.
    got = score_problem([{"correct": False, "answer": "5"}, {"correct": True, "answer": "6"},
                         {"correct": False, "answer": "5"}])
    assert (got["pass@1"], got["maj_correct"]) == (pytest.approx(1 / 3), 0)
    assert summarize([]) == {"problems": 0, "k": None, "pass@1": None, "maj@k": None}
    with pytest.raises(ValueError, match="at least one sample"):
        score_problem([])


def test_eval_flow_samples_a_real_tiny_model(tmp_path):
    """The sampling path: k samples per problem from an hf model, each graded; figures agree with the rows."""
    from datagen.files import write_records
    from datagen.tinymodel import save_tiny
    from flows.eval import EvalParams, eval_flow
    from flows.ingest import IngestParams, ingest_flow

    root = str(tmp_path / "store")
    model = str(save_tiny(tmp_path / "model", hidden_size=32, num_layers=1))
    write_records(tmp_path / "p.jsonl", [{"prompt": f"{i}+1=", "answer": str(i + 1), "domain": "math"}
                                         for i in range(3)])
    problems = ingest_flow(IngestParams(root=root, name="problems", file=str(tmp_path / "p.jsonl")))
    cfg = EvalConfig(backend={"kind": "hf", "model": model}, k=3, template="r1_zero.v1",
                     sampling={"temperature": 0.6, "top_p": 0.95, "max_tokens": 6})
    ref = eval_flow(EvalParams(root=root, input=problems, output="evals", eval=cfg, gpu_limit=False))
    store = Store(root)
    rows = store.scan(ref).collect().to_dicts()
    assert len(rows) == 3 and all(len(r["completions"]) == 3 and len(r["outcomes"]) == 3 for r in rows)
    for r in rows:
        assert r["correct"] == r["outcomes"].count("correct")
    summary = store.resolve(ref).stats["eval"]
    assert summary["k"] == 3 and summary["problems"] == 3
    assert summary["pass@1"] == pytest.approx(sum(r["correct"] for r in rows) / 9, abs=1e-6)
    # Another model is another version (the model is in the run key).
    other = str(save_tiny(tmp_path / "model2", hidden_size=32, num_layers=1, seed=1))
    cfg2 = cfg.model_copy(update={"backend": cfg.backend.model_copy(update={"model": other})})
    assert eval_flow(EvalParams(root=root, input=problems, output="evals", eval=cfg2, gpu_limit=False)) != ref
