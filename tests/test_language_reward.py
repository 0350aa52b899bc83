"""The ``language_consistency`` GRPO reward: hand-computed values, and its use from a YAML config
next to the accuracy and format rewards."""

from __future__ import annotations

import pytest
import yaml

from datagen.verify.rewards import REWARDS, language_consistency_reward
from trainers.config import GRPOConfig
from trainers.grpo import score
from trainers.rewards import resolve_rewards


def reward(completion, language="en", **kw):
    return language_consistency_reward([completion], language=[language], **kw)[0]


def test_name_resolves_in_the_flat_table():
    assert REWARDS["language_consistency"] is language_consistency_reward
    assert REWARDS["language"] is language_consistency_reward  # the old name keeps working


@pytest.mark.parametrize("completion,language,expected", [
    # reasoning 5 English words, answer 3: nothing foreign
    ("<think>We add the two numbers.</think>The answer is 5.", "en", 1.0),
    # reasoning 5 English words + 4 Han characters: 5 / 9; answer clean
    ("<think>We add the two numbers 所以答案</think>The answer is 5.", "en", 5 / 9),
    # reasoning clean, answer in French ("La réponse est": French function words): 1 x 0
    ("<think>We add the two numbers.</think>La réponse est 5.", "en", 0.0),
    # an answer with no words is neutral: 1 x 1
    ("<think>We add the two numbers.</think>$\\boxed{2}$", "en", 1.0),
    # "DP" is a term inside Chinese (neutral): 5 Han characters, all target
    ("<think>我们用 DP 求解。</think>答案是 5。", "zh", 1.0),
    # 4 Han characters + an English sentence of 6 words (let, me, the: a phrase, not a term): 4 / 10
    ("<think>我们先算。Let me check the sum again.</think>答案是 5。", "zh", 0.4),
    # half of the reasoning's sentences in German (5 of 10 words), answer clean: 0.5
    ("<think>We add the two numbers. Wir addieren die zwei Zahlen.</think>The answer is 5.", "en", 0.5),
])
def test_hand_computed_values(completion, language, expected):
    assert reward(completion, language) == pytest.approx(expected)


def test_cannot_judge_is_none_not_zero():
    assert reward("<think>We add the two numbers.</think>5", None) is None      # no target language
    assert language_consistency_reward([None], language=["en"]) == [None]      # no completion


@pytest.mark.parametrize("completion", [
    "",                                   # nothing at all
    "}",                                  # a constant answer (a demo policy collapsed to it at reward 1.0)
    "\\boxed{5}",                         # a bare answer, no reasoning, no words
    "<think></think>\\boxed{5}",          # an empty reasoning
    "<think>   </think>The answer is 5.",  # a blank reasoning, clean answer
    "<think>$1 + 1 = 2$</think>$2$",      # a reasoning with no words (math only)
    "<think>12 + 7 = 19 ; 19 - 3 = 16</think>16",
])
def test_saying_nothing_earns_nothing(completion):
    """The reward pays for words in the target language: no words, no reward (else a constant wins)."""
    assert reward(completion, "en") == 0.0
    assert reward(completion, "zh") == 0.0


@pytest.mark.parametrize("completion,expected", [
    ("<think>We add the two numbers.</think>\\boxed{5}", 1.0),
    ("The answer is five.", 1.0),          # no think tags: the whole text is judged
    ("<think>ones 7+5+0=12 write 2 carry 1</think>\\boxed{82}", 1.0),
    ("<think>ones 7+5+0=12 写 2 进 1</think>\\boxed{82}", pytest.approx(1 / 3)),  # ones vs 写, 进
])
def test_genuine_reasoning_still_pays(completion, expected):
    assert reward(completion, "en") == expected


def test_conversational_and_prefilled_completions():
    conv = [{"role": "assistant", "content": "<think>We add the two numbers 所以答案</think>5"}]
    assert language_consistency_reward([conv], language=["en"]) == [pytest.approx(5 / 9)]
    # the chat template pre-filled <think>: the completion starts inside the reasoning
    assert reward("We add the two numbers 所以答案</think>5", "en", think_prefilled=True) == pytest.approx(5 / 9)


def test_weighted_with_accuracy_and_format_from_yaml(tmp_path):
    path = tmp_path / "grpo.yaml"
    path.write_text("rewards:\n  accuracy: 1.0\n  format: 0.2\n  language_consistency: 0.5\n")
    cfg = GRPOConfig(**yaml.safe_load(path.read_text()))  # what the trainer's --config does
    assert cfg.rewards == {"accuracy": 1.0, "format": 0.2, "language_consistency": 0.5}
    fns = resolve_rewards(cfg.rewards, None)
    completions = [
        "<think>We add two and three, so the sum is five. We check it again.</think>The answer is $\\boxed{5}$.",
        "<think>We add two and three, so the sum is five. 所以答案是五，检查一遍。</think>The answer is $\\boxed{5}$.",
        "<think>We add two and three, so the sum is five. We check it again.</think>La réponse est $\\boxed{4}$.",
    ]
    columns = {"answer": ["5", "5", "5"], "domain": ["math"] * 3, "language": ["en", "en", None]}
    totals, parts = score(completions, columns, fns, cfg.rewards)
    assert parts["accuracy"] == [1.0, 1.0, 0.0]
    assert parts["format"] == [1.0, 1.0, 1.0]
    # second: 10 English words + 10 Han characters in the reasoning: 10 / 20
    assert parts["language_consistency"] == [1.0, pytest.approx(0.5), None]
    assert totals[0] == pytest.approx(1.0 + 0.2 + 0.5)
    assert totals[1] == pytest.approx(1.0 + 0.2 + 0.25)
    # no target language: that part adds nothing, the others still count
    # (trainers.rewards.combine; one None part must not erase the total)
    assert totals[2] == pytest.approx(0.0 + 0.2)


def test_unknown_reward_name_fails_with_the_fix():
    with pytest.raises(ValueError, match="unknown reward function"):
        resolve_rewards({"language_consistensy": 1.0}, None)


# ---------------------------------------------------------------- red team, issue 11 follow-up
# Markup is no hiding place: words inside \text{} in math and prose inside
# inline code are judged as words; real code and identifiers stay neutral.

EN = "First we compute the sum of the two numbers and then we check the result carefully."
ZH = "然后我们验证这个结果是否正确并且得到最终答案"


@pytest.mark.parametrize("hidden", [
    f"$\\text{{{ZH}}}$", f"`{ZH}`", f"$x = \\textbf{{{ZH}}}$", f"\\[\\mbox{{{ZH}}}\\]", f"$\\mathrm{{{ZH}}}$",
    "`ensuite nous vérifions le résultat et nous obtenons la réponse finale`",
])
def test_foreign_words_hidden_in_markup_still_count(hidden):
    got = reward(f"<think>{EN} {hidden}</think>5")
    assert got < 0.9
    if "ensuite" not in hidden:  # exactly as if written in plain text
        assert got == pytest.approx(reward(f"<think>{EN} {ZH}</think>5"))


@pytest.mark.parametrize("code", [
    "We call `np.sum(arr)` and `dp[i]`.", "So $x = \\text{the answer}$ here.", "Set $5\\,\\mathrm{kg}$ and $\\mathrm{cm}$.",
    "Run `x = foo(bar)` then `a_n`.", "```python\nprint('你好世界这是代码里的字符串')\n```",
])
def test_real_code_and_units_stay_neutral(code):
    assert reward(f"<think>{EN} {code}</think>5") == 1.0
