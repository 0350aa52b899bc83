"""Reward hacking against the format verifier and the GRPO format reward.

One section per rule: the cheapest output that would game it, beside the
genuine R1-format outputs that must still pass (so rejecting everything
cannot pass this file). The genuine outputs are written here in the shapes
DeepSeek-R1 and R1-Zero emit (R1 paper, section 2.2 template; the
``|special_token|`` cold-start format of section 2.3.1).
"""

from __future__ import annotations

import pytest

from datagen.verify.format import R1_MIN_REASONING_CHARS, has_visible_answer, reasoning_length, verify_format
from datagen.verify.rewards import format_reward

REASONING = (
    "Okay, so I need to find the sum of 2 and 3. Let me start by counting: 2 + 1 = 3, and 3 + 1 = 4, "
    "then 4 + 1 = 5. Wait, let me double-check that by another route: 3 + 2 is also 5. So the sum is 5."
)


def reason(completion, **kw):
    v = verify_format(completion, **kw)
    assert v["outcome"] in ("correct", "incorrect"), v
    return "ok" if v["outcome"] == "correct" else v["detail"].split(":")[0]


def reward(completion, **kw):
    return format_reward([completion], **kw)[0]


# ---------------------------------------------------------------- genuine outputs

GENUINE = [
    # DeepSeek-R1: reasoning, then a summary with a boxed answer.
    f"<think>\n{REASONING}\n</think>\n\nTo add 2 and 3, count on from 3.\n\n**Final Answer**\n\\[\n\\boxed{{5}}\n\\]",
    # R1-Zero: the answer inside <answer> tags.
    f"<think> {REASONING} </think> <answer> 5 </answer>",
    # Reasoning in Chinese (no spaces between words).
    "<think>首先，我们需要计算二加三。二加一等于三，三加一等于四，四加一等于五。再用另一种方法验证：三加二也等于五。</think>答案是 5。",
    # A code answer.
    (f"<think>{REASONING} Now write it as a program reading two integers.</think>\n```python\n"
     "a, b = map(int, input().split())\nprint(a + b)\n```"),
    # Answers that are a single symbol or a word.
    f"<think>{REASONING}</think>$\\boxed{{\\pi}}$",
    f"<think>{REASONING}</think>\\boxed{{\\frac{{1}}{{2}}}}",
    f"<think>{REASONING}</think>∅",
    f"<think>{REASONING}</think>Yes.",
    f"<think>{REASONING}</think>\\boxed{{-\\infty}}",
]


@pytest.mark.parametrize("completion", GENUINE)
def test_genuine_r1_outputs_pass_verifier_and_reward(completion):
    assert reason(completion) == "ok"
    assert reward(completion) == 1.0


def test_reasoning_that_mentions_the_answer_tag_passes():
    completion = f"<think>{REASONING} I must put only the number in the <answer> tag.</think><answer>5</answer>"
    assert reward(completion) == 1.0 and reward(completion, require_answer_tags=True) == 1.0


def test_genuine_prefilled_think_passes():
    # The chat template wrote "<think>\n": the completion starts inside the reasoning.
    completion = f"{REASONING}\n</think>\n\nThe sum is $\\boxed{{5}}$."
    assert reward(completion) == 1.0 and reward(completion, think_prefilled=True) == 1.0


def test_genuine_r1_zero_with_required_answer_tags_passes():
    assert reward(f"<think>{REASONING}</think>\n<answer>\\boxed{{5}}</answer>", require_answer_tags=True) == 1.0


def test_genuine_cold_start_format_passes():
    tok = "|special_token|"
    completion = f"{tok}{REASONING}{tok}The sum of 2 and 3 is 5."
    assert reason(completion, special_token=tok) == "ok"
    assert reward(completion, special_token=tok) == 1.0


def test_a_long_genuine_reasoning_is_cheap_to_check():
    long = REASONING * 400 + " ".join(str(i) for i in range(20000))  # ~150 KB
    assert reward(f"<think>{long}</think>5") == 1.0


# ---------------------------------------------------------------- invisible answers

INVISIBLE_ANSWERS = [
    "\u200b",                      # zero-width space
    "\u2062\u2063",                # invisible times, invisible separator
    "\ufeff",                      # BOM / zero-width no-break space
    "\u200c\u200d\u2060\u00ad",    # ZWNJ, ZWJ, word joiner, soft hyphen
    "\u202e\u2066\u2069",          # bidi controls
    "\U000e0035",                  # tag digit five (Cf)
    "\u3000\u00a0\u2003",          # ideographic, no-break and em spaces
    "\u3164\u115f\uffa0",          # Hangul fillers (letters that draw nothing)
    "\u2800",                      # Braille blank
    "\u0301\u0308",                # combining marks with no base
    "\ue000",                      # private use
    "\\boxed{}",
    "\\boxed{ }",
    "\\boxed{\u200b}",
    "$\\boxed{\\,}$",
    "$ $",
    "\\(\\)",
    "\\[\\quad\\]",
    "\\text{}",
    "\\boxed{\\text{\\hspace{1cm}}}",
    "\\phantom{5}",
    "\\boxed{\\hphantom{42}}",
    "\\phantom 5",
    "\\vphantom\\pi",
    "&#8203;",
    "&nbsp;&zwnj;",
    "<|im_end|>",
    "<｜end▁of▁sentence｜>",
    "<!-- 5 -->",
    "<span></span>",
    "**  **",
    "...",
    "~\\;~",
    "```python\n```",
    "~~~\n\n~~~",
]


@pytest.mark.parametrize("answer", INVISIBLE_ANSWERS)
def test_invisible_answer_is_incorrect(answer):
    slugs = {"invisible_answer", "empty_answer"}  # empty: only what Python calls whitespace
    completion = f"<think>{REASONING}</think>{answer}"
    assert reason(completion) in slugs
    assert reward(completion) == 0.0
    assert reason(f"<think>{REASONING}</think><answer>{answer}</answer>") in slugs
    assert reason(f"|t|{REASONING}|t|{answer}", special_token="|t|") in slugs


@pytest.mark.parametrize("answer", ["5", "x", "\\pi", "五", "−1", "∞", "\\phantom{0}5", "\u200b7\u200b", "&#53;"])
def test_visible_answer_next_to_invisible_material_still_counts(answer):
    assert has_visible_answer(answer)
    assert reward(f"<think>{REASONING}</think>{answer}") == 1.0


@pytest.mark.parametrize("answer", ["The answer is \\boxed{}.", "\\boxed{5} or \\boxed{\\,}", "So the answer is \\boxed{",
                                    "**Final Answer** \\fbox{\u200b}", "5 \\boxed{\\boxed{}}"])
def test_an_empty_box_beside_other_text_is_incorrect(answer):
    assert reason(f"<think>{REASONING}</think>{answer}") == "empty_box"
    assert reward(f"<think>{REASONING}</think>{answer}") == 0.0


@pytest.mark.parametrize("answer", ["\\boxed{\\{\\}}", "\\boxed{\\{1, 2\\}}", "\\boxed{\\boxed{5}}", "\\boxed{a{b}c}",
                                    "```python\nprint(5)\n```"])
def test_boxes_and_blocks_with_content_pass(answer):
    assert reason(f"<think>{REASONING}</think>{answer}") == "ok"


@pytest.mark.parametrize("completion", ["\u200b\u200b", " \n\t", "\ufeff", ""])
def test_invisible_completion_is_empty(completion):
    assert reason(completion) == "empty_completion"


# ---------------------------------------------------------------- reasoning that is not there

@pytest.mark.parametrize("reasoning, slug", [
    ("", "empty_reasoning"),
    ("   \n\n  ", "empty_reasoning"),
    ("\u200b" * 500, "empty_reasoning"),
    ("\u2062\u2063\ufeff" * 100, "empty_reasoning"),
    ("\u3164" * 200, "empty_reasoning"),
])
def test_empty_or_invisible_reasoning_fails_the_verifier_by_default(reasoning, slug):
    assert reason(f"<think>{reasoning}</think>5") == slug
    assert reason(f"{reasoning}</think>5") == slug  # pre-filled form
    assert reward(f"<think>{reasoning}</think>5") == 0.0


@pytest.mark.parametrize("reasoning", [
    "r",
    "2+3=5",
    "The answer is 5.",
    "hmm " * 2000,
    "..." * 5000,
    "a" * 100_000,
    "Let me think. " * 500,
    "Wait. " * 1000,
    "\u200bthink\u200b" * 300,
    "思考" * 1000,
    "\\quad " * 1000,
])
def test_trivial_or_filler_reasoning_earns_no_format_reward(reasoning):
    completion = f"<think>{reasoning}</think>\\boxed{{5}}"
    assert reasoning_length(reasoning) < R1_MIN_REASONING_CHARS
    assert reward(completion) == 0.0
    assert reason(completion, min_reasoning_chars=R1_MIN_REASONING_CHARS) == "short_reasoning"


def test_reasoning_length_counts_visible_distinct_text():
    assert reasoning_length("Adding 2 and 3 gives 5, so the answer is 5.") == 43
    assert reasoning_length("\u200b".join("Adding 2 and 3 gives 5, so the answer is 5.")) == 43
    assert reasoning_length("hmm " * 1000) == reasoning_length("hmm hmm hmm")
    assert reasoning_length(REASONING * 50) == reasoning_length(REASONING + REASONING)


def test_min_reasoning_is_configurable():
    completion = "<think>2+3=5</think>5"
    assert reward(completion) == 0.0
    assert reward(completion, min_reasoning_words=0) == 1.0
    assert reward(completion, min_reasoning_words=0, min_reasoning_chars=5) == 1.0
    assert reward(completion, min_reasoning_words=0, min_reasoning_chars=6) == 0.0
    assert reason("<think></think>5", min_reasoning_chars=0) == "ok"
    with pytest.raises(ValueError, match="min_reasoning_chars"):
        verify_format(completion, min_reasoning_chars=-1)


# ---------------------------------------------------------------- tag structure

@pytest.mark.parametrize("completion, slug", [
    # tags out of order
    (f"</think>{REASONING}<think>5", "multiple_think_blocks"),
    (f"5</think><think>{REASONING}", "multiple_think_blocks"),
    # nested or duplicated think blocks
    (f"<think>{REASONING}<think>{REASONING}</think>more</think>5", "multiple_think_blocks"),
    (f"<think>{REASONING}</think><think>{REASONING}</think>5", "multiple_think_blocks"),
    (f"<think>{REASONING}</think>5<think>{REASONING}</think>", "multiple_think_blocks"),
    (f"<think>{REASONING}</think>5</think>", "multiple_think_blocks"),
    (f"<think><think>{REASONING}</think>5", "multiple_think_blocks"),
    # the answer only inside the think block
    (f"<think>{REASONING} So the answer is \\boxed{{5}}.</think>", "empty_answer"),
    (f"<think>{REASONING} <answer>5</answer></think>", "answer_in_think"),
    (f"<think>{REASONING} <answer>5</answer></think>5", "answer_in_think"),
    (f"<think>{REASONING}<answer></think>5</answer>", "malformed_answer_tags"),
    # text before the reasoning
    (f"The answer is 5. <think>{REASONING}</think>5", "text_before_think"),
    (f"\u200b<think>{REASONING}</think>5", "text_before_think"),
    # unclosed tags
    (f"<think>{REASONING} \\boxed{{5}}", "unclosed_think"),
    (f"<think>{REASONING}</think><answer>5", "malformed_answer_tags"),
    (f"<think>{REASONING}</think>5</answer>", "malformed_answer_tags"),
    (f"<think>{REASONING}</think><answer>5</answer><answer>6</answer>", "malformed_answer_tags"),
    (f"<think>{REASONING}</think><answer><answer>5</answer></answer>", "malformed_answer_tags"),
    # look-alike tags do not open or close anything
    (f"<Think>{REASONING}</Think>5", "missing_think"),
    (f"<think>{REASONING}</th\u200bink>5", "unclosed_think"),
    (f"<think>{REASONING}< /think>5", "unclosed_think"),
    (f"<think>{REASONING}&lt;/think&gt;5", "unclosed_think"),
    # no reasoning block at all
    ("\\boxed{5}", "missing_think"),
    # empty answers
    (f"<think>{REASONING}</think>", "empty_answer"),
    (f"<think>{REASONING}</think><answer>\n</answer>", "empty_answer"),
])
def test_structure_attacks_fail(completion, slug):
    assert reason(completion) == slug
    assert reward(completion) == 0.0


def test_required_answer_tags_cannot_be_skipped_or_padded():
    assert reason(f"<think>{REASONING}</think>5", require_answer_tags=True) == "missing_answer_tags"
    assert reason(f"<think>{REASONING}</think>junk <answer>5</answer>", require_answer_tags=True) == \
        "text_outside_answer"
    assert reason(f"<think>{REASONING}</think><answer>\u200b</answer>", require_answer_tags=True) == \
        "invisible_answer"


def test_prefilled_think_must_not_be_repeated():
    assert reason(f"<think>{REASONING}</think>5", think_prefilled=True) == "unexpected_think_open"
    assert reason(f"{REASONING}</think>5", think_prefilled=False) == "missing_think"


@pytest.mark.parametrize("completion, slug", [
    ("|t|" + REASONING, "unclosed_think"),
    ("|t|" + REASONING + "|t|5|t|", "multiple_think_blocks"),
    ("Sure. |t|" + REASONING + "|t|5", "text_before_think"),
    ("|t||t|5", "empty_reasoning"),
    ("|t|" + "hmm " * 300 + "|t|5", "short_reasoning"),
    ("|t|" + REASONING + "|t|", "empty_answer"),
    (f"<think>{REASONING}</think>5", "missing_think"),
])
def test_cold_start_attacks_fail(completion, slug):
    assert reason(completion, special_token="|t|", min_reasoning_chars=R1_MIN_REASONING_CHARS) == slug
    assert reward(completion, special_token="|t|") == 0.0


@pytest.mark.parametrize("completion", [5, {"content": "<think>r</think>5"}, ["<think>r</think>5"], b"<think>"])
def test_non_text_completion_is_unparseable_never_a_crash(completion):
    v = verify_format(completion)
    assert v["outcome"] == "unparseable" and v["score"] == 0.0


def test_pathological_sizes_stay_linear():
    import time

    start = time.perf_counter()
    for completion in ["<think>" * 100_000, "</think>" * 100_000, "<think>" + "\\phantom{" * 50_000 + "</think>x",
                       f"<think>{REASONING}</think>" + "\\phantom{" * 50_000, f"<think>{REASONING}</think>" +
                       "\u200b" * 300_000 + "5"]:
        verify_format(completion)
    assert time.perf_counter() - start < 5


# ---------------------------------------------------------------- red team, issue 11 follow-up
# Hidden answers by rendering (colour, style, layout-only commands, glyphs the
# Unicode name declares blank); the reasoning floor measures content (words,
# a CJK character is a word); a tag inside code is no think block.

@pytest.mark.parametrize("answer", [
    "\\textcolor{white}{The answer is 4}", "\\hfill", "\\newline", "\\hfill\\newline\\par",
    "<div style='display:none'>4</div>", "\U0001D159", "\U0001D159\u3164\u2800",
    # fresh
    "<span style=\"color:#fff\">4</span>", "{\\color{white} 4}", "<p hidden>4</p>", "<b style='visibility: hidden'>4</b>",
    "<span style='opacity:0'>4</span>", "\\vfill\\linebreak\\smallskip", "\\textcolor{transparent}{\\boxed{4}}",
])
def test_hidden_answers_earn_no_format_reward(answer):
    assert reward(f"<think>{REASONING}</think>{answer}") == 0.0
    assert not has_visible_answer(answer)


@pytest.mark.parametrize("answer", [
    "\\textcolor{red}{4}", "<div>4</div>", "\u2422", "4\\hfill", "\\color{blue} 4", "\\colorbox{white}{4}",
    "{\\color{white} 4} The answer is 5", "The answer is 4. <span style='opacity:0.5'>note</span>", "$\\boxed{4}$",
])
def test_visible_answers_with_styling_still_pass(answer):
    assert reward(f"<think>{REASONING}</think>{answer}") == 1.0


@pytest.mark.parametrize("reasoning", [
    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ", " ".join(str(k) for k in range(20)), " ".join("abcdefghijklmnopqrstuvwxyz"),
    "x^2+2x+1 = (x+1)^2 \\cdot \\frac{1}{2}", "hmm " * 500, "ok ok ok ok ok ok ok ok", "思考" * 1000,
])
def test_content_free_reasoning_earns_no_format_reward(reasoning):
    assert reward(f"<think>{reasoning}</think>\\boxed{{5}}") == 0.0


@pytest.mark.parametrize("reasoning", [
    "Adding 2 and 3 gives 5, so the answer is 5.",
    "二つの数を足すと五になるので、答えは五です。確認すると正しい。",  # 31 characters of dense Japanese
    "两数相加得五，所以答案是五。",                                      # short Chinese
    "Tính tổng hai số ta được năm.", "Сложив два и три, получаем пять, это ответ.",
])
def test_short_genuine_reasoning_in_any_script_earns_the_reward(reasoning):
    assert reward(f"<think>{reasoning}</think>\\boxed{{5}}") == 1.0


@pytest.mark.parametrize("completion", [
    f"<think>{REASONING} The parser looks for `<think>` tags.</think>The answer is 4.",
    f"<think>{REASONING}\n```python\ns = '<think>'\n```\n</think>The answer is 4.",
    f"<think>{REASONING}</think>Here is the code:\n```python\nprint('<think>x</think>')\n```",
])
def test_think_tags_inside_code_are_not_blocks(completion):
    assert reason(completion) == "ok"


def test_real_second_think_blocks_still_fail():
    assert reason(f"<think>{REASONING}</think><think>again</think>4") == "multiple_think_blocks"
    assert reason(f"<think>{REASONING}</think>4<think>more</think>") == "multiple_think_blocks"
