"""Math verifier: one literal case per rule (issue 3, section 1).

Symbolic cases and the timeout run the real worker process (sympy in a
child, killed past the limit); nothing is mocked.
"""

from __future__ import annotations

import threading

import pytest

from datagen.verify.math import extract_final_answer, verify_math, verify_math_batch


def done(summary: str, reasoning: str = "Working it out.") -> str:
    """A finished completion: reasoning, closed think block, then the summary."""
    return f"<think>{reasoning}</think>\n\n{summary}"


def outcome(answer_text: str, gold: str, **kw) -> str:
    return verify_math(done(f"The answer is $\\boxed{{{answer_text}}}$."), gold, **kw)["outcome"]


# ----------------------------------------------------------------- where the final answer comes from


def test_answer_only_inside_reasoning_is_unparseable():
    v = verify_math(done("I explained everything above.", reasoning="So the answer is \\boxed{5}."), "5")
    assert v["outcome"] == "unparseable"
    assert v["score"] == 0.0


def test_unclosed_think_block_is_unparseable_even_with_a_box():
    v = verify_math("<think>1 + 2 = 3, so \\boxed{3}", "3")
    assert v["outcome"] == "unparseable"
    assert "never closed" in v["detail"]


def test_box_in_reasoning_does_not_override_the_summary():
    completion = done("The answer is $\\boxed{7}$.", reasoning="First try: \\boxed{8}.")
    assert verify_math(completion, "8")["outcome"] == "incorrect"
    assert verify_math(completion, "7")["outcome"] == "correct"


def test_prefilled_think_without_opening_tag():
    assert verify_math("1 + 2 = 3.</think>The answer is $\\boxed{3}$.", "3")["outcome"] == "correct"


def test_extract_prefers_box_then_phrase_then_stated_line():
    assert extract_final_answer("so 4 is wrong; the answer is \\boxed{5}") == "5"
    assert extract_final_answer("The final answer is $\\frac{3}{4}$.") == "\\frac{3}{4}"
    assert extract_final_answer("**Answer:** 9") == "9"
    assert extract_final_answer("Therefore, the area is 24 square units.") == "24 square units"
    assert extract_final_answer("$x = 5$") == "x = 5"
    assert extract_final_answer("See the reasoning above for details.") is None
    assert extract_final_answer("") is None


def test_phrase_answer_keeps_decimal_point():
    assert verify_math(done("The answer is 3.5."), "3.5")["outcome"] == "correct"
    assert verify_math(done("The answer is 3."), "3.5")["outcome"] == "incorrect"


# ----------------------------------------------------------------- normalizations (one each)


@pytest.mark.parametrize(
    "answer, gold",
    [
        ("\\dfrac{3}{5}", "\\frac35"),                         # \dfrac
        ("\\tfrac{3}{5}", "0.6"),                               # \tfrac
        ("\\left(\\frac{1}{2}\\right)", "\\frac12"),           # \left \right
        ("10\\,000", "10000"),                                  # \, thin space (and thousands)
        ("1\\!000", "1000"),                                    # \! negative space
        ("5 \\text{ cm}", "5"),                                 # \text unit
        ("12 \\text{ meters}", "12"),                           # unit word
        ("30^\\circ", "30"),                                    # ^\circ
        ("30°", "30"),                                          # °
        ("50", "50\\%"),                                        # percent: the gold asks for one
        ("50\\%", "0.5"),                                       # percent as a fraction
        ("1,000,000", "1000000"),                               # thousands, commas
        ("1{,}000", "1000"),                                    # thousands, {,}
        ("10 000", "10000"),                                    # thousands, space
        ("2\\frac{1}{2}", "\\frac52"),                          # mixed number
        ("2 1/2", "2.5"),                                       # mixed number, plain
        ("0.\\overline{3}", "\\frac13"),                        # repeating decimal
        ("0.1\\overline{6}", "\\frac16"),                       # repeating decimal, fixed part
        ("2e5", "200000"),                                      # scientific, e
        ("2\\times10^{5}", "200000"),                           # scientific, \times 10^
        ("\\emptyset", "\\varnothing"),                         # empty set
        ("\\{\\}", "\\emptyset"),                               # empty set, braces
        ("\\$12.50", "12.5"),                                   # dollar sign
    ],
)
def test_normalization(answer, gold):
    assert outcome(answer, gold) == "correct"


def test_pm_expands_to_both_answers():
    assert outcome("2 \\pm \\sqrt{3}", "2+\\sqrt{3}, 2-\\sqrt{3}") == "correct"
    assert outcome("\\pm 3", "3") == "incorrect"


# ----------------------------------------------------------------- comparison rules


def test_exact_integers_are_not_compared_with_tolerance():
    assert outcome("1000000008", "1000000007") == "incorrect"


def test_tolerance_only_against_a_non_integer_decimal_gold():
    # against a non-integer decimal gold: within 1e-6 relative, nothing looser
    assert outcome("\\frac{1}{3}", "0.3333333333") == "correct"
    assert outcome("0.3333333", "0.333333") == "correct"
    assert outcome("\\frac{70}{9}", "7.78") == "incorrect"
    assert outcome("\\pi", "3.14") == "incorrect"
    assert outcome("0.\\overline{3}", "0.3") == "incorrect"
    assert outcome("7.7", "7.78") == "incorrect"
    assert outcome("3.15", "3.14") == "incorrect"
    # integers and exact golds: no tolerance at all
    assert outcome("6.0200001e23", "6.02\\times10^{23}") == "incorrect"
    assert outcome("1000001.0", "1000000") == "incorrect"
    assert outcome("1000000.0", "1000000") == "correct"
    assert outcome("0.3333333333", "\\frac{1}{3}") == "incorrect"
    assert outcome("\\frac{355}{113}", "\\pi") == "incorrect"


def test_wrong_sign_is_incorrect():
    assert outcome("-7", "7") == "incorrect"


def test_sets_are_unordered():
    assert outcome("\\{3, 1, 2\\}", "\\{1, 2, 3\\}") == "correct"
    assert outcome("\\{1, 2\\}", "\\{1, 2, 3\\}") == "incorrect"


def test_tuples_are_ordered():
    assert outcome("(1, 2)", "(1,2)") == "correct"
    assert outcome("(2, 1)", "(1, 2)") == "incorrect"


def test_intervals_keep_bracket_types():
    assert outcome("[1, 2)", "[1,2)") == "correct"
    assert outcome("(1, 2]", "[1,2]") == "incorrect"
    # a relation gold takes its interval, and (issue 11 follow-up, reversing
    # math-verify's default) an interval gold takes the relation of the same set
    assert outcome("[3, \\infty)", "x \\geq 3") == "correct"
    assert outcome("x \\geq 3", "[3, \\infty)") == "correct"
    assert outcome("x > 3", "[3, \\infty)") == "incorrect"
    assert outcome("x + y \\geq 3", "[3, \\infty)") != "correct"  # not one variable


def test_matrices_compare_element_wise():
    gold = "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"
    assert outcome("\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}", gold) == "correct"
    assert outcome("\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}", gold) == "incorrect"


def test_assignment_matches_value():
    assert outcome("x = 3", "3") == "correct"
    assert outcome("y = 2x + 1", "1 + 2x") == "correct"


def test_equations_compare_as_equations():
    assert outcome("y^2 + x^2 = 25", "x^2+y^2=25") == "correct"
    assert outcome("2x - y = 3", "y = 2x - 3") == "correct"


def test_several_answers_match_as_a_set():
    assert outcome("x = 2 \\text{ or } x = 3", "3, 2") == "correct"
    assert verify_math(done("Both $\\boxed{2}$ and $\\boxed{3}$ work."), "2, 3")["outcome"] == "correct"


def test_two_different_final_answers_are_incorrect():
    assert verify_math(done("So $\\boxed{5}$. Actually $\\boxed{6}$."), "5")["outcome"] == "incorrect"


def test_two_agreeing_final_answers_are_correct():
    assert verify_math(done("$\\boxed{\\frac12}$, i.e. $\\boxed{0.5}$."), "0.5")["outcome"] == "correct"


def test_hedged_answer_is_incorrect():
    assert verify_math(done("The answer is either 3 or 4."), "3")["outcome"] == "incorrect"


def test_unit_confusion_is_incorrect_and_conversion_is_correct():
    assert outcome("5 \\text{ m}", "5 \\text{ cm}") == "incorrect"
    assert outcome("50 \\text{ mm}", "5 \\text{ cm}") == "correct"


def test_degrees_against_radians():
    assert outcome("\\frac{\\pi}{6}", "30^\\circ") == "correct"
    assert outcome("\\frac{\\pi}{3}", "30^\\circ") == "incorrect"


def test_text_answers_ignore_case_and_choice_parentheses():
    assert outcome("\\text{Yes}", "yes") == "correct"
    assert outcome("\\text{(B)}", "B") == "correct"
    assert outcome("\\text{(A)}", "B") == "incorrect"


# ----------------------------------------------------------------- symbolic path (real worker)


def test_symbolic_equivalence_in_worker():
    v = verify_math(done("$\\boxed{\\sin^2 x + \\cos^2 x}$"), "1")
    assert v["outcome"] == "correct"
    assert "symbolic" in v["detail"]


def test_cheap_path_decides_polynomial_identities():
    v = verify_math(done("$\\boxed{(x+1)^2}$"), "x^2+2x+1")
    assert v["outcome"] == "correct" and "fast" in v["detail"]


# A bounded but slow symbolic job (sympy integrates a degree-1000 integrand): a
# power tower no longer reaches the worker (the magnitude guard decides it).
SLOW = "\\int_0^1 x^{1000} \\sin(x^{3}) e^{x} dx"


def test_slow_symbolic_job_times_out_instead_of_hanging():
    v = verify_math(done("$\\boxed{" + SLOW + "}$"), "2", timeout_s=1.5)
    assert v["outcome"] == "timeout"
    assert v["score"] is None  # the verdict: not judged (the reward maps it to 0.0, see test_hacks_rewards)
    # the worker was replaced: the next symbolic job still works
    assert verify_math(done("$\\boxed{\\log_2 8}$"), "3")["outcome"] == "correct"


def test_timeout_works_off_the_main_thread():
    result = {}

    def run():
        result["v"] = verify_math(done("$\\boxed{" + SLOW + "}$"), "2", timeout_s=1.0)

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert result["v"]["outcome"] == "timeout"


# ----------------------------------------------------------------- verdicts and batch API


def test_missing_gold_is_error():
    v = verify_math(done("$\\boxed{3}$"), "")
    assert v["outcome"] == "error" and v["score"] is None
    assert "gold" in v["detail"]


def test_batch_matches_single_calls_and_keeps_order():
    completions = [done("$\\boxed{1}$"), "<think>no end", done("$\\boxed{\\sin^2 x+\\cos^2 x}$"), done("$\\boxed{4}$")]
    golds = ["1", "2", "1", "5"]
    got = [v["outcome"] for v in verify_math_batch(completions, golds)]
    assert got == ["correct", "unparseable", "correct", "incorrect"]
    assert got == [verify_math(c, g)["outcome"] for c, g in zip(completions, golds)]


def test_batch_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        verify_math_batch(["a"], [])


def test_think_prefilled_without_tags_is_unfinished():
    assert verify_math("1 + 2 = 3, so \\boxed{3}", "3", think_prefilled=True)["outcome"] == "unparseable"
    assert verify_math("1 + 2 = 3, so \\boxed{3}", "3")["outcome"] == "correct"


def test_huge_answer_is_judged_under_the_time_limit():
    v = verify_math(done("$\\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}$"), "2", timeout_s=1.0)
    assert v["outcome"] in ("timeout", "incorrect")
    assert len(v["detail"]) < 400


def test_the_word_answer_alone_is_not_a_final_answer_phrase():
    assert extract_final_answer("To answer this we would need more data, which we lack here.") is None


def test_membership_and_the_real_line_are_intervals():
    assert outcome("x \\in [1, 2]", "[1,2]") == "correct"
    assert outcome("\\mathbb{R}", "(-\\infty, \\infty)") == "correct"


# ----------------------------------------------------------------- `datagen verify --workers` runs math in parallel


def test_cli_workers_2_runs_two_symbolic_workers_side_by_side(tmp_path):
    """Two answers that hang sympy, through the real command line: each runs in
    its own worker process (both are killed at the 5 s limit, side by side)."""
    import time

    from datagen.cli.main import main
    from datagen.files import read_records, write_records
    from datagen.verify import _math_pool

    def tower(k: int) -> str:  # bounded (not astronomical) yet far beyond the 5 s limit in sympy
        return SLOW.replace("x^{3}", f"x^{{{k}}}")

    rows = [{"problem_id": f"p{k}", "sample_id": f"p{k}:0", "source": "t", "domain": "math", "language": "en",
             "prompt": "q", "answer": "2", "completion": done("$\\boxed{" + tower(k) + "}$")} for k in (2, 3)]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_records(src, rows)
    _math_pool.shared_pool(2)  # the pool `--workers 2` uses ...
    for w in _math_pool.shared_pool(2).workers:  # ... started before the clock runs (imports are not job time)
        w.judge(["1"], ["\\sec^2(0)"], 30.0)
    restarts = [w.restarts for w in _math_pool.shared_pool(2).workers]
    start = time.monotonic()
    assert main(["verify", str(src), "--verifier", "math", "--output", str(out), "--workers", "2", "--no-progress"]) == 0
    elapsed = time.monotonic() - start
    got = read_records(out)
    assert [r["verdicts"]["math"]["outcome"] for r in got] == ["timeout", "timeout"]
    # each of the two workers ran (and lost) one hanging job, at the same time
    assert [w.restarts - r for w, r in zip(_math_pool.shared_pool(2).workers, restarts)] == [1, 1]
    assert elapsed < 2 * 5.0


# ----------------------------------------------------------------- issue 11: equivalences that were missed


@pytest.mark.parametrize(
    "completion, gold",
    [
        (done("$\\frac{70}{9} \\approx 7.78$\n\nFinal Answer: The final answer is 7.78. I hope it is correct."), "7.78"),
        (done("The answer is $\\boxed{(3, 2)}$."), "(p,q)=(3,2)"),
        (done("The answer is $\\boxed{1}$."), "|AB|=1"),
        (done("The answer is $\\boxed{11:21}$."), "V_1:V_2=11:21"),
        (done("The answer is $\\boxed{1, 2}$."), "\\boxed{1} and \\boxed{2}"),
        (done("$\\boxed{1}$ and $\\boxed{2}$"), "\\boxed{1}\\boxed{2}"),
        (done("$\\boxed{\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}}$"),
         "\\left[\\begin{array}{cc}1 & 2 \\\\ 3 & 4\\end{array}\\right]"),
        (done("The answer is $\\boxed{32,\\! 349}$."), "32349"),
        (done("The answer is $\\boxed{3ba^2}$."), "3a^2b"),
        (done("The answer is $\\boxed{(-3, 3)}$."), "|x|<3"),
        (done("The answer is $\\boxed{5 \\geq x}$."), "x \\leq 5"),
        (done("The answer is $\\boxed{x \\lt 3}$."), "x < 3"),
        (done("The answer is $\\boxed{4x + 8y = 6}$."), "2x+4y-3=0"),
        (done("The answer is $\\boxed{y=-\\frac{1}{2}x+\\frac{3}{4}}$."), "2x+4y-3=0"),
        (done("The distance is $\\sqrt{5}$."), "\\sqrt{5}"),
        (done("So the number of ways is **17**."), "17"),
        (done("**17**"), "17"),
    ],
)
def test_issue_11_equivalences_are_accepted(completion, gold):
    v = verify_math(completion, gold)
    assert v["outcome"] == "correct", v
