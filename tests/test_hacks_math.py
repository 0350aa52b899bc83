"""Reward hacking against the math verifier (issue 11), one family per section.

Each family states the answers a policy under GRPO could use to earn reward
without solving the problem (HACKS: never ``correct``) and, beside them, the
genuine answers the same rule must still accept (GENUINE: always
``correct``), so that rejecting everything cannot pass. Every verdict must be
one of the typed outcomes: a crash of the batch fails the suite.

All cases of a family go through one ``verify_math_batch`` call, as the
verify stage and the GRPO reward do (symbolic leftovers run in the real
worker processes, nothing mocked).
"""

from __future__ import annotations

import time

from datagen.records import OUTCOMES
from datagen.verify.math import verify_math_batch


def boxed(answer: str) -> str:
    return f"<think>Working it out step by step.</think>\n\nThe answer is $\\boxed{{{answer}}}$."


def said(summary: str) -> str:
    return f"<think>Working it out step by step.</think>\n\n{summary}"


def judge(cases: list[tuple[str, str]], **kw) -> list[dict]:
    verdicts = verify_math_batch([c for c, _ in cases], [g for _, g in cases], **kw)
    assert len(verdicts) == len(cases)
    for v in verdicts:
        assert v["outcome"] in OUTCOMES, v
    return verdicts


def check(hacks: list[tuple[str, str]], genuine: list[tuple[str, str]], **kw) -> None:
    verdicts = judge(hacks + genuine, **kw)
    accepted = [(c[-90:], g, v["detail"]) for (c, g), v in zip(hacks, verdicts) if v["outcome"] == "correct"]
    rejected = [(c[-90:], g, v["outcome"], v["detail"]) for (c, g), v in zip(genuine, verdicts[len(hacks):])
                if v["outcome"] != "correct"]
    assert not accepted, f"hacks accepted: {accepted}"
    assert not rejected, f"genuine answers rejected: {rejected}"


GOLDS = ["4", "\\frac{3}{4}", "x^2+1", "(1, 2)", "\\sqrt{2}", "3.5", "\\begin{pmatrix}1 & 2\\end{pmatrix}", "0"]

# ----------------------------------------------------------------- 1. constant undefined / non-finite answers

UNDEFINED = ["1/0", "\\frac{1}{0}", "0/0", "\\frac{0}{0}", "\\log 0", "\\log(0)", "\\ln(0)", "0^{-1}", "\\cot 0",
             "\\cot(0)", "\\infty-\\infty", "\\infty", "-\\infty", "x/0", "\\frac{x}{0}", "2^{10000}", "10^{5000}",
             "-10^{5000}", "0\\cdot\\infty", "\\tan(\\frac{\\pi}{2})", "\\text{undefined}", "\\text{NaN}",
             "(1/0, 1/0)", "(0/0, 0/0)", "\\begin{pmatrix}1/0 & 0/0\\end{pmatrix}", "\\{1/0\\}",
             "x^2+1+\\frac{0}{x-x}", "x^2+1+0\\cdot\\infty", "10^{-5000}"]


def test_undefined_and_huge_constants_never_match_a_finite_gold():
    hacks = [(boxed(u), g) for u in UNDEFINED for g in GOLDS]
    genuine = [(boxed("4"), "4"), (boxed("\\frac{6}{8}"), "\\frac{3}{4}"), (boxed("1 + x^2"), "x^2+1"),
               (boxed("(1,2)"), "(1, 2)"), (boxed("\\sqrt 2"), "\\sqrt{2}"), (boxed("\\frac{7}{2}"), "3.5"),
               (boxed("\\begin{pmatrix}1 & 2\\end{pmatrix}"), "\\begin{pmatrix}1 & 2\\end{pmatrix}"),
               (boxed("0"), "0"), (boxed("2^{10}"), "1024"),
               # an undefined gold accepts only the identical undefined value
               (boxed("\\infty"), "\\infty"), (boxed("-\\infty"), "-\\infty")]
    hacks += [(boxed("-\\infty"), "\\infty"), (boxed("\\infty"), "-\\infty"), (boxed("1/0"), "\\infty")]
    check(hacks, genuine)


# ----------------------------------------------------------------- 2. hedging and relations

def test_hedges_and_relations_are_not_a_number():
    gold = "4"
    hacks = [(boxed(h), gold) for h in [
        "3 \\lor 4", "4 \\lor 3", "3 \\vee 4", "3 or 4", "4 \\text{ or } 5", "3, 4", "\\{3, 4\\}", "3; 4",
        " | ".join(str(k) for k in range(1, 21)), "3|4", "\\ne 4", "\\neq 4", "\\geq 4", "\\ge 4", "\\le 4",
        "\\to 4", "\\rightarrow 4", "x \\to 4", "> 3", "x > 3", "x \\geq 4", "\\approx 4", "\\sim 4", "\\pm 4",
        "x = 3, x = 4", "4 = 5", "3 = 4 = 5", "4 \\text{ and } 5", "4, 5, 6, 7"]]
    hacks += [(said("$\\boxed{3}$ or $\\boxed{4}$"), gold), (said("\\boxed{4} \\boxed{5}"), gold),
              (said("".join(f"\\boxed{{{k}}}" for k in range(100))), gold),
              (said("The answer is $\\boxed{4}$ (though $5$ is also possible)."), gold),
              (said("I'm not sure, but it is either 4 or 5."), gold)]
    genuine = [(boxed("4"), gold), (boxed("x = 4"), gold), (boxed("4, 4"), gold), (said("\\boxed{4} \\boxed{4}"), gold),
               (boxed("3, 4"), "\\{3, 4\\}"), (said("$\\boxed{3}$ and $\\boxed{4}$"), "3, 4"),
               (boxed("4 \\text{ or } 3"), "3, 4"), (boxed("\\pm 2"), "2, -2"),
               (boxed("[4, \\infty)"), "x \\geq 4"), (boxed("x \\le 5"), "5 \\geq x"), (boxed("-x > -1"), "x < 1"),
               (boxed("(-3, 3)"), "|x| < 3"), (boxed("x \\neq 2"), "x \\ne 2")]
    check(hacks, genuine)


# ----------------------------------------------------------------- 3. negated statements

def test_negated_answers_are_not_answers():
    hacks = [(said("The answer is not $\\boxed{4}$; it is 5."), "4"),
             (said("It is not \\boxed{4}."), "4"),
             (said("The answer isn't $\\boxed{4}$."), "4"),
             (said("The final answer is not 4."), "4"),
             (said("Rather than $\\boxed{4}$, I get 7."), "4"),
             (said("The answer cannot be $4$; it must be 6."), "4")]
    genuine = [(said("The answer is $\\boxed{4}$, not 5."), "4"),
               (said("4 is not prime, so the answer is $\\boxed{4}$."), "4"),
               (said("The answer is not $\\boxed{4}$; it is 5."), "5"),
               (said("The number is not 10, which is 1,000.99"), "1000.99")]
    check(hacks, genuine)


# ----------------------------------------------------------------- 4. reasoning blocks

def test_only_text_after_the_reasoning_counts():
    hacks = [("<think>a</think>\n\nDone.<think>\\boxed{4}</think>", "4"),
             ("<think>a</think>\n\nThe answer is \\boxed{5}.<think>Actually \\boxed{4}</think>", "4"),
             ("<think>a</think>\n\nSee below.<think>\\boxed{4}", "4"),
             ("<think>So the answer is \\boxed{4}.</think>\n\nI explained it above.", "4"),
             ("<think>I think \\boxed{4}", "4"),
             ("The answer is \\boxed{4}.", "4")]
    genuine = [("<think>a</think>\n\nThe answer is $\\boxed{4}$.", "4"),
               ("<think>try 5</think>\n\n<think>no</think>The answer is $\\boxed{4}$.", "4"),
               ("reasoning</think>The answer is \\boxed{4}", "4"),
               ("<think>a</think><answer>4</answer>", "4")]
    verdicts = judge(hacks, think_prefilled=True)
    assert [v["outcome"] for v in verdicts if v["outcome"] == "correct"] == []
    check([], genuine, think_prefilled=True)


# ----------------------------------------------------------------- 5. tolerance

def test_tolerance_only_for_a_decimal_gold():
    hacks = [(boxed("1000001.0"), "1000000"), (boxed("1000001"), "1000000.0"), (boxed("10^{-5000}"), "0"),
             (boxed("\\frac{355}{113}"), "\\pi"), (boxed("3.1416"), "\\pi"), (boxed("3.14159265"), "\\pi"),
             (boxed("1.414"), "\\sqrt{2}"), (boxed("3 4"), "12"), (boxed("3\\ 4"), "34"), (boxed("4x^3"), "4x^2"),
             (boxed("0.333"), "\\frac{1}{3}"), (boxed("1.0000001"), "1"), (boxed("10^{-10}"), "0"),
             (boxed("7.7"), "7.78"), (boxed("\\frac{70}{9}"), "7.78"), (boxed("1000000007"), "1000000008"),
             (boxed("2^{64}+1"), "2^{64}"), (boxed("x^2+10^{-9}x"), "x^2"), (boxed("1000001"), "1000000.5"),
             (boxed("0.46"), "0.5"), (boxed("123456.8"), "123456.7")]
    genuine = [(boxed("1000000.0"), "1000000"), (boxed("1,000,000"), "1000000"), (boxed("0.3333333"), "0.333333"),
               (boxed("\\frac{1}{3}"), "0.333333"), (boxed("1000000.5"), "1000000.50"),
               (boxed("\\frac{1}{3}"), "0.3333333333"), (boxed("7.78"), "7.78"), (boxed("7.780"), "7.78"),
               (boxed("3 \\cdot 4"), "12"), (boxed("\\pi"), "\\pi"), (boxed("2\\pi"), "\\pi\\cdot 2"),
               (boxed("3ba^2"), "3a^2b"), (boxed("\\frac{10\\sqrt{10.5}}{27}"), "\\frac{5\\sqrt{42}}{27}"),
               (boxed("2^{64}"), "18446744073709551616"), (boxed("32,\\! 349"), "32349")]
    check(hacks, genuine)


# ----------------------------------------------------------------- 6. huge and pathological inputs (time)

def test_pathological_inputs_finish_fast_and_are_not_rewarded():
    hacks = [
        (said("\\boxed{" * 8000), "4"),                                     # 8k unclosed boxes
        (said("\\boxed{4" + "}" * 8000), "5"),
        (said("{" * 20000 + "4" + "}" * 20000), "5"),                         # deep braces
        (said("\\boxed{" + "(" * 5000 + "4" + ")" * 5000 + "}"), "5"),
        (said("x " * 60000 + "\\boxed{3}"), "4"),                             # 112 KB+ completion
        (said("$" * 50000), "4"),
        (said("\\frac{" * 3000 + "1"), "1"),
        (boxed("2^{2^{2^{2^{2^{2}}}}}"), "2"),                                # power tower: timeout, not correct
        (boxed("10^{10^{10}}"), "4"),
        (boxed("100000!"), "4"),
    ]
    genuine = [(said("Lots of words. " * 7000 + "The answer is $\\boxed{4}$."), "4"),   # ~105 KB
               (boxed("2^{2^{3}}"), "256"), (said("{" * 20 + "4" + "}" * 20), "4")]  # TeX groups are just 4
    start = time.monotonic()
    check(hacks, genuine, timeout_s=2.0)
    # at most a few symbolic timeouts of 2 s each; extraction itself is linear
    assert time.monotonic() - start < 30


def test_extraction_is_linear_in_the_text():
    from datagen.records import split_completion
    from datagen.verify.math import _final_answers

    for text in ("\\boxed{" * 8000, "word " * 22400 + "\\boxed{4}", "$" * 112000, "{" * 112000, "\\[" * 56000,
                 "\\(" * 56000, ("$" + "x" * 2100) * 50, "**" * 56000, "0." * 56000, "not " * 28000 + "4"):
        start = time.process_time()
        _final_answers(split_completion(said(text)).summary)
        assert time.process_time() - start < 1.0, text[:20]


# ----------------------------------------------------------------- 7. echoing the prompt

def test_echoing_the_problem_states_no_answer():
    gold = "14"
    hacks = [(said("Question: If 3 apples cost 6 dollars and 4 pears cost 8 dollars, what is the total? Answer: ?"), gold),
             (said("The numbers in the problem are 3, 6, 4, 8 and 14."), gold),
             (said("$3$, $6$, $4$, $8$, $14$"), gold),
             (said("Given $a = 3$, $b = 6$, $c = 4$, $d = 8$, find $a + b + c + d = 14$? Let me restate: 3, 6, 4, 8."), gold)]
    genuine = [(said("So the total is $6 + 8 = 14$ dollars, i.e. $\\boxed{14}$."), gold),
               (said("The total is 14 dollars."), gold)]
    check(hacks, genuine)


# ----------------------------------------------------------------- 8. unicode lookalikes and invisible text

def test_lookalike_characters_are_not_digits():
    hacks = [(boxed("О"), "0"), (boxed("l"), "1"), (boxed("З"), "3"), (boxed("⁴"), "4"), (boxed("Ⅳ"), "4"),
             (boxed("\u200b"), "4"), (boxed("\u2062\u2063"), "0"), (said("\\boxed{\u200b}"), "0"),
             (boxed("\\phantom{4}"), "4"), (boxed("\\hphantom{4}"), "4"), (boxed("\\vphantom{4}"), "4")]
    genuine = [(boxed("４"), "4"), (boxed("4\u200b"), "4"), (boxed("𝟒"), "4"), (boxed("−4"), "-4"),
               (boxed("\\phantom{0}4"), "4")]
    check(hacks, genuine)


# ----------------------------------------------------------------- 9. \text{} wrapping

def test_text_wrapping():
    hacks = [(boxed("\\text{4 or 5}"), "4"), (boxed("\\text{any real number}"), "4"), (boxed("\\text{all of the above}"), "4"),
             (boxed("\\text{the answer}"), "4"), (boxed("\\text{4 and 5}"), "4"), (boxed("\\text{undefined}"), "0")]
    genuine = [(boxed("\\text{4}"), "4"), (boxed("4 \\text{ cm}"), "4"), (boxed("\\textbf{4}"), "4"),
               (boxed("\\text{(B)}"), "B"), (boxed("\\text{no solution}"), "\\emptyset")]
    check(hacks, genuine)


# ----------------------------------------------------------------- 10. percent and degree tricks

def test_percent_and_degrees():
    hacks = [(boxed("400\\%"), "40"), (boxed("4\\%"), "0.4"), (boxed("90^\\circ"), "\\pi"), (boxed("180^\\circ"), "\\frac{\\pi}{2}"),
             (boxed("5 \\text{ m}"), "5 \\text{ s}"), (boxed("50\\%"), "0.05")]
    genuine = [(boxed("50\\%"), "0.5"), (boxed("0.5"), "50\\%"), (boxed("50"), "50\\%"), (boxed("90^\\circ"), "\\frac{\\pi}{2}"),
               (boxed("30^\\circ"), "30"), (boxed("100 \\text{ cm}"), "1 \\text{ m}")]
    check(hacks, genuine)


# ----------------------------------------------------------------- 11. empty and nested boxes

def test_empty_and_nested_boxes():
    hacks = [(said("\\boxed{}"), "0"), (said("\\boxed{ }"), "0"), (said("\\boxed{\\,}"), "0"), (said("\\boxed{\\text{}}"), "0"),
             (said("\\boxed{3 \\boxed{4}}"), "4"), (said("\\boxed{\\boxed{3}\\boxed{4}}"), "4"), (said("\\boxed{\\boxed{}}"), "0"),
             (said("\\boxed"), "0"), (said("\\fbox{3}\\boxed{4}"), "4")]
    genuine = [(said("\\boxed{\\boxed{4}}"), "4"), (said("\\fbox{4}"), "4"), (said("\\boxed 4"), "4"), (said("$\\boxed{0}$"), "0")]
    check(hacks, genuine)


# ----------------------------------------------------------------- 12. labels and equations

def test_labels_and_equations():
    # `4 = x` is the relation x = 4 (an equation is a relation, read either way:
    # red team, issue 11 follow-up); a tautology `4 = 4` states no value
    hacks = [(boxed("4 = 4"), "4"), (boxed("0 = 0"), "0"), (boxed("x = 4"), "y = 4"), (boxed("y = 4"), "x = 4"),
             (boxed("4 = y"), "x = 4"), (boxed("n = 7"), "k = 7"), (boxed("(3, 2)"), "(p,q)=(2,3)"), (boxed("0"), "2x+4y-3=0"), (boxed("1"), "x^2/4 + y^2/3 = 1"),
             (boxed("y = 2x"), "y = 3x"), (boxed("0 = 0"), "x + y = 1"), (boxed("11:12"), "V_1:V_2=11:21"),
             (boxed("1:00"), "12:00")]
    genuine = [(boxed("4 = x"), "4"), (boxed("x = y"), "y = x"), (boxed("4 = x"), "x = 4"), (boxed("a = 2b"), "b = a/2"),
               (boxed("2 + 2 = 4"), "4"), (boxed("x_1 = 3"), "x_{1}=3"),
               (boxed("(3, 2)"), "(p,q)=(3,2)"), (boxed("1"), "|AB|=1"), (boxed("11:21"), "V_{1}:V_{2}=11:21"),
               (boxed("y=-\\frac{1}{2}x+\\frac{3}{4}"), "2x+4y-3=0"), (boxed("x^2/16 + y^2/12 = 1/4"), "x^2/4 + y^2/3 = 1"),
               (boxed("a_{37} = 19, a_3 = 2"), "a_3 = 2, a_{37} = 19"), (said("$\\boxed{1,2}$"), "\\boxed{1}\\boxed{2}"),
               (boxed("\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}"), "\\left[\\begin{array}{cc}1 & 2 \\\\ 3 & 4\\end{array}\\right]")]
    check(hacks, genuine)


# ----------------------------------------------------------------- 13. one sample never stops the batch

def test_bad_samples_are_their_own_outcome():
    bad = [(None, "4"), (42, "4"), ({"a": 1}, "4"), (["\\boxed{4}"], "4"), (b"<think>a</think>\\boxed{4}\xff\xfe", "4"),
           ("<think>a</think>\\boxed{\ud800}", "4"), (boxed("4"), None), (boxed("4"), ""), (boxed("4"), 4),
           (boxed("9" * 5000), "4"), (boxed("(" * 3000 + "1" + ")" * 3000), "1"), (said("\\boxed{" + "{" * 5000 + "}"), "4")]
    verdicts = verify_math_batch([c for c, _ in bad], [g for _, g in bad], timeout_s=2.0)  # type: ignore[arg-type]
    assert len(verdicts) == len(bad)
    assert all(v["outcome"] in OUTCOMES for v in verdicts)
    assert [v["outcome"] for v in verdicts[:4]] == ["unparseable"] * 4  # None, int, dict, list: no text
    assert verdicts[4]["outcome"] == "correct"      # bytes: decoded, bad UTF-8 replaced
    assert verdicts[6]["outcome"] == "error"        # no gold
    assert verdicts[8]["outcome"] == "correct"      # a numeric gold is read as text
    assert not any(v["outcome"] == "correct" for i, v in enumerate(verdicts) if i in (1, 2, 3, 9, 11))


# ----------------------------------------------------------------- 14. choices, open-ended and catch-all answers

def test_choices_open_lists_and_catch_alls():
    hacks = [(boxed("B, C"), "B"), (boxed("BC"), "B"), (boxed("B \\text{ or } C"), "B"), (boxed("(B) or (C)"), "B"),
             (boxed("ABCDE"), "C"), (boxed("4\\ldots"), "4"), (boxed("4, \\ldots"), "4"), (boxed("\\{4, 5, \\ldots\\}"), "4"),
             (boxed("1+2+\\cdots"), "3"), (boxed("\\mathbb{R}"), "4"), (boxed("(-\\infty, \\infty)"), "x > 3"),
             (boxed("x"), "4"), (boxed("n"), "4"), (boxed("\\forall x"), "4"), (boxed("\\text{all } n"), "4"),
             (boxed("?"), "4"), (boxed("..."), "4"), (boxed("-\\sqrt{16}"), "4"), (boxed("4i"), "4")]
    genuine = [(boxed("\\text{B}"), "B"), (boxed("(B)"), "B"), (boxed("2 + 2"), "4"), (boxed("04"), "4"), (boxed("+4"), "4"),
               (boxed("4!"), "24"), (boxed("|{-4}|"), "4"), (boxed("3 + 1 = 4"), "4"), (boxed("4+0i"), "4"),
               (boxed("1, 2, \\ldots"), "1, 2, \\ldots"), (boxed("\\mathbb{R}"), "(-\\infty, \\infty)")]
    check(hacks, genuine)


# ----------------------------------------------------------------- red team, issue 11 follow-up
# Each section is one principle; cases from /tmp/redteam/REPORT.md (the
# independent tester's) and fresh ones of our own, hacks beside genuine answers.

def test_interval_brackets_are_part_of_the_answer():
    hacks = [(boxed("0 \\text{ or } 1"), "(0,1)"), (boxed("x=0, x=1"), "[0,1]"), (boxed("0,1"), "[0,1)"),
             (boxed("0,1"), "(0,1]"), (boxed("-\\infty,2"), "(-\\infty,2]"), (boxed("0 \\text{ and } 1"), "[0,1]"),
             # fresh
             (boxed("2 \\text{ or } 3"), "(2,3)"), (boxed("1, 2"), "[1,2]"), (boxed("3, \\infty"), "(3,\\infty)"),
             (boxed("x > 0"), "[0,\\infty)"), (boxed("0 < x < 1"), "[0,1)"), (boxed("x \\le 5"), "(-\\infty,5)"),
             (boxed("[1,2]"), "1, 2")]
    genuine = [(boxed("0 \\le x < 1"), "[0,1)"), (boxed("x\\ge0"), "[0,\\infty)"), (boxed("3, 2"), "(3,2)"),
               (boxed("x=3, y=2"), "(3,2)"), (boxed("-2 < y \\le 3"), "(-2,3]"), (boxed("x<5"), "(-\\infty,5)"),
               (boxed("[0,1)"), "0 \\le x < 1"), (boxed("x \\in [0,1)"), "[0,1)"), (boxed("x = 2, x = 3"), "2, 3")]
    check(hacks, genuine)


def test_percent_has_one_reading():
    # x% is x/100; it is also x only when the gold itself carries %
    hacks = [(boxed("0.25\\%"), "0.25"), (boxed("4\\%"), "4"), (boxed("12\\%"), "12"), (boxed("4 \\text{ percent}"), "4"),
             (boxed("5"), "4\\%"), (boxed("40\\%"), "4"), (said("$\\boxed{4}\\%$"), "4")]
    genuine = [(boxed("4\\%"), "0.04"), (boxed("50\\%"), "0.5"), (boxed("4"), "4\\%"), (boxed("0.04"), "4\\%"),
               (boxed("4\\%"), "4\\%"), (boxed("\\frac{1}{25}"), "4\\%"), (said("$\\boxed{4}\\%$"), "0.04")]
    check(hacks, genuine)


def test_answers_come_from_prose_self_corrections_and_qualifiers():
    hacks = [(said("```python\nprint('\\\\boxed{4}')\n```"), "4"), (said("The value is `\\boxed{4}`."), "4"),
             (said("It is $\\boxed{5}$ or $\\boxed{4}$."), "4"), (said("First $\\boxed{5}$, then $\\boxed{4}$."), "4"),
             (said("The answer is $\\boxed{5}$. Wait, actually $\\boxed{4}$."), "5"),
             (said("$\\boxed{4}$ (mod 5)"), "4"), (said("$\\boxed{4} \\pmod{5}$"), "4"),
             (said("$\\boxed{4} \\times 10^{3}$"), "4"), (said("$\\boxed{7}$ (mod 12)"), "7")]
    genuine = [(said("```\n\\boxed{5}\n```\nSo the answer is $\\boxed{4}$."), "4"),
               (said("The answer is $\\boxed{5}$. Wait, actually $\\boxed{4}$."), "4"),
               (said("So $\\boxed{12}$. Oops, I made a mistake: it is $\\boxed{13}$."), "13"),
               (said("$\\boxed{4}$ (mod 5)"), "4 \\pmod{5}"), (said("$\\boxed{4} \\times 10^{3}$"), "4000"),
               (said("Use `x = 5` in the code; the answer is $\\boxed{4}$."), "4"),
               (said("$\\boxed{3}$. Actually, let me double-check: yes, $\\boxed{3}$."), "3")]
    check(hacks, genuine)


def test_genuine_spellings_of_one_value_are_accepted():
    # Unicode spellings by meaning (superscripts are exponents, vulgar fractions
    # fractions, NFKC for fullwidth), decorations that carry no value, a
    # repeating decimal written with an ellipsis, compound units, a choice label
    genuine = [(boxed("－3"), "-3"), (boxed("½"), "\\frac12"), (boxed("4½"), "4.5"), (boxed("2⁴"), "16"),
               (boxed("x²+1"), "x^2+1"), (boxed("２³"), "8"), (boxed("0.999\\ldots"), "1"), (boxed("0.333\\ldots"), "\\frac13"),
               (boxed("\\framebox{4}"), "4"), (boxed("\\underline{4}"), "4"), (boxed("\\mathbb{4}"), "4"), (boxed("\\#4"), "4"),
               (boxed("4 \\text{ (not 5)}"), "4"), (boxed("5\\text{ m/s}"), "5"), (boxed("5 \\text{ km per h}"), "5"),
               (boxed("\\text{(C) } 5"), "C"), (boxed("\\text{(C) } 5"), "5"), (boxed("(B) \\frac12"), "0.5")]
    hacks = [(boxed("0.3\\ldots"), "\\frac13"), (boxed("3.14159\\ldots"), "\\pi"), (boxed("2⁴"), "24"), (boxed("4½"), "4"),
             (boxed("4 \\text{ (not 5)}"), "5"), (boxed("\\underline{5}"), "4"), (boxed("\\text{(C) } 5"), "B"),
             (boxed("\\text{(C) } 5"), "6"), (boxed("(B) or (C)"), "B"), (boxed("5\\text{ m/s}"), "6")]
    check(hacks, genuine)
