"""Decontamination: every planted benchmark item is caught, no unrelated problem is."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from filters.config import FiltersConfig
from filters.decontam import DecontamFilter, load_benchmarks
from filters.runner import run_filters

AIME = [
    "Let $N$ be the number of consecutive ones in the binary expansion of $2^{2024} - 1$. Find the remainder when $N$ is divided by 1000.",
    "A rectangle with side lengths 6 and 8 is inscribed in a circle. Find the area of the region inside the circle but outside the rectangle.",
    "Find the least positive integer $n$ such that $n^2 + 5n + 23$ is divisible by every prime less than 10.",
]
MATH500 = [
    "Compute $\\dbinom{16}{5}$.",  # shorter than the 8-gram: matched as a whole word sequence
    "If $f(x) = 3x + 2$ and $g(x) = (x - 1)^2$, what is $f(g(-2))$?",
]
UNRELATED = [
    "Find the number of ordered pairs of positive integers whose product is 1000 and whose sum is even.",
    "A circle of radius 5 is tangent to both axes. Find the distance from its center to the origin.",
    "Compute the sum of all positive divisors of 360.",
    "Let $f(x) = x^3 - 3x$. Find all real numbers $x$ with $f(f(x)) = 0$.",
    "How many binary strings of length 12 contain no two consecutive ones?",
    "Compute $\\dbinom{17}{5}$ and explain why it is larger than the number of 5-element subsets of a 16-element set.",
]


def perturb(text: str) -> str:
    """Whitespace, case and punctuation changed, words kept."""
    text = text.upper().replace(" ", "   \n ").replace(",", " ;").replace(".", "!").replace("$", "")
    return "Problem:  " + text + " ??"


def write_benchmarks(tmp_path):
    aime = tmp_path / "aime_2024.jsonl"
    aime.write_text("".join(json.dumps({"problem": p, "answer": "0"}) + "\n" for p in AIME))
    math = tmp_path / "math500.parquet"
    pq.write_table(pa.table({"question": MATH500}), math)
    return [str(aime), str(math)]


def rows_for(prompts):
    return [{"problem_id": f"p{i}", "sample_id": f"p{i}", "source": "t", "domain": "math", "language": "en",
             "prompt": p} for i, p in enumerate(prompts)]


def test_every_planted_item_is_caught_and_named(tmp_path):
    paths = write_benchmarks(tmp_path)
    planted = AIME + MATH500 + [perturb(p) for p in AIME + MATH500]
    expected = (["decontam:aime_2024"] * 3 + ["decontam:math500"] * 2) * 2
    out, stats = run_filters(rows_for(planted + UNRELATED), FiltersConfig(decontam={"benchmarks": paths}),
                             names=["decontam"])
    assert [r["drop"] for r in out] == expected + [None] * len(UNRELATED)
    assert stats["dropped"] == {"decontam/aime_2024": 6, "decontam/math500": 4}


def test_planted_inside_a_longer_prompt_is_caught(tmp_path):
    flt = DecontamFilter(load_benchmarks(write_benchmarks(tmp_path)))
    prompt = "Solve the following. " + AIME[1].lower() + " Put your final answer in a box."
    assert flt.check_prompt(prompt).reason == "aime_2024"


def test_configured_names_and_ngram(tmp_path):
    paths = write_benchmarks(tmp_path)
    cfg = FiltersConfig(decontam={"benchmarks": {"AIME 2024": paths[0]}, "ngram": 13})
    out, _ = run_filters(rows_for([AIME[2], UNRELATED[0]]), cfg, names=["decontam"])
    assert [r["drop"] for r in out] == ["decontam:aime_2024", None]
