"""Math answer verifier: is the final answer of a completion the gold answer?

Contract (issue 3, hardened in issue 11 against reward hacking):

Where the answer comes from
- Only the text after the reasoning (``datagen.records.split_completion``);
  an unclosed think block has no final answer -> ``unparseable``. In that
  summary a further ``<think>…</think>`` block is reasoning too, text after a
  chat-template token (``<|im_start|>``…) is not the answer, and Minerva's
  sign-off "I hope it is correct." is dropped.
- Evidence, in order: every outermost ``\\boxed{}``/``\\fbox{}`` (a box
  inside a box is part of it); a "final answer is …"/"answer: …" phrase
  stated after the last box wins ("Final Answer: The final answer is 7.78.");
  else the last concluding sentence: its last math span (several listed
  spans are several answers), bold text, the value after "is", or its only
  number ("The distance is $\\sqrt{5}$.", "**17**", "there are 12 ways").
- A negated value ("not $\\boxed{4}$", "isn't 4", "rather than 4") is not an
  answer; a hedging sentence ("$\\boxed{4}$ (though $5$ is also possible)")
  adds its other values as answers.
- Extraction is linear in the text: one brace-matching pass, no rescans.

How it compares
- Several distinct answers (boxes, "or", ``\\lor``, ``|``, commas, ``\\pm``)
  are a set: ``incorrect`` unless the gold is a set or list with exactly
  those elements. A gold made of several boxes is such a list.
- A relation (``\\ne 4``, ``\\geq 4``, ``\\to 4``, ``x > 3``) never equals a
  number. A relation gold accepts the same relation in any form (``5 \\geq
  x`` for ``x \\leq 5``, ``-x > -1``) or its solution set (``(-3, 3)`` for
  ``|x| < 3``), and the reverse (see Intervals).
- Intervals (red team, issue 11 follow-up): the bracket types are part of
  the answer, so a bare list of endpoints (``0, 1``, ``0 \\text{ or } 1``,
  ``x=0, x=1``) never matches an interval gold (a square bracket or an
  infinite end); choices joined by "or"/"and" or repeating one variable are
  alternatives, never the items of a tuple. A relation in one variable that
  denotes exactly the gold interval matches it (``0 \\le x < 1`` is
  ``[0, 1)``, ``x \\ge 0`` is ``[0, \\infty)``) -- this reverses math-verify's
  default, which refuses a relation against an interval.
- A labelled gold (``(p,q)=(3,2)``, ``|AB|=1``, ``V_1:V_2=11:21``) is its
  value; an equation equals the same equation scaled or solved for a
  variable (constant ratio of lhs - rhs).
- Percent, one reading (red team, issue 11 follow-up): ``x\\%`` (or ``x
  percent``) is ``x/100``; it also equals a bare ``x`` only when the gold
  itself carries ``%`` (the question asked for a percentage). So ``4\\%``
  matches ``0.04`` and ``4\\%``, never ``4``; gold ``4\\%`` accepts ``4``,
  ``0.04`` and ``4\\%``.
- Numbers: integers and rationals compare exactly whatever their spelling
  (``1000001.0`` is not ``1000000``; a decimal literal is an exact rational).
  The only tolerance: against a gold that is a non-integer decimal literal
  (``0.333333``), an answer within ``REL_TOL`` (1e-6) relative (absolute
  below 1) and within half a unit of the gold's last decimal is accepted
  (``1/3``; not ``70/9`` for ``7.78``, not ``1000001`` for ``1000000.5``). An
  irrational gold (``\\pi``, ``\\sqrt 2``) needs an exactly equal answer
  (``355/113`` and ``3.1416`` are not ``\\pi``).
- Pathological constants (``9^{9^9}``, ``(9^{9^9})!``, ``e^{e^{e^{e^{10}}}}``,
  ``\\tan(10^{10^{10}})``, ``\\binom{10^9}{5\\cdot 10^8}``) are bounded in log
  space before anything evaluates them (``_math_fast.astronomical``): an
  answer holding a constant beyond ``ASTRONOMICAL_DIGITS`` digits of
  magnitude, or one whose size cannot be bounded, is ``incorrect`` against a
  gold without one, at once -- never a ``timeout`` a policy could aim for.
- Undefined or non-finite values (``1/0``, ``0/0``, ``\\log 0``, ``\\infty -
  \\infty``, overflow) never equal a finite gold; only an identical undefined
  gold (``\\infty`` = ``\\infty``).
- Expressions are equal only when proved: exact rational arithmetic at
  several random rational points (rational functions, here), else in the
  symbolic worker ``simplify``-free checks with sympy: exact values at random
  rational points, constants to 60 digits. Never one floating point.

Where it runs
- The cheap path (``_math_fast``: exact Fractions) decides most pairs in
  this process. Undecided pairs go to symbolic worker processes
  (``_math_worker``, driven by ``_math_pool``: our hand parser to sympy, then latex2sympy2_extended,
  then math-verify's parser; math-verify's structural comparison with our
  exact leaves), killed past ``timeout_s`` -> ``timeout``. ``workers`` of
  them run side by side (``datagen verify --workers``). The in-process part
  is linear in the text and bounded (answers over ``MAX_FAST_CHARS`` go to
  a worker), so ``timeout_s`` bounds each sample's judging.
- Any exception judging one sample is that sample's ``error`` (or
  ``unparseable`` for a completion that is not text); the batch goes on.

Outcomes (``datagen.records.verdict``): ``correct`` / ``incorrect`` /
``unparseable`` (no final answer) / ``timeout`` (symbolic comparison ran out
of time) / ``error`` (no gold answer, or the verifier itself failed).
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from datagen.records import split_completion, verdict
from datagen.verify import _math_fast as fast

log = logging.getLogger(__name__)

#: The only tolerance: an answer against a gold that is a non-integer decimal
#: literal may differ by this much, relative (``_math_fast.DECIMAL_REL_TOL``).
REL_TOL = fast.DECIMAL_REL_TOL

#: Answers longer than this skip the in-process path (it has no time limit).
MAX_FAST_CHARS = 1000

__all__ = ["REL_TOL", "extract_final_answer", "verify_math", "verify_math_batch"]


# =========================================================================== extraction


def _brace_matches(text: str) -> dict[int, int]:
    """Index of every ``{`` -> index of its matching ``}``, in one linear pass.

    Why: looking each ``\\boxed{`` up with its own scan is quadratic (8k
    unclosed boxes took seconds); one stack pass is linear in the text.
    Escaped braces (``\\{``) are not grouping braces.
    """
    match: dict[int, int] = {}
    stack: list[int] = []
    prev_backslash = False
    for i, c in enumerate(text):
        if prev_backslash:
            prev_backslash = False
            continue
        if c == "\\":
            prev_backslash = True
        elif c == "{":
            stack.append(i)
        elif c == "}" and stack:
            match[stack.pop()] = i
    return match


def _balanced(text: str, start: int) -> tuple[str, int] | None:
    """Content of the ``{…}`` group opening at ``text[start]`` and the index after it."""
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif c == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1:i], i + 1
    return None


_BOX = re.compile(r"\\(?:boxed|fbox)\s*")


def _boxes(text: str) -> list[tuple[int, str]]:
    """Every outermost ``\\boxed{…}`` as (start index, content); linear time.

    A box nested in another box is part of the outer one; an unclosed box
    is no answer.
    """
    match = _brace_matches(text) if "{" in text else {}
    found: list[tuple[int, str]] = []
    covered = -1
    for m in _BOX.finditer(text):
        if m.start() < covered:
            continue  # inside the previous box
        j = m.end()
        if j < len(text) and text[j] == "{":
            end = match.get(j)
            if end is None:
                continue
            found.append((m.start(), text[j + 1:end].strip()))
            covered = end
        else:  # `\boxed 5`
            tail = re.match(r"[^\s$\\{}]{1,40}", text[j:j + 41])
            if tail:
                found.append((m.start(), tail.group(0)))
    return [(i, f) for i, f in found if f]


def _boxed_all(text: str) -> list[str]:
    return [f for _, f in _boxes(text)]


# Invisible characters carry no value (U+200B-U+200D, U+2060-U+2064, BOM).
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060-\u2064\ufeff]")

# Chat-template tokens a model sometimes runs on into: the answer ends there.
_STOP_TOKENS = re.compile(r"<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|<\|end\|>|</s>|<｜end▁of▁sentence｜>")
_BOILERPLATE = re.compile(r"I hope (?:it|this) is correct\.?", re.IGNORECASE)
# A negation that governs the next stated value in the same clause:
# "the answer is not \boxed{4}", "it isn't 4", "rather than 4".
_NEGATION = re.compile(r"(?:\bnot|\bcannot|n't|\bnever|\bno longer|\brather than|\binstead of|\bwrong|\bincorrect)\W*"
                       r"(?:(?:be|equal|equals|to|is|the|answer|simply|just|exactly|a|an)\W+){0,4}"
                       r"(?:[$\\(\s]|\\boxed\s*\{|\\fbox\s*\{)*$",
                       re.IGNORECASE)


def _clean_summary(summary: str) -> str:
    """The part of a summary that can hold the final answer.

    Cut at a chat-template token the model ran on into; a further
    ``<think>…</think>`` block is reasoning (and an unclosed one runs to the
    end); the Minerva sign-off "I hope it is correct." is dropped.
    """
    m = _STOP_TOKENS.search(summary)
    if m:
        summary = summary[:m.start()]
    out, pos = [], 0
    while True:
        k = summary.find("<think>", pos)
        if k < 0:
            out.append(summary[pos:])
            break
        out.append(summary[pos:k])
        close = summary.find("</think>", k)
        if close < 0:
            break
        pos = close + len("</think>")
    text = "".join(out).replace("</think>", " ")
    # Answers come from prose: a code block (fenced or inline) is a program or
    # its output, never the stated answer (`print("\\boxed{4}")` states nothing).
    text = _CODE_BLOCK.sub(" ", text)
    return _BOILERPLATE.sub(" ", text)


_CODE_BLOCK = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)


def _negated(text: str, start: int) -> bool:
    """Is the value starting at ``text[start]`` the object of a negation?"""
    window = text[max(0, start - 60):start]
    # only the current clause counts: "not 10, which is 1000" negates 10 only
    window = re.split(r"[.;!?\n]|,\s|\bbut\b|\bwhich\b", window)[-1]
    return bool(_NEGATION.search(window))


_FINAL_PHRASE = re.compile(
    # the connector is required: "To answer this, note …" states nothing
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:\*\*)?\s*(?:is\b(?!n)|:|=|：)\s*[:：]?\s*(?:\*\*)?\s*(?P<ans>[^\n]+)"
    r"|^\s*(?:\*\*)?answer(?:\*\*)?\s*(?P<ans2>(?:\$|\\\[|\\\().+)",
    re.IGNORECASE | re.MULTILINE,
)
_CLOSING = re.compile(r"^(?:therefore|thus|hence|so|consequently)\b[, ]*(?P<rest>.+)$", re.IGNORECASE)
# Math spans: $$…$$, $…$, \[…\], \(…\), at most MAX_SPAN characters inside.
# Inline math ($…$, \(…\)) stays on one line; display math may span lines.
# An escaped dollar (\$5) is money, not a delimiter. Found by one scan with
# the closer positions precomputed (a regex with a bounded lazy body rescans
# up to MAX_SPAN characters from every unclosed opener: seconds on 112 KB).
MAX_SPAN = 2000
_DOLLAR = re.compile(r"(?<!\\)\$")
_OPEN_BR = re.compile(r"\\[\[(]")


def _math_spans(text: str) -> list[tuple[int, int, str]]:
    """Every math span as (start, end, content), left to right, non-overlapping."""
    if "$" not in text and "\\[" not in text and "\\(" not in text:
        return []
    dollars = [m.start() for m in _DOLLAR.finditer(text)]
    opens = sorted(dollars + [m.start() for m in _OPEN_BR.finditer(text)])
    close_br = [m.start() for m in re.finditer(r"\\\]", text)]
    close_par = [m.start() for m in re.finditer(r"\\\)", text)]
    newlines = [m.start() for m in re.finditer("\n", text)]

    def next_in(seq: list[int], after: int) -> int | None:
        k = bisect.bisect_left(seq, after)
        return seq[k] if k < len(seq) else None

    def one_line(start: int, end: int) -> bool:
        nl = next_in(newlines, start)
        return nl is None or nl >= end

    out: list[tuple[int, int, str]] = []
    pos = 0
    for o in opens:
        if o < pos:
            continue
        if text[o] == "$":
            if text.startswith("$$", o):
                d = next_in(dollars, o + 2)
                if d is not None and text.startswith("$$", d) and 1 <= d - o - 2 <= MAX_SPAN:
                    out.append((o, d + 2, text[o + 2:d]))
                    pos = d + 2
                continue  # `$$` unclosed: a single `$` cannot start with `$`
            d = next_in(dollars, o + 1)
            if d is not None and 1 <= d - o - 1 <= MAX_SPAN and one_line(o, d):
                out.append((o, d + 1, text[o + 1:d]))
                pos = d + 1
        else:
            display = text[o + 1] == "["
            c = next_in(close_br if display else close_par, o + 2)
            if c is not None and 1 <= c - o - 2 <= MAX_SPAN and (display or one_line(o, c)):
                out.append((o, c + 2, text[o + 2:c]))
                pos = c + 2
    return out


def _mask_math(text: str, fill: str | None = "#") -> str:
    """``text`` with its math spans replaced: by ``fill`` repeated to the same
    length (positions kept), or removed when ``fill`` is None."""
    parts, pos = [], 0
    for start, end, _ in _math_spans(text):
        parts += [text[pos:start], fill * (end - start) if fill else " "]
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


_BOLD = re.compile(r"\*\*(?P<x>[^*\n]{1,200})\*\*")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_COPULA = re.compile(r"\s(?:is|are|was|equals)\s+(?!not\b)", re.IGNORECASE)


def _trim_sentence(ans: str) -> str:
    ans = ans.strip().strip("*").strip()
    # Cut at a sentence end that is not a decimal point: "3. Next" / "3."
    ans = re.split(r"(?<!\d)\.(?:\s|$)|(?<=\d)\.(?:\s|$)", ans, maxsplit=1)[0]
    return ans.strip().rstrip(".;,!").strip().strip("*").strip()


def _spans(text: str) -> list[tuple[int, str]]:
    return [(start, content) for start, _, content in _math_spans(text)]


def _reduce(sentence: str) -> str | None:
    """The value a concluding sentence states, or None.

    "The volume of $V$ is 120" -> "120"; "the distance is $\\sqrt{5}$" ->
    "\\sqrt{5}"; "is **17**" -> "17"; "there are 12 ways" -> "12"; a bare
    short line ("$x = 5$", "10 apples") -> itself. A negated value ("not 4")
    is skipped.
    """
    s = sentence.strip()
    if not s:
        return None
    # after the last copula outside math: "… of $ABCD$ is 120"
    masked = _mask_math(s)
    cut = [m for m in _COPULA.finditer(masked)]
    if cut:
        after = s[cut[-1].end():]
        if re.search(r"[\d$\\*]", after):
            s = after
        else:  # "$x \geq 5$ is the solution": the value comes before the copula
            s = s[:cut[-1].start()]
    spans = [(i, x) for i, x in _spans(s) if x.strip() and not _negated(s, i)]
    if spans:
        # "$3$, $6$ and $14$" lists several values: all of them are the answer
        listed = [spans[-1][1].strip()]
        for (i, x), (j, _) in zip(reversed(spans[:-1]), reversed(spans[1:])):
            between = _mask_math(s[i:j], None)
            if not re.fullmatch(r"[\s,;]*(?:and|or)?[\s,;]*", between):
                break
            listed.insert(0, x.strip())
        return ", ".join(listed)
    bolds = [(m.start(), m.group("x")) for m in _BOLD.finditer(s) if not _negated(s, m.start())]
    if bolds:
        return _trim_sentence(bolds[-1][1])
    s = _trim_sentence(s)
    if not s:
        return None
    words = re.findall(r"[A-Za-z]{2,}", re.sub(r"\\[a-zA-Z]+(?:\{[a-zA-Z*]+\})?", " ", s))
    if len(words) <= 2 and len(s) <= 200:
        return s  # "24 square units", "x = 5", "-7"
    nums = [m for m in _NUMBER.finditer(s) if not _negated(s, m.start())]
    if len(nums) == 1 and len(s) <= 300 and s.count("{") == s.count("}"):
        return nums[0].group(0)  # "there are 12 distinct sequences"
    return None


def _sentences(text: str) -> list[str]:
    # sentence ends outside math spans: ". " not preceded by a digit-dot-digit
    masked = _mask_math(text)
    out, start = [], 0
    for m in re.finditer(r"(?<=[.!?])\s+|\n+", masked):
        out.append(text[start:m.start()])
        start = m.end()
    out.append(text[start:])
    return [s.strip() for s in out if s.strip()]


def _final_answers(summary: str | None) -> list[str]:
    """Every final answer the summary states, in order (deduplicated).

    Order of evidence: boxes (``\\boxed``/``\\fbox``, outermost, not
    negated) > the last "final answer is …"/"answer: …" phrase > the value
    of the last concluding sentence (its last math span, bold text, the
    value after "is", or its only number). Linear in the text.
    """
    if not summary or not summary.strip():
        return []
    summary = _clean_summary(summary)
    boxes = _boxes(summary)
    boxed = [b for i, b in boxes if not _negated(summary, i)]
    phrases = [m for m in _FINAL_PHRASE.finditer(summary)]
    # the last statement wins: "…\boxed{200}… Final Answer: The final answer is $10,455$."
    if boxed and not (phrases and boxes and phrases[-1].start() > boxes[-1][0] + 8):
        kept = [(i, b) for i, b in boxes if not _negated(summary, i)]
        if len(set(boxed)) > 1 and _RETRACTION.search(summary, kept[-2][0], kept[-1][0]):
            # "… $\boxed{5}$. Wait, actually $\boxed{4}$.": an explicit retraction
            # between the last two boxes makes the last box the answer; distinct
            # boxes without one stay a hedge (judged as a set)
            boxed = [kept[-1][1]]
        if len(boxed) == 1 or len(set(boxed)) == 1:
            boxed = [boxed[-1] + _unit_after(summary, boxes[-1][0])]
        return _with_hedges(summary, list(dict.fromkeys(boxed)))
    if phrases:
        m = phrases[-1]
        group = "ans" if m.group("ans") is not None else "ans2"
        pos = m.start(group)
        # "Final Answer: The final answer is 7.78" -> the inner phrase
        for _ in range(3):
            inner = _FINAL_PHRASE.search(summary, pos, m.end())
            if inner is None:
                break
            group = "ans" if inner.group("ans") is not None else "ans2"
            pos = inner.start(group)
        # an answer in display math may span lines: "Answer \[ 9 \]"
        head = _math_spans(summary[pos:pos + MAX_SPAN + 4])
        ans = summary[pos:pos + head[0][1]] if head and head[0][0] == 0 else summary[pos:m.end()]
        if not _negated(summary, pos) and not re.match(r"\s*(?:not|never|n't)\b", ans, re.IGNORECASE):
            first = _sentences(ans)
            got = _reduce(first[0]) if first else None
            if got:
                return [got]
    sentences = _sentences(summary)
    for sentence in reversed(sentences[-3:]):
        closing = _CLOSING.match(sentence)
        got = _reduce(closing.group("rest") if closing else sentence)
        if got:
            return _with_hedges(summary, [got])
    return []


#: An explicit retraction of what came before: "wait", "actually", "correction",
#: "no," / "no." at a clause start, "I made a mistake", "on second thought".
_RETRACTION = re.compile(r"\b(?:wait|actually|correction|oops|scratch that|on second thought|"
                         r"i made (?:a|an) (?:mistake|error)|let me correct|that was wrong|"
                         r"(?<![\w'])no(?=[,.!;]))\b", re.IGNORECASE)

_HEDGE = re.compile(r"\b(?:also possible|might also be|could also be|may also be|or possibly|or maybe|"
                    r"not (?:fully |entirely |completely |100% )?(?:sure|certain)|alternatively)\b", re.IGNORECASE)


def _with_hedges(summary: str, answers: list[str]) -> list[str]:
    """Add the other values of a hedging sentence ("$\\boxed{4}$ (though $5$ is
    also possible)"): a hedge states several answers, judged as a set."""
    if not _HEDGE.search(summary):
        return answers
    extra = []
    for sentence in _sentences(summary):
        if _HEDGE.search(sentence):
            masked = _mask_math(sentence, None)
            values = [x for _, x in _spans(sentence)] + [m.group(0) for m in _NUMBER.finditer(masked)]
            extra += [v.strip() for v in values if v.strip() and "\\boxed" not in v]
    seen = {a.replace(" ", "") for a in answers}
    return answers + [v for v in dict.fromkeys(extra) if v.replace(" ", "") not in seen]


_UNIT_WORD = re.compile(r"\$?\s*(?:\\text\{\s*)?([A-Za-z]{1,12})\b")


def _unit_after(summary: str, box_start: int) -> str:
    """`` minutes`` when a known unit follows the box (``$\\boxed{90}$ minutes``)."""
    m = _BOX.match(summary, box_start)
    match = _brace_matches(summary[m.end():m.end() + 4000]) if m else {}
    end = match.get(0) if m and summary[m.end():m.end() + 1] == "{" else None
    if end is None:
        return ""
    qualifier = _QUALIFIER.match(summary, m.end() + end + 1)
    if qualifier:
        # `\boxed{4} (mod 5)`, `\boxed{4}\%`, `\boxed{30}^\circ`: it changes the value
        return " " + qualifier.group("q")
    after = _UNIT_WORD.match(summary, m.end() + end + 1)
    return f" {after.group(1)}" if after and after.group(1) in _UNITS and len(after.group(1)) > 1 else ""


#: Right after a box, what changes the boxed value: a modulus, a percent or
#: degree sign, a power of ten. It is part of the answer.
_QUALIFIER = re.compile(
    r"[ \t]*\$?[ \t]*(?P<q>\(\s*(?:\\?mod(?:ulo)?)\b[^()\n]{0,30}\)|\\pmod\s*\{[^{}\n]{0,30}\}|"
    r"\\(?:bmod|mod)\s*\{?[^\s$.,;]{1,30}\}?|mod(?:ulo)?\s+[^\s$.,;]{1,30}|\\?%|"
    r"\^\s*\{?\s*\\circ\s*\}?|°|\\(?:times|cdot)\s*10\^\s*\{?-?\d+\}?)", re.IGNORECASE)


def extract_final_answer(summary: str | None) -> str | None:
    """The final answer stated in a summary (the text after ``</think>``), or None.

    The last ``\\boxed{}`` wins over phrases; several different boxes are
    returned joined by ", " (they are judged as a set). Pass the summary,
    never the whole completion: answers inside the reasoning do not count.
    """
    answers = _final_answers(summary)
    if not answers:
        return None
    return ", ".join(answers)


# =========================================================================== normalization

_UNICODE = {
    "−": "-", "–": "-", "×": "\\times ", "÷": "\\div ", "∞": "\\infty ", "π": "\\pi ", "√": "\\sqrt",
    "≤": "\\le ", "≥": "\\ge ", "∅": "\\emptyset ", "·": "\\cdot ", "⋅": "\\cdot ",
}
_TEXT_CMDS = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|operatorname|textnormal|hbox"
                        r"|framebox|underline|boldsymbol|bm|mathbb(?=\s*\{\s*[\d.]+\s*\}))\s*(?=\{)")
_PHANTOM = re.compile(r"\\[hv]?phantom\s*(?=\{)")
_SPACES = re.compile(r"(?<!\\)\\[,;: ]|\\quad|\\qquad|~")  # not the `\\\\ ` of a matrix row
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree|\\circ|\s*\bdegrees?\b")
_PERCENT = re.compile(r"\\%|%|\s*\bpercent\b")
_EMPTY = re.compile(r"^(?:\\emptyset|\\varnothing|\\\{\s*\\\}|\{\s*\}|none|no\s+solutions?|no\s+real\s+solutions?)$", re.IGNORECASE)

# unit -> (dimension, factor to the base unit)
_UNITS: dict[str, tuple[str, Fraction]] = {}
for _names, _dim, _f in [
    (("mm", "millimeter", "millimeters", "millimetre", "millimetres"), "length", Fraction(1, 1000)),
    (("cm", "centimeter", "centimeters", "centimetre", "centimetres"), "length", Fraction(1, 100)),
    (("m", "meter", "meters", "metre", "metres"), "length", Fraction(1)),
    (("km", "kilometer", "kilometers", "kilometre", "kilometres"), "length", Fraction(1000)),
    (("in", "inch", "inches"), "length", Fraction(254, 10000)),
    (("ft", "foot", "feet"), "length", Fraction(3048, 10000)),
    (("yd", "yard", "yards"), "length", Fraction(9144, 10000)),
    (("mi", "mile", "miles"), "length", Fraction(1609344, 1000)),
    (("s", "sec", "secs", "second", "seconds"), "time", Fraction(1)),
    (("min", "mins", "minute", "minutes"), "time", Fraction(60)),
    (("h", "hr", "hrs", "hour", "hours"), "time", Fraction(3600)),
    (("day", "days"), "time", Fraction(86400)),
    (("week", "weeks"), "time", Fraction(604800)),
    (("mg", "milligram", "milligrams"), "mass", Fraction(1, 1000)),
    (("g", "gram", "grams"), "mass", Fraction(1)),
    (("kg", "kilogram", "kilograms"), "mass", Fraction(1000)),
    (("ml", "mL", "milliliter", "milliliters"), "volume", Fraction(1, 1000)),
    (("l", "L", "liter", "liters", "litre", "litres"), "volume", Fraction(1)),
    (("dollar", "dollars"), "money", Fraction(1)),
    (("cent", "cents"), "money", Fraction(1, 100)),
]:
    for _n in _names:
        _UNITS[_n] = (_dim, _f)

_FUNC_WORDS = {"sin", "cos", "tan", "log", "ln", "exp", "sqrt", "frac", "pi", "cdot", "times", "infty", "or", "and"}
_UNIT_TAIL = re.compile(
    r"^(?P<num>.*?[\d}a-zA-Z)])\s*(?P<unit>(?:square\s+|cubic\s+|sq\.?\s+)?[a-zA-Z]{1,12}(?:\s*\^\s*\{?[23]\}?)?"
    r"(?:\s*(?:/|per)\s*[a-zA-Z]{1,8})?)$"
)


@dataclass(frozen=True)
class Scalar:
    """One value: normalized LaTeX plus what was stripped off it."""

    text: str
    unit: str | None = None
    percent: bool = False
    degrees: bool = False


@dataclass(frozen=True)
class Seq:
    """Ordered: a tuple, a point, or an interval (brackets kept)."""

    open: str
    close: str
    items: tuple
    labels: tuple | None = None  # `a = 1, b = 2`: the names, so order may differ


@dataclass(frozen=True)
class SetOf:
    """Unordered: ``\\{…\\}`` (braced) or several answers / a union (bare)."""

    items: tuple
    braced: bool
    union: bool = False  # a union of intervals, not a list of answers
    alternatives: bool = False  # `0 or 1`, `x = 0, x = 1`: choices, never the items of one tuple


@dataclass(frozen=True)
class Matrix:
    rows: tuple


@dataclass(frozen=True)
class Equation:
    lhs: str
    rhs: str


@dataclass(frozen=True)
class Assign:
    """``x = 3``: compared as its value ``3``, or as an equation against one."""

    lhs: str
    value: Node


@dataclass(frozen=True)
class Relation:
    """``x < 3``, ``\\neq 4``, ``\\to 0``: never equal to a number; compared
    with relations and sets by the symbolic worker."""

    text: str


@dataclass(frozen=True)
class Text:
    words: str


@dataclass(frozen=True)
class Empty:
    pass


Node = Scalar | Seq | SetOf | Matrix | Equation | Assign | Relation | Text | Empty


def _replace_group_cmd(text: str, pattern: re.Pattern, fmt: str = " {} ") -> str:
    """``\\text{abc}`` -> `` abc `` (brace-balanced, nested allowed)."""
    while True:
        m = pattern.search(text)
        if not m:
            return text
        got = _balanced(text, m.end())
        if got is None:
            return text[:m.start()] + text[m.end():]
        inner, end = got
        text = text[:m.start()] + fmt.format(inner) + text[end:]


_REPEATING_DOTS = re.compile(r"^(-?)(\d*)\.(\d*?)(\d)\4{2,}\s*(?:\\[lc]?dots|\\dotsc|\.\.\.|…)$")
_REPEATING = re.compile(r"(?<![\d.])(-?)(\d*)\.(\d*)\\overline\{(\d+)\}")
_REPEATING_PAREN = re.compile(r"(?<![\d.])(-?)(\d*)\.(\d*)\((\d+)\)(?![\d(])")
_MIXED_LATEX = re.compile(r"(?<![\w}.\\)])(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}")
_MIXED_PLAIN = re.compile(r"(?<![\w.^/])(\d+)\s+(\d+)/(\d+)(?![\d.])")
_SCI_E = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")
_THOUSANDS_COMMA = re.compile(r"(?<![\d.,])(?!0,)\d{1,3}(?:,\d{3})+(?![\d,])")
_THOUSANDS_SPACE = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?![\d.])")


_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻", "0123456789+-")
_SUPER_RUN = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻]+")
_VULGAR = re.compile(r"(\d*)\s*([\u00bc-\u00be\u2150-\u215e\u2189])")


def _unicode_math(s: str) -> str:
    """Unicode spellings of math as LaTeX, by what the characters mean:
    superscript runs are exponents (``2⁴`` = ``2^{4}``), vulgar fractions are
    fractions (``4½`` = 4 + 1/2), then NFKC folds compatibility forms
    (fullwidth ``－３`` = ``-3``). NFKC comes last: it would turn ``²`` into a
    bare ``2``."""
    s = _SUPER_RUN.sub(lambda m: "^{" + m.group().translate(_SUPERSCRIPT) + "}", s)

    def vulgar(m: re.Match) -> str:
        num, _, den = unicodedata.normalize("NFKC", m.group(2)).partition("\u2044")
        frac = f"\\frac{{{num}}}{{{den or 1}}}"
        return f"({m.group(1)}+{frac})" if m.group(1) else frac
    s = _VULGAR.sub(vulgar, s)
    return unicodedata.normalize("NFKC", s).replace("\u2212", "-")


def _repeating_to_frac(sign: str, whole: str, fixed: str, rep: str) -> str:
    whole_v = int(whole or "0")
    k, r = len(fixed), len(rep)
    # 0.a(b) = (ab - a) / (10^k (10^r - 1))
    num = int((fixed or "") + rep) - int(fixed or "0")
    value = whole_v + Fraction(num, 10**k * (10**r - 1))
    return f"{sign}\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _normalize(raw: str, decimal_comma: bool = False) -> tuple[str, dict]:
    """Normalize one answer string; returns (text, flags) with flags for units,
    percent and degrees that were stripped."""
    s = raw.strip()
    flags: dict = {"percent": False, "degrees": False, "unit": None}
    # `\\left(` / `\\frac` in text that was escaped twice: the command, not a line break
    s = re.sub(r"\\\\(?=(?:left|right|frac|dfrac|tfrac|sqrt|le|ge|leq|geq|pi|cdot|times|infty|text|boxed|in)(?![a-z]))",
               "\\\\", s)
    for k, v in _UNICODE.items():
        if k in s:
            s = s.replace(k, v)
    s = _ZERO_WIDTH.sub("", s)
    if not s.isascii():
        s = _unicode_math(s)
    if not s.isascii():
        # digits of any script (fullwidth ４, math bold 𝟒) are digits; lookalike letters are not
        s = "".join(str(unicodedata.digit(c)) if unicodedata.category(c) == "Nd" else c for c in s)
    boxes = _boxes(s)
    if len(boxes) == 1 and boxes[0][0] == 0 and re.fullmatch(r"\\(?:boxed|fbox)\s*\{.*\}", s, re.DOTALL):
        s = boxes[0][1]  # \boxed{\boxed{4}} is 4; `3 \boxed{4}` stays two things
    s = s.strip()
    if "\\$" in s:  # a dollar amount, before `$` math delimiters are dropped
        s = s.replace("\\$", " ")
        flags["unit"] = "dollars"
    for pre, post in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(pre) and s.endswith(post) and len(s) >= len(pre) + len(post):
            s = s[len(pre):len(s) - len(post)]
    s = s.replace("$", " ")
    s = re.sub(r"\\(?:displaystyle|textstyle|left\.|right\.|left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![a-zA-Z])", "", s)
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    # one-character arguments get their braces: \frac94 = \frac{9}{4}, \sqrt 2 = \sqrt{2}
    s = re.sub(r"\\frac\s*([0-9a-zA-Z])\s*([0-9a-zA-Z])", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*(\{[^{}]*\})\s*([0-9a-zA-Z])(?![0-9a-zA-Z])", r"\\frac\1{\2}", s)
    s = re.sub(r"\\sqrt\s*([0-9a-zA-Z])", r"\\sqrt{\1}", s)
    s = re.sub(r"\\[dt]binom(?![a-zA-Z])", r"\\binom", s)
    if _DEGREES.search(s):
        s = _DEGREES.sub(" ", s)
        flags["degrees"] = True
    if _PERCENT.search(s):
        s = _PERCENT.sub(" ", s)
        flags["percent"] = True
    # a parenthetical that only says what the answer is not: commentary, not a value
    s = re.sub(r"\\text\s*\{\s*\((?:not|rather than|instead of)\b[^(){}]*\)\s*\}|\((?:not|rather than|instead of)\b[^()]*\)",
               " ", s, flags=re.IGNORECASE)
    s = re.sub(r"\\#\s*(?=\d)", "", s)  # \#4: "number 4"
    s = _replace_group_cmd(s, _PHANTOM, "")  # \phantom{4} prints nothing: it states nothing
    s = _replace_group_cmd(s, _TEXT_CMDS)
    s = re.sub(r",\\!\s*(?=\d{3})", ",", s)  # 32,\! 349: a thousands separator
    s = s.replace("\\!", "")
    s = _SPACES.sub(" ", s)
    s = re.sub(r"\\(?:le|leq|leqslant)(?![a-zA-Z])", "<=", s)
    s = re.sub(r"\\(?:ge|geq|geqslant)(?![a-zA-Z])", ">=", s)
    s = re.sub(r"\\lt(?![a-zA-Z])", "<", s)
    s = re.sub(r"\\gt(?![a-zA-Z])", ">", s)
    s = re.sub(r"\\(?:neq|ne)(?![a-zA-Z])|!=", "\\\\neq ", s)
    s = re.sub(r"\\(?:lor|vee)(?![a-zA-Z])", " or ", s)
    s = re.sub(r"\\(?:land|wedge)(?![a-zA-Z])", " and ", s)
    s = re.sub(r"(?<=[)\]])\s*or\s*(?=[(\[])", ", ", s)  # (11,7)or(7,11)
    s = s.replace("€", " ").replace("£", " ").replace("¥", " ").replace("²", "^2").replace("³", "^3")
    s = re.sub(r"\\varnothing(?![a-zA-Z])", "\\\\emptyset", s)
    s = re.sub(r"\s*\{\s*,\s*\}\s*", ",", s.replace("**", "^"))
    s = " ".join(s.split())
    s = s.rstrip(".").strip()
    bracketed = bool(s) and s[0] in "([{\\" and s[-1] in ")]}"
    if not bracketed:
        s = _THOUSANDS_COMMA.sub(lambda m: m.group(0).replace(",", ""), s)
    s = _THOUSANDS_SPACE.sub(lambda m: m.group(0).replace(" ", ""), s)
    # 0.999\ldots, 0.333...: a decimal whose last digit repeats, then an ellipsis, repeats it
    s = _REPEATING_DOTS.sub(lambda m: _repeating_to_frac(m.group(1), m.group(2), m.group(3), m.group(4)), s)
    s = _REPEATING.sub(lambda m: _repeating_to_frac(*m.groups()), s)
    s = _REPEATING_PAREN.sub(lambda m: _repeating_to_frac(*m.groups()), s)
    s = _MIXED_LATEX.sub(r"(\1+\\frac{\2}{\3})", s)
    s = _MIXED_PLAIN.sub(r"(\1+\\frac{\2}{\3})", s)
    s = _SCI_E.sub(r"\1\\times10^{\2}", s)
    if decimal_comma:
        # 1,22 / 0,111 / 1000,99 against a decimal: a decimal comma (not a thousands group)
        s = re.sub(r"^(-?\d+),(\d+)$", lambda m: m.group(0) if len(m.group(2)) == 3 and m.group(1).lstrip("-") != "0"
                   else f"{m.group(1)}.{m.group(2)}", s)
    # the real line, however it is written, is one interval
    s = re.sub(r"^(?:\\(?:mathbb|mathbf|mathcal)\s*\{?R\}?|all real numbers)$", "(-\\\\infty,\\\\infty)", s, flags=re.IGNORECASE)
    return s.strip(), flags


# =========================================================================== structure


def _split_top(text: str, seps: tuple[str, ...]) -> list[str]:
    """Split at separators outside any (), [], {} (``\\{`` counts as a bracket)."""
    if not any(sep in text for sep in seps):
        return [text.strip()]  # the common case, without the character walk
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            depth += 1 if text[i + 1] == "{" else -1
            i += 2
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            for sep in seps:
                # `\\cup` must not split `\\cupola`; `\\\\` (a matrix row) may precede anything
                glued = sep[-1].isalpha() and text[i + len(sep):i + len(sep) + 1].isalpha()
                if text.startswith(sep, i) and not glued:
                    parts.append(text[start:i])
                    i += len(sep)
                    start = i
                    break
            else:
                i += 1
                continue
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _one_group(text: str) -> bool:
    """``text`` is a single bracketed group from its first to its last char."""
    depth = 0
    for i, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return False
    return depth == 0


_LITERAL = re.compile(r"^\s*[-+]?\s*\d+(?:\.\d+)?\s*$")
_SIMPLE_LHS = re.compile(r"^(?:\\?[a-zA-Z]+(?:_\{?\w+\}?)?(?:\([^()=]*\))?|\\angle\s*[A-Z]+|m\s*\\angle\s*[A-Z]+)$")
_WORDS = re.compile(r"^[A-Za-z][A-Za-z '\-]*$")
_MATRIX = re.compile(r"^\\begin\{(?P<env>[pbvBV]?matrix|array|smallmatrix)\}(?:\{[^}]*\})?(?P<body>.*)\\end\{(?P=env)\}$", re.DOTALL)


def _parse(raw: str, decimal_comma: bool = False) -> Node:
    """Normalize and parse one stated answer (or gold) into a ``Node``."""
    text, flags = _normalize(raw, decimal_comma)
    return _parse_norm(text, flags)


_RELATIONS = ("<=", ">=", "<", ">", "\\neq", "\\to", "\\rightarrow", "\\longrightarrow", "\\approx", "\\sim",
              "\\simeq", "\\equiv", "\\mapsto", "\\Rightarrow", "\\implies", "\\subset", "\\subseteq", "\\supset",
              "\\propto", "\\ll", "\\gg", "\\prec", "\\succ", "\\nless", "\\ngtr")
_LABEL_SUB = re.compile(r"_\{[^{}]*\}|_\w")


def _is_label(lhs: str) -> bool:
    """``(p,q)``, ``|AB|``, ``V_1:V_2``, ``\\frac{NO}{BO}``: a name for the value
    on the right, not a quantity (no digits outside subscripts, no sum)."""
    bare = _LABEL_SUB.sub("", lhs).strip()
    if not bare or len(bare) > 40 or re.search(r"\d", bare):
        return False
    return len(_split_top(bare.lstrip("+-").strip(), ("+", "-"))) == 1


def _latex_relation(t: str) -> str:
    return t.replace("<=", "\\leq ").replace(">=", "\\geq ")


def _items(inner: str) -> list[str]:
    """Items of a tuple: ``,`` separated, or ``;`` where no comma is used."""
    items = _split_top(inner, (",",))
    if len(items) == 1:
        items = _split_top(inner, (";",))
    return items


def _parse_norm(t: str, flags: dict) -> Node:
    t = t.strip()
    t = re.sub(r"^(?:either|both)\s+", "", t, flags=re.IGNORECASE)
    t = re.sub(r"^(?:[a-zA-Z]|\\[a-z]+)\s*\\in\s*(?=\S)", "", t)  # x \in [1, 2] is the interval
    if not t:
        return Text("")
    if _EMPTY.match(t):
        return Empty()
    if re.search(r"(?<![a-zA-Z])(?:\\[pb]?mod|mod|modulo)(?![a-zA-Z])", t):
        # a congruence class (`4 \pmod 5`) is not the number 4: compared as written
        return Text(re.sub(r"[\s{}()\\]|(?<=\d)p(?=mod)|(?<![a-z])[pb](?=mod)|ulo", "", t).lower())
    if t[0] in "([" and t[-1] in ")]" and _one_group(t) and _MATRIX.match(t[1:-1].strip()):
        t = t[1:-1].strip()  # \left[\begin{array}…\end{array}\right] is the matrix
    m = _MATRIX.match(t)
    if m and "\\begin{" not in m.group("body"):  # one matrix, not a product or sum of them
        rows = [r for r in _split_top(m.group("body"), ("\\\\",)) if r.strip()]
        return Matrix(tuple(tuple(_parse_norm(c, {}) for c in _split_top(r, ("&",))) for r in rows))
    union = _split_top(t, ("\\cup", "∪"))
    if len(union) > 1:
        return SetOf(tuple(_parse_norm(p, {}) for p in union), braced=False, union=True)
    if t.startswith("\\{") and t.endswith("\\}"):
        inner = t[2:-2].strip()
        items = [p for p in _split_top(inner, (",", ";")) if p] if inner else []
        return SetOf(tuple(_strip_assign(_parse_norm(p, {})) for p in items), braced=True) if items else Empty()
    if t[0] == "{" and t[-1] == "}" and _one_group(t):
        return _parse_norm(t[1:-1], flags)  # ${1,3}$: a TeX group, not a set
    if t[0] in "([" and t[-1] in ")]" and _one_group(t):
        items = _items(t[1:-1])
        if len(items) > 1:
            return Seq(t[0], t[-1], tuple(_strip_assign(_parse_norm(p, {})) for p in items))
    if t.startswith("\\langle") and t.endswith("\\rangle"):
        items = _split_top(t[len("\\langle"):-len("\\rangle")], (",",))
        return Seq("(", ")", tuple(_strip_assign(_parse_norm(p, {})) for p in items))
    groups = [p for p in _split_top(t, (";",)) if p]
    if len(groups) > 1 and all(len(_split_top(p, (",",))) > 1 for p in groups):
        # p=5, q=2; p=7, q=2: several solutions, each a tuple
        return SetOf(tuple(_strip_assign(_parse_norm(p, flags)) for p in groups), braced=False)
    items = [p for p in _split_top(t, (",", ";", " or ", " and ", "\\text{or}")) if p]
    if len(items) > 1:
        nodes = [_parse_norm(p, flags) for p in items]
        lhs = [_label_key(n.lhs) for n in nodes if isinstance(n, Assign)]
        if len(lhs) == len(nodes) and len(set(lhs)) == len(lhs):
            # x = 1, y = 2: a solution of a system, ordered as written (and named)
            return Seq("(", ")", tuple(_strip_assign(n.value) for n in nodes), tuple(lhs))  # type: ignore[union-attr]
        alternatives = bool(re.search(r"\bor\b|\band\b", t)) or len(lhs) > len(set(lhs))
        return SetOf(tuple(_strip_assign(n) for n in nodes), braced=False, alternatives=alternatives)
    pipes = _split_top(t, ("|",)) if "|" in t else [t]
    if len(pipes) > 1 and all(_standalone(p) for p in pipes):
        # `3 | 4 | 5` lists answers (|x| has an empty part at each bar)
        return SetOf(tuple(_strip_assign(_parse_norm(p, flags)) for p in pipes), braced=False)
    if "\\pm" in t or "\\mp" in t:
        plus = t.replace("\\pm", "+").replace("\\mp", "-")
        minus = t.replace("\\pm", "-").replace("\\mp", "+")
        return SetOf((_strip_assign(_parse_norm(plus, flags)), _strip_assign(_parse_norm(minus, flags))), braced=False)
    approx = _split_top(t, ("\\approx",))
    if len(approx) == 2 and all(approx):
        left, right = approx
        if _SIMPLE_LHS.match(left) or _is_label(left):
            return Assign(left, _parse_norm(right, flags))  # x \approx 11: the value 11
        if fast.is_number(_split_top(left, ("=",))[-1]) is not None:
            return _parse_norm(left, flags)  # x = 1/3 \approx 0.33: the exact value stated first
    if len(_split_top(t, _RELATIONS)) > 1:
        return Relation(_latex_relation(t))
    sides = _split_top(t, ("=",))
    if len(sides) >= 2 and all(sides):
        value = _parse_norm(sides[-1], flags)
        if len(sides) == 2 and (_SIMPLE_LHS.match(sides[0]) or _is_label(sides[0])):
            return Assign(sides[0], value)
        if len(sides) == 2 and _SIMPLE_LHS.match(sides[1].strip()) and fast.is_number(sides[0]) is not None:
            return Assign(sides[1].strip(), _parse_norm(sides[0], flags))  # 4 = x is x = 4
        if (len(sides) == 2 and fast.is_number(sides[0]) is not None and not _contradicts(sides[:1], sides[1])
                and not _LITERAL.match(sides[0])):
            # 3 + 1 = 4: a computation ending in its value (`4 = 4`, a tautology, states nothing)
            return Assign(sides[0], value)
        if len(sides) > 2 and not _contradicts(sides[:-1], sides[-1]):
            return Assign(sides[0], value)  # a chain a = b = 7: the value is the last side
        return Equation(sides[0], sides[-1])
    ratio = _split_top(t, (":", "\\colon"))
    if len(ratio) > 1 and all(ratio):
        return Seq(":", ":", tuple(_parse_norm(p, {}) for p in ratio))
    choice = re.match(r"^\(?([A-E])\)$|^\(([A-E])\)?$", t)
    if choice:
        return Text((choice.group(1) or choice.group(2)).lower())
    base = re.fullmatch(r"([0-9A-Za-z]+)_\{?(\d{1,2})\}?", t)
    if base and 2 <= int(base.group(2)) <= 36:
        try:
            return Scalar(str(int(base.group(1), int(base.group(2)))))  # 1112112_3: a numeral in base 3
        except ValueError:
            pass
    if not re.search(r"[0-9A-Za-z]", t) or re.search(r"\\(?:boxed|fbox)(?![a-zA-Z])", t):
        return Text(t)  # punctuation only (`\(`), or a box inside a box with more beside it: no value
    if re.search(r"\\[lc]?dots(?![a-zA-Z])|\.\.\.", t):
        return Text(" ".join(t.split()))  # `4\ldots`: an open-ended list is not a value
    if re.search(r"(?<![\w^_.])\d+(?:\.\d+)?\s+\d", t):
        return Text(t)  # `3 4`: two numbers side by side are no number
    return _scalar(t, flags)


_DANGLING_END = re.compile(r"(?:[-+*/^=<>,]|\\[a-zA-Z]+)\s*$")
_DANGLING_START = re.compile(r"^\s*(?:[+*/^=<>,]|\\(?:leq|geq|le|ge|neq|cdot|times|div)(?![a-zA-Z]))")


def _standalone(part: str) -> bool:
    """A piece between bars that is a value of its own (``3`` in ``3 | 4``),
    not half of ``1 \\leq |z|``."""
    return bool(part.strip()) and not _DANGLING_END.search(part) and not _DANGLING_START.match(part)


def _contradicts(sides: list[str], last: str) -> bool:
    """A chain whose plain-number sides differ (``3 = 4 = 5``) states no value."""
    v = fast.is_number(last)
    return any(fast.is_number(s) is not None and (v is None or fast.is_number(s) != v) for s in sides)


def _label_key(lhs: str) -> str:
    return re.sub(r"[\s{}]", "", lhs)


def _strip_assign(node) -> Node:
    return node.value if isinstance(node, Assign) else node


def _scalar(t: str, flags: dict) -> Node:
    unit = flags.get("unit")
    if fast.is_number(t) is None:
        m = _UNIT_TAIL.match(t)
        if m:
            word = re.sub(r"\s+", " ", m.group("unit")).strip()
            last = re.sub(r"\s*\^.*$", "", word).split()[-1].strip()  # cm^2, cm ^2 -> cm
            head = m.group("num").strip()
            known = last in _UNITS and "/" not in word and "per" not in word.split()
            parts = [x for x in re.split(r"\s*(?:/|\bper\b|\\cdot)\s*", re.sub(r"\s*\^.*?(?=/|$)", "", word)) if x]
            compound = len(parts) > 1 and all(x in _UNITS for x in parts)  # m/s, km per h: a unit too
            # A known unit, or any word (apples, km/h): dropped from a number.
            # Only known units take part in conversions and confusions.
            spaced = t[len(m.group("num")):len(m.group("num")) + 1].isspace()
            letters = len(re.sub(r"[^A-Za-z]", "", word))
            if fast.is_number(head) is not None and (known or compound
                                                     or (spaced and letters >= 3 and last.lower() not in _FUNC_WORDS)):
                kept = last if known and "^" not in word else unit
                return Scalar(head, kept, flags.get("percent", False), flags.get("degrees", False))
    if _WORDS.match(t) and (len(t) >= 3 or " " in t) and fast.is_number(t) is None:
        return Text(" ".join(t.lower().split()))
    return Scalar(t, unit, flags.get("percent", False), flags.get("degrees", False))


def parse_answer(raw: str) -> Node:
    """Public for tests and reuse: the structure ``verify_math`` compares."""
    return _strip_assign(_parse(raw))


# =========================================================================== comparison

ScalarEq = Callable[[str, str], bool | None]


def _scalar_variants(a: Scalar, b: Scalar) -> list[tuple[str, str]] | bool:
    """Text pairs to compare (any equal -> equal), or a decided bool for units."""
    ua, ub = _UNITS.get(a.unit or ""), _UNITS.get(b.unit or "")
    ta, tb = a.text, b.text
    if ua and ub:
        if ua[0] != ub[0]:
            return False  # 5 m vs 5 s: a unit confusion is wrong
        if ua[1] != ub[1]:
            r = ua[1] / ub[1]
            ta = f"({ta})\\frac{{{r.numerator}}}{{{r.denominator}}}"
    pairs = [(ta, tb)]
    if a.percent and not b.percent:
        # The gold carries %: the question asks for a percentage, so a bare 4
        # states "4 %" and 0.04 states the same quantity (x% = x/100).
        pairs.append((f"({ta})/100", tb))
    elif b.percent and not a.percent:
        # The answer carries % and the gold does not: x% is x/100, only that.
        # (Reading it also as x would let `4\%` match both 4 and 0.04.)
        pairs = [(ta, f"({tb})/100")]
    if a.degrees != b.degrees:
        if a.degrees and "\\pi" in tb:
            pairs = [(f"({ta})\\pi/180", tb)]
        elif b.degrees and "\\pi" in ta:
            pairs = [(ta, f"({tb})\\pi/180")]
    return pairs


def _compare_scalars(a: Scalar, b: Scalar, eq: ScalarEq) -> bool | None:
    variants = _scalar_variants(a, b)
    if isinstance(variants, bool):
        return variants
    undecided = False
    for x, y in variants:
        if " ".join(x.split()) == " ".join(y.split()):  # `3 4` is not `34`
            return True
        r = eq(x, y)
        if r:
            return True
        if r is None:
            undecided = True
    return None if undecided else False


def _all(results) -> bool | None:
    results = list(results)
    if any(r is False for r in results):
        return False
    return True if all(r is True for r in results) else None


def _match_unordered(xs: tuple, ys: tuple, eq: ScalarEq) -> bool | None:
    if len(xs) != len(ys):
        return False
    table = [[_judge(x, y, eq) for y in ys] for x in xs]

    def perfect(allowed) -> bool:
        match: dict[int, int] = {}

        def augment(i: int, seen: set) -> bool:
            for j in range(len(ys)):
                if allowed(table[i][j]) and j not in seen:
                    seen.add(j)
                    if j not in match or augment(match[j], seen):
                        match[j] = i
                        return True
            return False

        return all(augment(i, set()) for i in range(len(xs)))

    if perfect(lambda r: r is True):
        return True
    if not perfect(lambda r: r is not False):
        return False
    return None


def _dedupe(items: tuple) -> tuple:
    return tuple(dict.fromkeys(items))


def _judge(g: Node, a: Node, eq: ScalarEq) -> bool | None:
    """Is answer ``a`` the gold ``g``? None: the cheap path cannot tell."""
    # `y = 2x - 3` against `2x - y = 3`: the assignment is an equation after all
    if isinstance(g, Equation) and isinstance(a, Assign) and isinstance(a.value, Scalar):
        a = Equation(a.lhs, a.value.text)
    if isinstance(a, Equation) and isinstance(g, Assign) and isinstance(g.value, Scalar):
        g = Equation(g.lhs, g.value.text)
    if (isinstance(g, Assign) and isinstance(a, Assign) and isinstance(g.value, Scalar)
            and isinstance(a.value, Scalar) and _label_key(g.lhs) != _label_key(a.lhs)
            and _SIMPLE_LHS.match(g.lhs.strip()) and _SIMPLE_LHS.match(a.lhs.strip())):
        # both name their variable and the names differ: `x = 4` is not `y = 4`,
        # while `x = y` is `y = x` (compared as equations, i.e. relations)
        g, a = Equation(g.lhs, g.value.text), Equation(a.lhs, a.value.text)
    g, a = _strip_assign(g), _strip_assign(a)
    if isinstance(g, Relation) or isinstance(a, Relation):
        # A relation never equals a number; against a relation, an interval or
        # a set, sympy decides (x <= 5 vs 5 >= x, |x| < 3 vs (-3, 3)).
        if isinstance(g, (Relation, Seq, SetOf)) and isinstance(a, (Relation, Seq, SetOf)):
            if isinstance(a, SetOf) and not a.braced and not a.union and not isinstance(g, SetOf):
                return False if len(_dedupe(a.items)) > 1 else _judge(g, a.items[0], eq)
            if isinstance(g, Relation) and isinstance(a, Relation) and g.text.replace(" ", "") == a.text.replace(" ", ""):
                return True
            gr, ar = _region(g), _region(a)
            if gr is not None and ar is not None:
                # the same set, however written: `0 <= x < 1` is `[0, 1)`, `x >= 0` is
                # `[0, \infty)` (a relation in one variable; _region insists on that)
                return gr == ar
            return eq("REL:" + _render(g), "REL:" + _render(a))
        return False
    if isinstance(g, Empty) or isinstance(a, Empty):
        return isinstance(g, Empty) and isinstance(a, Empty)
    if isinstance(a, SetOf) and not a.braced and not isinstance(g, SetOf):
        items = _dedupe(a.items)
        if isinstance(g, Seq) and len(items) == len(g.items) and len(a.items) > 1:
            if a.alternatives or _interval_like(g):
                return False  # a bracket type is part of an interval; `0 or 1` is no tuple
            return _judge(g, Seq(g.open, g.close, a.items), eq)  # (1, 2) stated as "1, 2"
        return _all(_judge(g, x, eq) for x in items)  # several answers must all agree
    if isinstance(g, SetOf) and not g.braced and not isinstance(a, SetOf):
        if isinstance(a, Seq) and len(a.items) == len(g.items):
            if g.alternatives or _interval_like(a):
                return False
            return _judge(Seq(a.open, a.close, g.items), a, eq)
        return _all(_judge(x, a, eq) for x in _dedupe(g.items))
    if isinstance(g, SetOf) and isinstance(a, SetOf):
        return _match_unordered(_dedupe(g.items), _dedupe(a.items), eq)
    if isinstance(g, Seq) and isinstance(a, Seq):
        if (g.open, g.close) != (a.open, a.close) or len(g.items) != len(a.items):
            return False
        if g.labels and a.labels and sorted(g.labels) == sorted(a.labels) and g.labels != a.labels:
            order = {name: k for k, name in enumerate(a.labels)}
            a = Seq(a.open, a.close, tuple(a.items[order[name]] for name in g.labels), g.labels)
        return _all(_judge(x, y, eq) for x, y in zip(g.items, a.items))
    if isinstance(g, Matrix) or isinstance(a, Matrix):
        gm = g.rows if isinstance(g, Matrix) else None
        am = a.rows if isinstance(a, Matrix) else None
        if gm is not None and am is not None:
            if [len(r) for r in gm] != [len(r) for r in am]:
                return False
            return _all(_judge(x, y, eq) for rg, ra in zip(gm, am) for x, y in zip(rg, ra))
        other = a if gm is not None else g
        if isinstance(other, Scalar) and "\\begin{" in other.text:
            # a matrix expression (A + B, A B): sympy evaluates it
            return eq(_render(g), _render(a))
        return False
    if isinstance(g, Equation) and isinstance(a, Equation):
        d1, d2 = f"({g.lhs})-({g.rhs})", f"({a.lhs})-({a.rhs})"
        if eq(d1, d2):
            return True
        # the same equation flipped or scaled (x^2/16 + y^2/12 = 1/4 is
        # x^2/4 + y^2/3 = 1): lhs - rhs differ by a constant non-zero factor
        return eq("EQN:" + d1, "EQN:" + d2)
    if isinstance(g, Text) or isinstance(a, Text):
        gt = g.words if isinstance(g, Text) else g.text.lower() if isinstance(g, Scalar) else None
        at = a.words if isinstance(a, Text) else a.text.lower() if isinstance(a, Scalar) else None
        if gt is None or at is None:
            return False
        return " ".join(gt.split()) == " ".join(at.split())  # `3 4` is not `34`
    if isinstance(g, Scalar) and isinstance(a, Scalar):
        return _compare_scalars(g, a, eq)
    return False  # different kinds: a tuple is not a number, an equation not a value


def _interval_like(node: Seq) -> bool:
    """A bracketed pair that can only be an interval: a square bracket or an
    infinite end. Its bracket types are part of the answer, so a bare list of
    the endpoints never matches it (``(0, 1)`` alone may be a point)."""
    if node.open == "[" or node.close == "]":
        return True
    return any(isinstance(x, Scalar) and x.text.replace(" ", "") in _INF for x in node.items)


def _render(node: Node) -> str:
    """A node back as LaTeX, for the symbolic worker."""
    if isinstance(node, Relation):
        return node.text
    if isinstance(node, Scalar):
        return node.text
    if isinstance(node, Seq):
        return node.open + ", ".join(_render(x) for x in node.items) + node.close
    if isinstance(node, SetOf):
        body = ", ".join(_render(x) for x in node.items)
        return f"\\{{{body}\\}}" if node.braced else " \\cup ".join(_render(x) for x in node.items)
    if isinstance(node, Assign):
        return f"{node.lhs} = {_render(node.value)}"
    if isinstance(node, Equation):
        return f"{node.lhs} = {node.rhs}"
    if isinstance(node, Matrix):
        return "\\begin{pmatrix}" + " \\\\ ".join(" & ".join(_render(c) for c in r) for r in node.rows) + "\\end{pmatrix}"
    if isinstance(node, Text):
        return f"\\text{{{node.words}}}"
    return "\\emptyset"


_DECIMAL = re.compile(r"^\s*[-+]?\d*\.(\d+)\s*$")


def decimal_places(gold: str) -> int | None:
    """Decimals of a gold that is a non-integer decimal literal (``7.78`` -> 2),
    else None: only such a gold gets a tolerance (``compare``)."""
    m = _DECIMAL.match(gold)
    if not m or not m.group(1).rstrip("0"):
        return None
    return len(m.group(1))


def is_decimal_literal(text: str) -> bool:
    return bool(_DECIMAL.match(text))


_REL_OPS = ("<=", ">=", "<", ">", "\\neq", "\\leq", "\\geq")
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "\\neq": "\\neq"}
_INF = ("\\infty", "+\\infty", "-\\infty", "\\infinity")

Region = tuple  # (lo, lo_closed, hi, hi_closed) with None for an infinite end, or ("neq", r)


def _split_rel(text: str) -> list[str]:
    """``-2 <= x < 7`` -> ["-2", "<=", "x", "<", "7"] (top level only)."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            op = next((o for o in _REL_OPS if text.startswith(o, i)), None)
            if op is not None:
                out += [text[start:i].strip(), {"\\leq": "<=", "\\geq": ">="}.get(op, op)]
                i += len(op)
                start = i
                continue
        i += 1
    return out + [text[start:].strip()]


def _linear(lhs: str, rhs: str, var: str) -> tuple[Fraction, Fraction] | None:
    """(a, b) with lhs - rhs = a*var + b exactly, or None if not linear/exact."""
    vals = []
    points = (Fraction(0), Fraction(1), Fraction(2), Fraction(7), Fraction(-5), Fraction(-3, 2))  # |x| is not linear
    for x in points:
        env = {var: Fraction(x)}
        try:
            v = fast.evaluate(lhs, env)[0] - fast.evaluate(rhs, env)[0]  # type: ignore[arg-type]
        except (fast.Unsupported, fast.NeedsVariables, ZeroDivisionError, ValueError, OverflowError):
            return None
        if not isinstance(v, Fraction):
            return None
        vals.append(v)
    a, b = vals[1] - vals[0], vals[0]
    if any(vals[k] != a * x + b for k, x in enumerate(points)):
        return None
    return a, b


def _ray(op: str, r: Fraction) -> Region:
    return {"<": (None, False, r, False), "<=": (None, False, r, True),
            ">": (r, False, None, False), ">=": (r, True, None, False)}[op]


def _intersect(p: Region, q: Region) -> Region:
    lo, lc = p[0], p[1]
    if q[0] is not None and (lo is None or q[0] > lo or (q[0] == lo and not q[1])):
        lo, lc = q[0], q[1]
    hi, hc = p[2], p[3]
    if q[2] is not None and (hi is None or q[2] < hi or (q[2] == hi and not q[3])):
        hi, hc = q[2], q[3]
    return (lo, lc, hi, hc)


def _region(node: Node) -> Region | None:
    """The exact solution set of a linear inequality in one variable
    (``-x > -1``, ``5 >= x``, ``-2 <= x < 7``, ``x \\neq 3``) or an interval
    with rational ends; None for anything else (sympy decides)."""
    if isinstance(node, Seq) and node.open in "([" and node.close in ")]" and len(node.items) == 2 and not node.labels:
        ends = []
        for item, side in zip(node.items, ("lo", "hi")):
            if not isinstance(item, Scalar) or item.unit or item.percent or item.degrees:
                return None
            t = item.text.replace(" ", "")
            if t in _INF:
                if (side == "lo") != t.startswith("-"):
                    return None
                ends.append(None)
                continue
            v = fast.is_number(t)
            if not isinstance(v, Fraction):
                return None
            ends.append(v)
        return (ends[0], node.open == "[" and ends[0] is not None, ends[1], node.close == "]" and ends[1] is not None)
    if not isinstance(node, Relation):
        return None
    parts = _split_rel(node.text)
    if len(parts) not in (3, 5) or not all(parts[::2]):
        return None
    try:
        names = set().union(*(fast._free_names(p) for p in parts[::2]))
    except fast.Unsupported:
        return None
    if len(names) != 1:
        return None
    var = next(iter(names))
    region: Region = (None, False, None, False)
    for k in range(0, len(parts) - 2, 2):
        lhs, op, rhs = parts[k], parts[k + 1], parts[k + 2]
        lin = _linear(lhs, rhs, var)
        if lin is None or lin[0] == 0:
            return None
        a, b = lin
        r = -b / a
        if op == "\\neq":
            return ("neq", r) if len(parts) == 3 else None
        region = _intersect(region, _ray(op if a > 0 else _FLIP[op], r))
    return region


def fast_scalar_eq(x: str, y: str) -> bool | None:
    """The in-process scalar comparison (gold ``x``, answer ``y``): decides
    what ``_math_fast`` understands, None otherwise."""
    if x.startswith("EQN:") and y.startswith("EQN:"):
        return fast.proportional(x[4:], y[4:])
    if x.startswith("REL:") or y.startswith("REL:"):
        return None
    return fast.fast_equal(x, y, decimal_places(x), is_decimal_literal(y))


# =========================================================================== verdicts


@dataclass
class _Pending:
    golds: list[str]
    answers: list[str]
    shown: str
    gold: str


def _as_text(value, numbers: bool = True) -> str | None:
    """A completion or gold as text: bytes are decoded (bad UTF-8 replaced), a
    numeric gold spelled out; anything else raises ``TypeError``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value) if isinstance(value, float) else str(value)
    raise TypeError(f"expected text, got {type(value).__name__}")


def gold_answers(gold: str) -> list[str]:
    """The gold's answers: its boxes when it has any (boxes joined by a short
    connector are a list: ``\\boxed{1} and \\boxed{2}``; otherwise the last
    group counts), the final answer of a written-out solution, else the gold
    itself."""
    boxes = _boxes(gold)
    if boxes:
        group = [boxes[-1][1]]
        for (start, content), (nxt, _) in zip(reversed(boxes[:-1]), reversed(boxes[1:])):
            between = gold[start:nxt]
            between = between[between.find(content) + len(content):]
            if len(re.findall(r"[A-Za-z]{2,}", between.replace("boxed", ""))) > 3:
                break
            group.insert(0, content)
        return list(dict.fromkeys(group))
    if len(gold) > 200 and len(re.findall(r"[A-Za-z]{3,}", _mask_math(gold, None))) > 10:
        stated = _final_answers(gold)
        if stated:
            return stated
    return [gold]


def _prepare(completion, answer, think_prefilled: bool):
    """A final verdict when the cheap path decides, else a ``_Pending`` job.

    Everything here is linear in the text (extraction is one pass; answers
    longer than ``MAX_FAST_CHARS`` skip the in-process parser).
    """
    answer = _as_text(answer)  # a gold that is not text is the verifier's input error: `error`
    try:
        completion = _as_text(completion, numbers=False)
    except TypeError as exc:
        return verdict("unparseable", detail=f"completion is not text: {exc}")
    if answer is None or not answer.strip():
        return verdict("error", None, "no gold answer")
    split = split_completion(completion, think_prefilled=think_prefilled)
    if not split.closed:
        return verdict("unparseable", detail="think block never closed: no final answer")
    answers = _final_answers(split.summary)
    if not answers:
        return verdict("unparseable", detail="no final answer after </think>")
    golds = gold_answers(answer)
    shown = ", ".join(answers)
    job = _Pending(golds, answers, shown, answer)
    if any(fast.astronomical(a) for a in answers) and not any(fast.astronomical(g) for g in golds):
        # bounded in log space before anything evaluates it: never a timeout or overflow
        return _decided(False, shown, answer, "magnitude")
    if len(shown) > MAX_FAST_CHARS or len(", ".join(golds)) > MAX_FAST_CHARS:
        # a pathological multi-kilobyte "answer" is judged where a time limit applies
        return job
    try:
        result = judge_texts(golds, answers, fast_scalar_eq)
    except Exception as exc:  # noqa: BLE001 -- a bug in the cheap path must not cost the record: ask sympy
        log.debug("fast path failed on %r vs %r: %s", shown, answer, exc)
        result = None
    if result is None:
        return job
    return _decided(result, shown, answer, "fast")


_CHOICE_LABEL = re.compile(r"^\s*(?:\\text(?:bf)?\s*\{\s*)?\(([A-E])\)\s*\}?\s*(?=\S)")


def judge_texts(gold: str | list[str], answers: list[str], eq: ScalarEq) -> bool | None:
    """Compare the stated answers (several are a set) with the gold (several
    gold answers are a set too)."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    if len(golds) == 1 and len(answers) == 1:
        # `\text{(C) } 5`: a multiple-choice answer names its option and its value;
        # against a letter gold the option counts, against any other the value
        label = _CHOICE_LABEL.match(answers[0])
        rest = answers[0][label.end():] if label else ""
        if label and not re.search(r"\([A-E]\)|^\s*(?:or|and|,|;|\\lor|\\vee)\b|[|]", rest):
            # (one option with its value; `(B) or (C)` is two options: a hedge, judged as written)
            letter = re.fullmatch(r"\s*\(?\s*([A-E])\s*\)?\s*", re.sub(r"\\text(?:bf)?\s*\{([^{}]*)\}", r"\1", golds[0]))
            if letter:
                return letter.group(1) == label.group(1)
            answers = [answers[0][label.end():]]
    # `1,22` is a decimal comma only when the other side is a decimal (else a list)
    comma = len(golds) == 1 and len(answers) == 1 and any(
        is_decimal_literal(_normalize(x)[0]) for x in (golds[0], answers[0]))
    if len(golds) == 1:
        g = _parse(golds[0], comma)
    else:
        g = SetOf(tuple(parse_answer(x) for x in golds), braced=False)
    if len(answers) == 1:
        a = _parse(answers[0], comma)
    else:
        a = SetOf(tuple(parse_answer(x) for x in answers), braced=False)
    return _judge(g, a, eq)


def _decided(result: bool, shown: str, gold: str, path: str) -> dict:
    shown, gold = _clip(shown), _clip(gold)
    if result:
        return verdict("correct", detail=f"{shown!r} matches gold {gold!r} ({path})")
    return verdict("incorrect", detail=f"{shown!r} does not match gold {gold!r} ({path})")


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def verify_math(completion: str | None, answer: str | None, *, timeout_s: float = 5.0,
                think_prefilled: bool = False) -> dict:
    """Verdict on one completion against its gold answer.

    Returns ``datagen.records.verdict(outcome, score, detail)``; outcome is
    ``correct``, ``incorrect``, ``unparseable``, ``timeout`` or ``error``.
    Never hangs: symbolic work runs in a worker process killed after
    ``timeout_s`` seconds (``timeout`` then has score None: the verifier
    could not judge). ``think_prefilled``: the chat template opened the think
    block, so a completion without any tag is unfinished reasoning
    (``split_completion``).
    """
    return verify_math_batch([completion], [answer], timeout_s=timeout_s,  # type: ignore[list-item]
                             think_prefilled=think_prefilled)[0]


def verify_math_batch(completions: list[str], answers: list[str], *, timeout_s: float = 5.0,
                      think_prefilled: bool = False, workers: int | None = None) -> list[dict]:
    """Verdicts for many pairs: the cheap path in this process, only the
    undecided leftovers go to symbolic worker processes (``workers`` of
    them, default one per CPU, judging in parallel; each job has its own
    ``timeout_s``, which covers its whole judging there).

    One sample never stops the batch: any failure judging it is that
    sample's ``error`` (or ``timeout``), counted in its verdict.
    """
    if len(completions) != len(answers):
        raise ValueError(f"{len(completions)} completions but {len(answers)} answers")
    out: list[dict | None] = []
    pending: list[tuple[int, _Pending]] = []
    for i, (c, g) in enumerate(zip(completions, answers)):
        try:
            got = _prepare(c, g, think_prefilled)
        except Exception as exc:
            log.debug("math verifier failed on sample %d", i, exc_info=True)
            got = verdict("error", None, f"verifier failed: {type(exc).__name__}: {_clip(str(exc), 120)}")
        if isinstance(got, _Pending):
            pending.append((i, got))
            out.append(None)
        else:
            out.append(got)
    if pending:
        from datagen.verify._math_pool import shared_pool

        # default: one worker per CPU (as `datagen verify --workers`); a worker's
        # process starts only when it first gets a job, so few jobs start few
        pool = shared_pool(max(1, int(workers) if workers else min(os.cpu_count() or 1, 8)))
        results = pool.judge_many([(job.golds, job.answers) for _, job in pending], timeout_s)
        for (i, job), (status, result, detail) in zip(pending, results):
            if status == "ok":
                out[i] = _decided(bool(result), job.shown, job.gold, "symbolic")
            elif status == "timeout":
                # The verifier could not judge: no score (never a silent 0.0).
                out[i] = {**verdict("timeout", detail=f"symbolic comparison of {_clip(job.shown)!r} exceeded {timeout_s}s"),
                          "score": None}
            else:
                out[i] = verdict("error", None, f"symbolic worker failed: {_clip(detail)}")
    return out  # type: ignore[return-value]
