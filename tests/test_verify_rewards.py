"""GRPO rewards: batch functions over the verifiers; None where they cannot judge."""

from __future__ import annotations

import json

from datagen.verify.rewards import REWARDS, accuracy_reward, format_reward

TESTS = json.dumps({"kind": "stdin_stdout", "time_limit_s": 1, "cases": [{"input": "", "output": "5\n"}]})


def test_names_resolve():
    assert set(REWARDS) >= {"accuracy", "format", "language"}


def test_format_reward_scores_shape():
    assert format_reward(["<think>r</think>5", "5", None]) == [1.0, 0.0, None]


def test_format_reward_conversational_completions():
    assert format_reward([[{"role": "assistant", "content": "<think>r</think>5"}]]) == [1.0]


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
