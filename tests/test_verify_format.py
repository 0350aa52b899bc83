"""Format verifier: one literal case per rule and reason slug."""

from __future__ import annotations

import pytest

from datagen.verify.format import verify_format


def reason(completion, **kw):
    v = verify_format(completion, **kw)
    return "ok" if v["outcome"] == "correct" else v["detail"].split(":")[0]


def test_r1_form_is_correct():
    assert verify_format("<think>2+3=5</think>The answer is 5.") == {"outcome": "correct", "score": 1.0, "detail": "ok"}


def test_r1_zero_form_is_correct():
    assert reason("<think>2+3=5</think>\n<answer>5</answer>", require_answer_tags=True) == "ok"


def test_leading_whitespace_is_fine():
    assert reason("\n <think>r</think>a") == "ok"


@pytest.mark.parametrize("completion, expected", [
    ("", "empty_completion"),
    ("The answer is 5.", "missing_think"),
    ("<think>still thinking", "unclosed_think"),
    ("Sure! <think>r</think>a", "text_before_think"),
    ("<think>a</think><think>b</think>c", "multiple_think_blocks"),
    ("</think>x<think>y", "multiple_think_blocks"),
    ("<think>r</think>   \n", "empty_answer"),
    ("<think>r</think><answer> </answer>", "empty_answer"),
    ("<think>r</think><answer>5", "malformed_answer_tags"),
    ("<think>r</think></answer>5<answer>", "malformed_answer_tags"),
    ("<think>r <answer>5</answer></think>5", "answer_in_think"),
    ("<think></think>5", "empty_reasoning"),
    ("<think>\u200b</think>5", "empty_reasoning"),
    ("<think>r</think>\u200b\u2062", "invisible_answer"),
    ("<think>r</think>\\boxed{}", "invisible_answer"),
])
def test_reasons(completion, expected):
    v = verify_format(completion)
    assert v["outcome"] == "incorrect" and v["score"] == 0.0
    assert reason(completion) == expected


def test_answer_tags_required():
    assert reason("<think>r</think>5", require_answer_tags=True) == "missing_answer_tags"
    assert reason("<think>r</think>so <answer>5</answer>", require_answer_tags=True) == "text_outside_answer"
    assert reason("<think>r</think>so <answer>5</answer>") == "ok"  # optional tags may be surrounded


def test_prefilled_think_default_accepts_both():
    assert reason("reasoning</think>answer") == "ok"
    assert reason("<think>reasoning</think>answer") == "ok"


def test_prefilled_think_true_forbids_repeating_the_tag():
    assert reason("reasoning</think>answer", think_prefilled=True) == "ok"
    assert reason("<think>reasoning</think>answer", think_prefilled=True) == "unexpected_think_open"
    assert reason("reasoning, cut off", think_prefilled=True) == "unclosed_think"


def test_prefilled_think_false_requires_the_tag():
    assert reason("reasoning</think>answer", think_prefilled=False) == "missing_think"


def test_custom_tags():
    kw = {"think_tags": ("<reasoning>", "</reasoning>"), "answer_tags": ("<final>", "</final>")}
    assert reason("<reasoning>r</reasoning><final>5</final>", require_answer_tags=True, **kw) == "ok"
    assert reason("<think>r</think>5", **kw) == "missing_think"


def test_every_slug_is_listed():
    from datagen.verify.format import REASONS

    cases = ["", "5", "<think>r", "x<think>r</think>a", "<think>a</think><think>b</think>c", "<think></think>a",
             "<think>r</think>", "<think>r</think><answer>5", "<think>r<answer></answer></think>a",
             "<think>r</think>\u200b"]
    assert {reason(c) for c in cases} - {"ok"} <= set(REASONS)


def test_min_reasoning_chars():
    assert reason("<think>2+3=5</think>5", min_reasoning_chars=6) == "short_reasoning"
    assert reason("<think>2+3=5</think>5", min_reasoning_chars=5) == "ok"
    assert reason("<think></think>5", min_reasoning_chars=0) == "ok"


def test_cold_start_form():
    assert reason("|special_token|r|special_token|5", special_token="|special_token|") == "ok"
    assert reason("|special_token|r", special_token="|special_token|") == "unclosed_think"
    assert reason("<think>r</think>5", special_token="|special_token|") == "missing_think"


def test_not_text_is_unparseable():
    assert verify_format(5) == {"outcome": "unparseable", "score": 0.0,
                                "detail": "not_text: the completion is int, not text"}
