"""Procedurally generated problems (datagen/problems.py)."""

from __future__ import annotations

import re

import pytest

from datagen.problems import arithmetic_problems, evaluate, general_problems, split_problems
from datagen.records import validate_row


def test_evaluate_respects_precedence():
    assert evaluate([3, 4, 2], ["+", "*"]) == 11
    assert evaluate([3, 4, 2], ["*", "-"]) == 10
    assert evaluate([10, 2, 3, 4], ["-", "*", "+"]) == 8
    assert evaluate([5], []) == 5


def test_arithmetic_rows_are_valid_records_with_correct_answers():
    problems = arithmetic_problems(50, seed=0)
    assert len(problems) == 50
    for p in problems:
        validate_row(p)
        assert p["domain"] == "math" and p["source"] == "synthetic-arith" and p["language"] == "en"
        assert p["sample_id"] == p["problem_id"]
        match = re.fullmatch(r"Compute ((?:\d+ [-+*] )*\d+)\.", p["prompt"])
        assert match, p["prompt"]
        tokens = match.group(1).split()
        # Python's own precedence is the oracle here (the generator never calls eval).
        assert p["answer"] == str(eval(match.group(1)))
        assert 1 <= p["n_ops"] == len(tokens) // 2 <= 3


def test_arithmetic_respects_bounds():
    problems = arithmetic_problems(30, seed=1, min_ops=2, max_ops=2, max_operand=5, source="s")
    for p in problems:
        numbers = [int(t) for t in re.findall(r"\d+", p["prompt"])]
        assert len(numbers) == 3 and max(numbers) <= 5 and p["source"] == "s"


def test_arithmetic_is_deterministic_per_seed_and_distinct():
    a, b, c = (arithmetic_problems(40, seed=s) for s in (5, 5, 6))
    assert a == b and a != c
    assert len({p["prompt"] for p in a}) == 40


def test_arithmetic_too_many_for_the_space_fails_with_a_fix():
    with pytest.raises(ValueError, match="widen the generator's bounds"):
        arithmetic_problems(1000, seed=0, min_ops=1, max_ops=1, max_operand=2)  # only 27 exist


def test_arithmetic_rejects_bad_bounds():
    with pytest.raises(ValueError, match="min_ops <= max_ops"):
        arithmetic_problems(1, seed=0, min_ops=3, max_ops=1)


def test_general_problems_have_reference_answers():
    problems = general_problems(40, seed=0)
    assert problems == general_problems(40, seed=0)
    assert len({p["prompt"] for p in problems}) == 40
    for p in problems:
        validate_row(p)
        assert p["domain"] == "general" and p["answer"]
    backwards = [p for p in problems if p["prompt"].endswith("backwards.")]
    assert backwards and all(re.search(r"'(\w+)'", p["prompt"]).group(1)[::-1] == p["answer"] for p in backwards)


def test_split_is_disjoint_sized_and_deterministic():
    problems = arithmetic_problems(100, seed=0)
    train, held = split_problems(problems, 0.2, seed=1)
    assert len(held) == 20 and len(train) == 80
    assert not {p["problem_id"] for p in train} & {p["problem_id"] for p in held}
    assert split_problems(list(reversed(problems)), 0.2, seed=1)[1] == list(reversed(held))
    assert split_problems(problems, 0.2, seed=2)[1] != held


def test_split_keeps_rows_of_one_problem_together():
    problems = arithmetic_problems(10, seed=0)
    samples = [dict(p, sample_id=f"{p['problem_id']}:{k}") for p in problems for k in range(3)]
    train, held = split_problems(samples, 0.5, seed=0)
    assert len(held) == 15
    assert not {p["problem_id"] for p in train} & {p["problem_id"] for p in held}


def test_split_rejects_bad_fraction():
    with pytest.raises(ValueError, match="within \\[0, 1\\]"):
        split_problems([], 1.5, seed=0)
