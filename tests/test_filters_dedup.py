"""Dedup is for problems: n samples of one problem survive together."""

from __future__ import annotations

from filters.config import FiltersConfig
from filters.runner import run_filters


def sample(pid: str, k: int, prompt: str) -> dict:
    return {"problem_id": pid, "sample_id": f"{pid}:{k}", "source": "t", "domain": "math", "language": "en",
            "prompt": prompt}


P = "Find all real solutions of the equation x squared minus five x plus six equals zero."
Q = "How many ways can eight rooks be placed on a chessboard so that no two attack each other?"


def test_samples_of_one_problem_are_not_duplicates():
    rows = [sample("a", k, P) for k in range(4)]
    out, stats = run_filters(rows, names=["dedup"])
    assert [r["drop"] for r in out] == [None] * 4 and stats["kept"] == 4


def test_duplicate_problem_loses_all_its_samples_the_first_keeps_all():
    rows = [sample("a", 0, P), sample("b", 0, P.upper()), sample("a", 1, P), sample("b", 1, P.upper()),
            sample("c", 0, Q)]
    out, _ = run_filters(rows, names=["dedup"])
    assert [r["drop"] for r in out] == [None, "dedup:exact_duplicate", None, "dedup:exact_duplicate", None]


def test_near_threshold_off_keeps_near_duplicates():
    rows = [sample("a", 0, P), sample("b", 0, P.replace("equals zero", "equals 0"))]
    out, _ = run_filters(rows, names=["dedup"])
    assert [r["drop"] for r in out] == [None, "dedup:near_duplicate"]
    out, _ = run_filters(rows, FiltersConfig(dedup={"near_threshold": None}), names=["dedup"])
    assert [r["drop"] for r in out] == [None, None]


def test_dedup_runs_over_the_whole_list_not_per_batch():
    rows = [sample(f"u{i}", 0, f"Unrelated problem number {i}: compute {i} times {i + 7} plus the answer.")
            for i in range(600)]
    rows.append(sample("late", 0, rows[3]["prompt"]))  # beyond the runner's batch of 256 rows
    out, _ = run_filters(rows, FiltersConfig(dedup={"near_threshold": None}), names=["dedup"])
    assert out[-1]["drop"] == "dedup:exact_duplicate"
    assert sum(r["drop"] is not None for r in out) == 1
