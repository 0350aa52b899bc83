"""GRPO rewards: batch functions over the verifiers; None where they cannot judge."""

from __future__ import annotations

import json

from datagen.verify.format import R1_MIN_REASONING_WORDS
from datagen.verify.rewards import REWARDS, accuracy_reward, format_reward

TESTS = json.dumps({"kind": "stdin_stdout", "time_limit_s": 1, "cases": [{"input": "", "output": "5\n"}]})


def test_names_resolve():
    assert set(REWARDS) >= {"accuracy", "format", "language"}


REASONING = "Two plus three: count on from three, four, five. So the sum is five."


def test_format_reward_scores_shape():
    assert format_reward([f"<think>{REASONING}</think>5", "5", None]) == [1.0, 0.0, None]


def test_format_reward_requires_reasoning_by_default():
    assert format_reward(["<think>r</think>5", "<think></think>5"]) == [0.0, 0.0]
    assert format_reward(["<think>r</think>5"], min_reasoning_words=0) == [1.0]


def test_format_reward_conversational_completions():
    assert format_reward([[{"role": "assistant", "content": f"<think>{REASONING}</think>5"}]]) == [1.0]


def test_rewards_are_the_verifiers_scores():
    """The reward is the verdict ``datagen verify`` writes, unchanged."""
    from datagen.verify.format import verify_format
    from datagen.verify.math import verify_math

    completions = [f"<think>{REASONING}</think>\\boxed{{5}}", "<think>r</think>\\boxed{6}", "", "no tags \\boxed{5}",
                   "<think>unclosed \\boxed{5}"]
    assert accuracy_reward(completions, answer=["5"] * 5) == [verify_math(c, "5")["score"] for c in completions]
    assert format_reward(completions) == [
        verify_format(c, min_reasoning_words=R1_MIN_REASONING_WORDS)["score"] for c in completions]


def test_empty_completion_is_zero_not_none():
    # An empty generation is the policy's failure: 0.0, or GRPO would stop punishing it.
    assert accuracy_reward(["", "   "], answer=["5", "5"]) == [0.0, 0.0]
    assert accuracy_reward([""], tests=[TESTS], domain=["code"]) == [0.0]
    assert format_reward([""]) == [0.0]


def test_integer_gold_answers_are_judged():
    assert accuracy_reward(["<think>r</think>\\boxed{5}", "<think>r</think>\\boxed{0}"], answer=[5, 0]) == [1.0, 1.0]


def test_a_verifier_failure_is_none_and_the_batch_goes_on(monkeypatch):
    from datagen.records import verdict
    from datagen.verify import runner

    def run(inputs, *, workers, on_done, **_):  # a verifier that fails on one sample, as a bug would
        if any("1/0" in x["completion"] for x in inputs):
            raise ZeroDivisionError("division by zero")
        return [verdict("correct" if "5" in x["completion"] else "incorrect") for x in inputs]

    monkeypatch.setitem(runner.VERIFIERS, "math", runner.Verifier(run, runner._prepare_math))
    rewards = accuracy_reward(["\\boxed{5}", "\\boxed{1/0}", "\\boxed{6}"], answer=["5"] * 3)
    assert rewards == [1.0, None, 0.0]


def test_a_timeout_is_zero_for_every_verifier():
    slow = json.dumps({"kind": "stdin_stdout", "time_limit_s": 0.5, "cases": [{"input": "", "output": "5\n"}]})
    assert accuracy_reward(["<think>r</think>```python\nwhile True:\n    pass\n```"], tests=[slow]) == [0.0]
    # A symbolic comparison given no time: 0.0, never None -- "too slow to judge"
    # must not beat "wrong" (None = advantage 0), or slow answers would be learned
    got = accuracy_reward(["<think>r</think>\\boxed{\\sin^2 x + \\cos^2 x + \\tan^2 x - \\sec^2 x}"],
                          answer=["0"], math_timeout_s=1e-6)
    assert got in ([0.0], [1.0])  # 0.0 on the symbolic path's timeout, 1.0 if a fast path decides


def test_accuracy_code_by_domain():
    completions = ["<think>r</think>```python\nprint(5)\n```", "<think>r</think>```python\nprint(4)\n```",
                   "<think>r</think>no code"]
    rewards = accuracy_reward(completions, domain=["code"] * 3, tests=[TESTS] * 3, answer=[None] * 3)
    assert rewards == [1.0, 0.0, 0.0]


def test_accuracy_cannot_judge_is_none():
    rewards = accuracy_reward(
        ["<think>r</think>Paris", "<think>r</think>```python\nprint(5)\n```", "<think>r</think>5"],
        domain=["general", "code", "math"], tests=[None, "{broken", None], answer=[None, None, None],
    )
    assert rewards == [None, None, None]  # no rule verifier / bad tests (error) / no gold answer


def test_accuracy_math_by_domain():
    rewards = accuracy_reward(["<think>2+3</think>The answer is \\boxed{5}.", "<think>r</think>\\boxed{6}"],
                              domain=["math", "math"], answer=["5", "5"])
    assert rewards == [1.0, 0.0]


def test_accuracy_prefilled_think():
    rewards = accuracy_reward(["2+3</think>\\boxed{5}", "still thinking \\boxed{5}"], answer=["5", "5"],
                              think_prefilled=True)
    assert rewards == [1.0, 0.0]  # the second never closed its reasoning: unparseable


def test_language_reward_none_without_language():
    assert REWARDS["language"](["<think>hello there friend</think>hi"], language=[None]) == [None]


def test_language_reward_scores_the_reasoning():
    en = "<think>First we add the two numbers together and then we check the result carefully.</think>5"
    rewards = REWARDS["language"]([en, en], language=["en", "zh"])
    assert rewards[0] > 0.9 and rewards[1] < 0.1
