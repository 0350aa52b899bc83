"""One literal test per drop reason, through the runner (``drop == "<filter>:<reason>"``)."""

from __future__ import annotations

import json

import pytest

from filters.config import FiltersConfig
from filters.runner import run_filters

CLEAN_REASONING = (
    "We need the sum of the first $n$ odd numbers. Let me try small cases first.\n\n"
    "For $n = 1$ the sum is $1$, for $n = 2$ it is $1 + 3 = 4$, and for $n = 3$ it is $9$. "
    "The pattern suggests $n^2$.\n\n"
    "To prove it, use induction: $\\sum_{k=1}^{n+1} (2k-1) = n^2 + 2n + 1 = (n+1)^2$. "
    "So the formula holds for every positive integer."
)


def row(**overrides) -> dict:
    base = {
        "problem_id": "p1", "sample_id": "p1:0", "source": "test", "domain": "math", "language": "en",
        "prompt": "What is the sum of the first n odd numbers?", "answer": "n^2",
        "reasoning": CLEAN_REASONING, "summary": "The sum is $\\boxed{n^2}$.", "finish_reason": "stop",
    }
    base.update(overrides)
    return base


def drop_of(r: dict, config: FiltersConfig | None = None, names=None) -> str | None:
    out, _ = run_filters([r], config, names=names)
    return out[0]["drop"]


def test_clean_row_is_kept():
    assert drop_of(row()) is None


# ----------------------------------------------------------------- length

def test_length_truncated_finish_reason():
    assert drop_of(row(finish_reason="length")) == "length:truncated"


def test_length_truncated_unclosed_think():
    r = row(completion="<think>Let me think about this for a while", finish_reason="stop")
    del r["reasoning"], r["summary"]
    assert drop_of(r) == "length:truncated"


def test_length_reasoning_too_long():
    cfg = FiltersConfig(length={"max_reasoning_tokens": 50})
    assert drop_of(row(), cfg) == "length:reasoning_too_long"


def test_length_reasoning_too_short():
    cfg = FiltersConfig(length={"min_reasoning_tokens": 10_000, "max_reasoning_tokens": None})
    assert drop_of(row(), cfg) == "length:reasoning_too_short"


def test_length_answer_too_long():
    cfg = FiltersConfig(length={"max_answer_tokens": 3})
    assert drop_of(row(), cfg) == "length:answer_too_long"


def test_length_answer_too_short():
    cfg = FiltersConfig(length={"min_answer_tokens": 100})
    assert drop_of(row(), cfg) == "length:answer_too_short"


# ----------------------------------------------------------------- answer

def test_answer_missing():
    assert drop_of(row(summary=None)) == "answer:missing_answer"


def test_answer_empty():
    assert drop_of(row(summary="  \n")) == "answer:empty_answer"


# ----------------------------------------------------------------- code_block

def test_code_block_in_math_reasoning():
    reasoning = CLEAN_REASONING + "\n\nLet me verify with code:\n```python\nprint(sum(range(1, 20, 2)))\n```\n"
    assert drop_of(row(reasoning=reasoning)) == "code_block:code_in_reasoning"


def test_code_block_allowed_in_code_domain():
    reasoning = CLEAN_REASONING + "\n\n```python\nprint(sum(range(1, 20, 2)))\n```\n"
    assert drop_of(row(reasoning=reasoning, domain="code")) is None


# ----------------------------------------------------------------- paragraph

def test_paragraph_long_paragraph():
    wall = " ".join(["Then we substitute the value back and check that both sides agree."] * 60)
    assert drop_of(row(reasoning=CLEAN_REASONING + "\n\n" + wall)) == "paragraph:long_paragraph"


def test_paragraph_threshold_off():
    wall = " ".join(["Then we substitute the value back and check that both sides agree."] * 60)
    cfg = FiltersConfig(paragraph={"max_words": None, "max_chars": None})
    assert drop_of(row(reasoning=CLEAN_REASONING + "\n\n" + wall), cfg, names=["paragraph"]) is None


# ----------------------------------------------------------------- repetition

def test_repetition_looping_tail():
    loop = "Wait, let me recompute the sum of the first three odd numbers again. "
    assert drop_of(row(reasoning=CLEAN_REASONING + "\n" + loop * 12)) == "repetition:looping_tail"


def test_repetition_duplicate_lines():
    lines = "\n".join(["We check the case n equals one.", "The sum is one.", "We check the case n equals one."] * 5)
    reasoning = CLEAN_REASONING + "\n" + lines + "\nSo everything is consistent with the formula we found."
    assert drop_of(row(reasoning=reasoning), names=["repetition"]) == "repetition:duplicate_lines"


def test_repetition_duplicate_paragraphs():
    cfg = FiltersConfig(repetition={"max_duplicate_line_share": None})
    para = "We check the case n equals one.\nThe sum is one and the formula gives one."
    reasoning = "\n\n".join([CLEAN_REASONING] + [para, "Next case."] * 4 + ["Done."])
    assert drop_of(row(reasoning=reasoning), cfg, names=["repetition"]) == "repetition:duplicate_paragraphs"


def test_repetition_top_ngram():
    cfg = FiltersConfig(repetition={"max_duplicate_line_share": None, "max_duplicate_paragraph_share": None,
                                    "min_tail_repeats": None})
    words = " ".join(f"so the answer is {w} or maybe" for w in ["one", "two", "three", "four", "five", "six"])
    assert drop_of(row(reasoning=words + " we are done here now"), cfg,
                   names=["repetition"]) == "repetition:top_ngram"


# ----------------------------------------------------------------- language

def test_language_mixed_language_same_script():
    reasoning = CLEAN_REASONING + (
        " Donc la somme des premiers nombres impairs est toujours un carré parfait, ce qui confirme notre hypothèse."
    )
    assert drop_of(row(reasoning=reasoning)) == "language:mixed_language"


def test_language_mixed_language_cross_script():
    reasoning = CLEAN_REASONING.replace("So the formula holds", "所以这个公式对所有正整数都成立。So the formula holds")
    assert drop_of(row(reasoning=reasoning)) == "language:mixed_language"


def test_language_wrong_language():
    reasoning = (
        "Nous cherchons la somme des premiers nombres impairs. Essayons quelques petits cas pour commencer.\n\n"
        "Pour $n = 1$ la somme vaut $1$, pour $n = 2$ elle vaut $4$, et pour $n = 3$ elle vaut $9$. "
        "On devine donc que la somme est toujours un carré parfait.\n\n"
        "Démontrons-le par récurrence sur le nombre de termes, ce qui termine la preuve."
    )
    assert drop_of(row(reasoning=reasoning)) == "language:wrong_language"


def test_language_answer_wrong_language():
    summary = "La somme des premiers nombres impairs est toujours égale au carré de leur nombre, donc $n^2$."
    assert drop_of(row(summary=summary)) == "language:wrong_answer_language"


def test_language_answer_mixed_language():
    summary = ("The sum of the first n odd numbers is always the square of n, as the induction shows. "
               "Donc la réponse finale est bien le carré parfait que nous avions deviné au début.")
    assert drop_of(row(summary=summary)) == "language:wrong_answer_language"


# ----------------------------------------------------------------- dedup

def test_dedup_exact_duplicate():
    a = row()
    b = row(problem_id="p2", sample_id="p2:0", prompt="  what is the SUM of the first n odd numbers? ")
    out, _ = run_filters([a, b], names=["dedup"])
    assert [r["drop"] for r in out] == [None, "dedup:exact_duplicate"]


def test_dedup_near_duplicate():
    a = row(prompt="Find the number of positive integers n less than 1000 such that n squared ends in the digits 21.")
    b = row(problem_id="p2", sample_id="p2:0",
            prompt="Find the number of positive integers n less than 1000 such that n squared ends in the digits 21 exactly.")
    out, _ = run_filters([a, b], FiltersConfig(dedup={"near_threshold": 0.7}), names=["dedup"])
    assert [r["drop"] for r in out] == [None, "dedup:near_duplicate"]


# ----------------------------------------------------------------- decontam

def test_decontam_names_the_benchmark(tmp_path):
    bench = tmp_path / "AIME-2024.jsonl"
    bench.write_text(json.dumps({"problem": "Find the number of positive integers n less than 1000 such that n "
                                            "squared ends in the digits 21."}) + "\n")
    r = row(prompt="Find the number of positive integers n less than 1000 such that n squared ends in 21.")
    cfg = FiltersConfig(decontam={"benchmarks": [str(bench)]})
    assert drop_of(r, cfg) == "decontam:aime_2024"


@pytest.mark.parametrize("name", ["language", "length", "paragraph", "code_block", "repetition", "answer", "dedup"])
def test_each_filter_runs_alone_on_a_clean_row(name):
    assert drop_of(row(), names=[name]) is None
