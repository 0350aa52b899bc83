"""Math answer verifier: is the final answer of a completion the gold answer?

Contract (issue 3, section 1):

- The final answer comes only from the text after ``</think>``
  (``datagen.records.split_completion``); an unclosed think block has no
  final answer -> ``unparseable``. In that summary: every ``\\boxed{}``
  (``\\fbox{}``), else the last "final answer is …" / "answer: …" form,
  else a clearly stated final answer (a one-line summary, or a closing
  "therefore/thus/so … is X" sentence).
- Both sides are normalized (``_normalize``): ``\\dfrac``/``\\tfrac``,
  ``\\left``/``\\right``, LaTeX spacing, ``\\text`` and units, degrees,
  percent, thousands separators, ``\\pm``, mixed numbers, repeating
  decimals, scientific notation, the empty set.
- Then parsed into a small structure: scalar, text, tuple/interval (ordered,
  brackets kept), set (unordered), matrix (element-wise), equation. ``x = 3``
  is the scalar ``3``; several answers (commas, "or", several boxes) are a
  set, so two different final answers or a hedge ("3 or 4") only match a
  gold that has both.
- Scalars compare on a cheap path first (``_math_fast``: exact rationals,
  floats with a relative tolerance ``REL_TOL``, polynomial identities by
  evaluation at fixed points). Only pairs it cannot decide go to the
  symbolic worker (latex2sympy2_extended + sympy, in a separate process that
  is killed past ``timeout_s``: the verdict is then ``timeout``, never a
  hang).

Outcomes (``datagen.records.verdict``): ``correct`` / ``incorrect`` /
``unparseable`` (no final answer) / ``timeout`` (symbolic comparison ran out
of time) / ``error`` (no gold answer, or the verifier itself failed).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from datagen.records import split_completion, verdict
from datagen.verify import _math_fast as fast

log = logging.getLogger(__name__)

#: Relative tolerance for comparisons that involve a float (a decimal literal,
#: a root, pi …). Two rationals are compared exactly.
REL_TOL = 1e-6

#: Answers longer than this skip the in-process path (it has no time limit).
MAX_FAST_CHARS = 1000

__all__ = ["REL_TOL", "extract_final_answer", "verify_math", "verify_math_batch"]


# =========================================================================== extraction


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


def _boxed_all(text: str) -> list[str]:
    found = []
    for m in _BOX.finditer(text):
        got = _balanced(text, m.end())
        if got is not None:
            found.append(got[0].strip())
        else:  # `\boxed 5`
            tail = re.match(r"([^\s$]+)", text[m.end():])
            if tail:
                found.append(tail.group(1))
    return [f for f in found if f]


_FINAL_PHRASE = re.compile(
    # the connector is required: "To answer this, note …" states nothing
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:\*\*)?\s*(?:is|:|=|：)\s*[:：]?\s*(?:\*\*)?\s*(?P<ans>[^\n]+)",
    re.IGNORECASE,
)
_CLOSING = re.compile(r"^(?:therefore|thus|hence|so|consequently)\b[, ]*(?P<rest>.+)$", re.IGNORECASE)


def _trim_sentence(ans: str) -> str:
    ans = ans.strip().strip("*").strip()
    # Cut at a sentence end that is not a decimal point: "3. Next" / "3."
    ans = re.split(r"(?<!\d)\.(?:\s|$)|(?<=\d)\.(?:\s|$)", ans, maxsplit=1)[0]
    return ans.strip().rstrip(".;,!").strip().strip("*").strip()


def _final_answers(summary: str | None) -> list[str]:
    """Every final answer the summary states, in order (deduplicated)."""
    if not summary or not summary.strip():
        return []
    boxed = _boxed_all(summary)
    if boxed:
        return list(dict.fromkeys(boxed))
    phrases = list(_FINAL_PHRASE.finditer(summary))
    if phrases:
        ans = _trim_sentence(phrases[-1].group("ans"))
        return [ans] if ans else []
    lines = [ln.strip() for ln in summary.strip().splitlines() if ln.strip()]
    last = lines[-1]
    closing = _CLOSING.match(last)
    if closing:
        rest = _trim_sentence(closing.group("rest"))
        # "so the area is 12 cm^2" -> "12 cm^2"; "thus $x = 5$" -> "x = 5"
        parts = re.split(r"\s(?:is|equals|are)\s", rest)
        return [parts[-1].strip()] if parts[-1].strip() else []
    # A bare one-line summary ("$\\frac{5}{6}$", "x = 5", "10 apples") is the
    # answer; a one-line sentence ("See the reasoning above.") is not.
    if len(lines) == 1 and len(last) <= 80 and len(re.findall(r"[A-Za-z]{2,}", _strip_math(last))) <= 2:
        ans = _trim_sentence(last)
        return [ans] if ans else []
    return []


def _strip_math(text: str) -> str:
    return re.sub(r"\$[^$]*\$|\\[a-zA-Z]+", " ", text)


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
_TEXT_CMDS = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|operatorname|textnormal|hbox)\s*(?=\{)")
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


@dataclass(frozen=True)
class SetOf:
    """Unordered: ``\\{…\\}`` (braced) or several answers / a union (bare)."""

    items: tuple
    braced: bool


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
class Text:
    words: str


@dataclass(frozen=True)
class Empty:
    pass


Node = Scalar | Seq | SetOf | Matrix | Equation | Assign | Text | Empty


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


_REPEATING = re.compile(r"(?<![\d.])(-?)(\d*)\.(\d*)\\overline\{(\d+)\}")
_REPEATING_PAREN = re.compile(r"(?<![\d.])(-?)(\d*)\.(\d*)\((\d+)\)(?![\d(])")
_MIXED_LATEX = re.compile(r"(?<![\w}.\\)])(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}")
_MIXED_PLAIN = re.compile(r"(?<![\w.^/])(\d+)\s+(\d+)/(\d+)(?![\d.])")
_SCI_E = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")
_THOUSANDS_COMMA = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,])")
_THOUSANDS_SPACE = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?![\d.])")


def _repeating_to_frac(sign: str, whole: str, fixed: str, rep: str) -> str:
    whole_v = int(whole or "0")
    k, r = len(fixed), len(rep)
    # 0.a(b) = (ab - a) / (10^k (10^r - 1))
    num = int((fixed or "") + rep) - int(fixed or "0")
    value = whole_v + Fraction(num, 10**k * (10**r - 1))
    return f"{sign}\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _normalize(raw: str) -> tuple[str, dict]:
    """Normalize one answer string; returns (text, flags) with flags for units,
    percent and degrees that were stripped."""
    s = raw.strip()
    flags: dict = {"percent": False, "degrees": False, "unit": None}
    for k, v in _UNICODE.items():
        if k in s:
            s = s.replace(k, v)
    boxed = _boxed_all(s)
    if boxed:
        s = boxed[-1]
    s = s.strip()
    if "\\$" in s:  # a dollar amount, before `$` math delimiters are dropped
        s = s.replace("\\$", " ")
        flags["unit"] = "dollars"
    for pre, post in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(pre) and s.endswith(post) and len(s) >= len(pre) + len(post):
            s = s[len(pre):len(s) - len(post)]
    s = s.replace("$", " ")
    s = re.sub(r"\\(?:displaystyle|textstyle|left\.|right\.|left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![a-zA-Z])", "", s)
    s = re.sub(r"\\[dt]frac(?![a-zA-Z])", r"\\frac", s)
    s = re.sub(r"\\[dt]binom(?![a-zA-Z])", r"\\binom", s)
    if _DEGREES.search(s):
        s = _DEGREES.sub(" ", s)
        flags["degrees"] = True
    if _PERCENT.search(s):
        s = _PERCENT.sub(" ", s)
        flags["percent"] = True
    s = _replace_group_cmd(s, _TEXT_CMDS)
    s = s.replace("\\!", "")
    s = _SPACES.sub(" ", s)
    s = re.sub(r"\\(?:le|leq|leqslant)(?![a-zA-Z])", "<=", s)
    s = re.sub(r"\\(?:ge|geq|geqslant)(?![a-zA-Z])", ">=", s)
    s = re.sub(r"\\varnothing(?![a-zA-Z])", "\\\\emptyset", s)
    s = s.replace("**", "^").replace("{,}", ",")
    s = " ".join(s.split())
    s = s.rstrip(".").strip()
    bracketed = bool(s) and s[0] in "([{\\" and s[-1] in ")]}"
    if not bracketed:
        s = _THOUSANDS_COMMA.sub(lambda m: m.group(0).replace(",", ""), s)
    s = _THOUSANDS_SPACE.sub(lambda m: m.group(0).replace(" ", ""), s)
    s = _REPEATING.sub(lambda m: _repeating_to_frac(*m.groups()), s)
    s = _REPEATING_PAREN.sub(lambda m: _repeating_to_frac(*m.groups()), s)
    s = _MIXED_LATEX.sub(r"(\1+\\frac{\2}{\3})", s)
    s = _MIXED_PLAIN.sub(r"(\1+\\frac{\2}{\3})", s)
    s = _SCI_E.sub(r"\1\\times10^{\2}", s)
    # the real line, however it is written, is one interval
    s = re.sub(r"^(?:\\(?:mathbb|mathbf|mathcal)\s*\{?R\}?|all real numbers)$", "(-\\\\infty,\\\\infty)", s, flags=re.IGNORECASE)
    return s.strip(), flags


# =========================================================================== structure


def _split_top(text: str, seps: tuple[str, ...]) -> list[str]:
    """Split at separators outside any (), [], {} (``\\{`` counts as a bracket)."""
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


_SIMPLE_LHS = re.compile(r"^(?:\\?[a-zA-Z]+(?:_\{?\w+\}?)?(?:\([^()=]*\))?|\\angle\s*[A-Z]+|m\s*\\angle\s*[A-Z]+)$")
_WORDS = re.compile(r"^[A-Za-z][A-Za-z '\-]*$")
_MATRIX = re.compile(r"^\\begin\{(?P<env>[pbvBV]?matrix|array|smallmatrix)\}(?:\{[^}]*\})?(?P<body>.*)\\end\{(?P=env)\}$", re.DOTALL)


def _parse(raw: str) -> Node:
    """Normalize and parse one stated answer (or gold) into a ``Node``."""
    text, flags = _normalize(raw)
    return _parse_norm(text, flags)


def _parse_norm(t: str, flags: dict) -> Node:
    t = t.strip()
    t = re.sub(r"^(?:either|both)\s+", "", t, flags=re.IGNORECASE)
    t = re.sub(r"^(?:[a-zA-Z]|\\[a-z]+)\s*\\in\s*(?=\S)", "", t)  # x \in [1, 2] is the interval
    if not t:
        return Text("")
    if _EMPTY.match(t):
        return Empty()
    m = _MATRIX.match(t)
    if m:
        rows = [r for r in _split_top(m.group("body"), ("\\\\",)) if r.strip()]
        return Matrix(tuple(tuple(_parse_norm(c, {}) for c in _split_top(r, ("&",))) for r in rows))
    union = _split_top(t, ("\\cup", "∪"))
    if len(union) > 1:
        return SetOf(tuple(_parse_norm(p, {}) for p in union), braced=False)
    if t.startswith("\\{") and t.endswith("\\}"):
        inner = t[2:-2].strip()
        items = [p for p in _split_top(inner, (",", ";")) if p] if inner else []
        return SetOf(tuple(_strip_assign(_parse_norm(p, {})) for p in items), braced=True) if items else Empty()
    if t[0] in "([" and t[-1] in ")]" and _one_group(t):
        items = _split_top(t[1:-1], (",",))
        if len(items) > 1:
            return Seq(t[0], t[-1], tuple(_strip_assign(_parse_norm(p, {})) for p in items))
    if t.startswith("\\langle") and t.endswith("\\rangle"):
        items = _split_top(t[len("\\langle"):-len("\\rangle")], (",",))
        return Seq("(", ")", tuple(_strip_assign(_parse_norm(p, {})) for p in items))
    items = [p for p in _split_top(t, (",", ";", " or ", " and ", "\\text{or}")) if p]
    if len(items) > 1:
        nodes = [_parse_norm(p, flags) for p in items]
        lhs = [n.lhs for n in nodes if isinstance(n, Assign)]
        if len(lhs) == len(nodes) and len(set(lhs)) == len(lhs):
            # x = 1, y = 2: a solution of a system, ordered as written
            return Seq("(", ")", tuple(n.value for n in nodes))
        return SetOf(tuple(_strip_assign(n) for n in nodes), braced=False)
    if "\\pm" in t or "\\mp" in t:
        plus = t.replace("\\pm", "+").replace("\\mp", "-")
        minus = t.replace("\\pm", "-").replace("\\mp", "+")
        return SetOf((_strip_assign(_parse_norm(plus, flags)), _strip_assign(_parse_norm(minus, flags))), braced=False)
    interval = _inequality_interval(t)
    if interval is not None:
        return interval
    sides = _split_top(t, ("=",))
    if len(sides) >= 2 and all(sides) and not any(s.endswith(("<", ">", "!")) for s in sides[:-1]):
        if _SIMPLE_LHS.match(sides[0]):
            return Assign(sides[0], _parse_norm(sides[-1], flags))
        return Equation(sides[0], sides[-1])
    choice = re.match(r"^\(?([A-E])\)$|^\(([A-E])\)?$", t)
    if choice:
        return Text((choice.group(1) or choice.group(2)).lower())
    return _scalar(t, flags)


_VAR = r"(?:[a-zA-Z]|\\[a-z]+)"
_REL = r"(<=|>=|<|>)"
_INEQ_ONE = re.compile(rf"^{_VAR}\s*{_REL}\s*(?P<b>[^<>=]+)$")
_INEQ_TWO = re.compile(rf"^(?P<a>[^<>=]+?)\s*{_REL}\s*{_VAR}\s*(?P<r2><=|>=|<|>)\s*(?P<b>[^<>=]+)$")


def _inequality_interval(t: str) -> Seq | None:
    """``x > 3`` is the interval ``(3, \\infty)``; ``1 <= x < 2`` is ``[1, 2)``."""
    m = _INEQ_TWO.match(t)
    if m and m.group(2) in ("<", "<=") and m.group("r2") in ("<", "<="):
        return Seq("[" if m.group(2) == "<=" else "(", "]" if m.group("r2") == "<=" else ")",
                   (_scalar(m.group("a").strip(), {}), _scalar(m.group("b").strip(), {})))
    m = _INEQ_ONE.match(t)
    if m:
        rel, bound = m.group(1), _scalar(m.group("b").strip(), {})
        if rel in (">", ">="):
            return Seq("(" if rel == ">" else "[", ")", (bound, Scalar("\\infty")))
        return Seq("(", ")" if rel == "<" else "]", (Scalar("-\\infty"), bound))
    return None


def _strip_assign(node) -> Node:
    return node.value if isinstance(node, Assign) else node


def _scalar(t: str, flags: dict) -> Node:
    unit = flags.get("unit")
    if fast.is_number(t) is None:
        m = _UNIT_TAIL.match(t)
        if m:
            word = re.sub(r"\s+", " ", m.group("unit")).strip()
            last = re.sub(r"\^.*$", "", word.split()[-1]).strip()  # cm^2 -> cm
            head = m.group("num").strip()
            known = last in _UNITS and "/" not in word and "per" not in word.split()
            # A known unit, or any word (apples, km/h): dropped from a number.
            # Only known units take part in conversions and confusions.
            if fast.is_number(head) is not None and (known or (len(word) >= 3 and last.lower() not in _FUNC_WORDS)):
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
    if a.percent != b.percent:
        p, q = (ta, tb) if a.percent else (tb, ta)
        pairs.append((f"({p})/100", q) if a.percent else (q, f"({p})/100"))
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
        if x.replace(" ", "") == y.replace(" ", ""):
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
    g, a = _strip_assign(g), _strip_assign(a)
    if isinstance(g, Empty) or isinstance(a, Empty):
        return isinstance(g, Empty) and isinstance(a, Empty)
    if isinstance(a, SetOf) and not a.braced and not isinstance(g, SetOf):
        items = _dedupe(a.items)
        if isinstance(g, Seq) and len(items) == len(g.items) and len(a.items) > 1:
            return _judge(g, Seq(g.open, g.close, a.items), eq)  # (1, 2) stated as "1, 2"
        return _all(_judge(g, x, eq) for x in items)  # several answers must all agree
    if isinstance(g, SetOf) and not g.braced and not isinstance(a, SetOf):
        if isinstance(a, Seq) and len(a.items) == len(g.items):
            return _judge(Seq(a.open, a.close, g.items), a, eq)
        return _all(_judge(x, a, eq) for x in _dedupe(g.items))
    if isinstance(g, SetOf) and isinstance(a, SetOf):
        return _match_unordered(_dedupe(g.items), _dedupe(a.items), eq)
    if isinstance(g, Seq) and isinstance(a, Seq):
        if (g.open, g.close) != (a.open, a.close) or len(g.items) != len(a.items):
            return False
        return _all(_judge(x, y, eq) for x, y in zip(g.items, a.items))
    if isinstance(g, Matrix) or isinstance(a, Matrix):
        gm = g.rows if isinstance(g, Matrix) else None
        am = a.rows if isinstance(a, Matrix) else None
        if gm is not None and am is not None:
            if [len(r) for r in gm] != [len(r) for r in am]:
                return False
            return _all(_judge(x, y, eq) for rg, ra in zip(gm, am) for x, y in zip(rg, ra))
        return False
    if isinstance(g, Equation) and isinstance(a, Equation):
        d1, d2 = f"({g.lhs})-({g.rhs})", f"({a.lhs})-({a.rhs})"
        same = eq(d1, d2)
        if same:
            return True
        flipped = eq(d1, f"-({d2})")
        if flipped:
            return True
        return None if same is None or flipped is None else False
    if isinstance(g, Text) or isinstance(a, Text):
        gt = g.words if isinstance(g, Text) else g.text.lower() if isinstance(g, Scalar) else None
        at = a.words if isinstance(a, Text) else a.text.lower() if isinstance(a, Scalar) else None
        if gt is None or at is None:
            return False
        return gt.replace(" ", "") == at.replace(" ", "")
    if isinstance(g, Scalar) and isinstance(a, Scalar):
        return _compare_scalars(g, a, eq)
    return False  # different kinds: a tuple is not a number, an equation not a value


def fast_scalar_eq(x: str, y: str) -> bool | None:
    """The in-process scalar comparison: decides what ``_math_fast`` understands."""
    return fast.fast_equal(x, y, REL_TOL)


# =========================================================================== verdicts


@dataclass
class _Pending:
    gold: str
    answers: list[str]
    shown: str


def _prepare(completion: str | None, answer: str | None, think_prefilled: bool):
    """A final verdict when the cheap path decides, else a ``_Pending`` job."""
    if answer is None or not str(answer).strip():
        return verdict("error", None, "no gold answer")
    split = split_completion(completion, think_prefilled=think_prefilled)
    if not split.closed:
        return verdict("unparseable", detail="think block never closed: no final answer")
    answers = _final_answers(split.summary)
    if not answers:
        return verdict("unparseable", detail="no final answer after </think>")
    shown = ", ".join(answers)
    if len(shown) > MAX_FAST_CHARS or len(str(answer)) > MAX_FAST_CHARS:
        # Regexes and evaluation are linear-ish, but not free: a pathological
        # multi-kilobyte "answer" is judged where a time limit applies.
        return _Pending(str(answer), answers, shown)
    try:
        result = judge_texts(str(answer), answers, fast_scalar_eq)
    except Exception as exc:  # noqa: BLE001 -- a bug in the cheap path must not cost the record: ask sympy
        log.debug("fast path failed on %r vs %r: %s", shown, answer, exc)
        result = None
    if result is None:
        return _Pending(str(answer), answers, shown)
    return _decided(result, shown, str(answer), "fast")


def judge_texts(gold: str, answers: list[str], eq: ScalarEq) -> bool | None:
    """Compare the stated answers (several are a set) with the gold text."""
    g = _parse(gold)
    if len(answers) == 1:
        a = _parse(answers[0])
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
                      think_prefilled: bool = False) -> list[dict]:
    """Verdicts for many pairs: the cheap path in this process, only the
    undecided leftovers go to the symbolic worker (one at a time, each with
    its own ``timeout_s``)."""
    if len(completions) != len(answers):
        raise ValueError(f"{len(completions)} completions but {len(answers)} answers")
    out: list[dict | None] = []
    pending: list[tuple[int, _Pending]] = []
    for i, (c, g) in enumerate(zip(completions, answers)):
        try:
            got = _prepare(c, g, think_prefilled)
        except Exception as exc:  # the verifier's own failure is `error`, never `incorrect`
            log.exception("math verifier failed")
            got = verdict("error", None, f"verifier failed: {type(exc).__name__}: {exc}")
        if isinstance(got, _Pending):
            pending.append((i, got))
            out.append(None)
        else:
            out.append(got)
    if pending:
        from datagen.verify._math_worker import shared_worker

        worker = shared_worker()
        for i, job in pending:
            status, result, detail = worker.judge(job.gold, job.answers, timeout_s)
            if status == "ok":
                out[i] = _decided(bool(result), job.shown, job.gold, "symbolic")
            elif status == "timeout":
                # The verifier could not judge: no score (never a silent 0.0).
                out[i] = {**verdict("timeout", detail=f"symbolic comparison of {_clip(job.shown)!r} exceeded {timeout_s}s"),
                          "score": None}
            else:
                out[i] = verdict("error", None, f"symbolic worker failed: {detail}")
    return out  # type: ignore[return-value]
