"""The cheap numeric path of the math verifier: a tiny LaTeX arithmetic subset.

Why this exists: nearly every gold/answer pair in practice is a number, a
fraction, a root or a short polynomial. Sending those through latex2sympy and
sympy costs about a millisecond each; evaluating them here costs tens of
microseconds, which is what lets ``verify_math`` run at >= 10x math-verify's
throughput. This is deliberately *not* a LaTeX parser: it accepts only
numbers, ``+ - * / ^``, ``\\cdot \\times \\div``, groups, ``\\frac``,
``\\sqrt``, ``\\pi``, ``e``, ``\\infty``, single-letter and Greek variables,
and a few functions with a delimited argument. Anything else raises
``Unsupported`` and the caller falls back to the symbolic worker
(latex2sympy2_extended + sympy), so the subset can only decide what it
understands.

Semantics follow latex2sympy2_extended where they overlap (``e`` is Euler's
number, ``\\log`` base 10), so the fast and symbolic paths agree; ``i`` is
the imaginary unit on both paths (the worker substitutes it).

Values are exact ``Fraction`` while only integers and rationals are involved
(so 1000000007 and 1000000008 never look "close"), and ``complex`` floats
once a decimal literal, a root, a constant or a variable enters.
"""

from __future__ import annotations

import cmath
import math
import re
from collections.abc import Callable
from fractions import Fraction

Value = Fraction | complex


class Unsupported(Exception):
    """The expression is outside the fast subset (or overflowed): ask sympy."""


_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>\d+\.\d*|\.\d+|\d+)"
    r"|(?P<cmd>\\[a-zA-Z]+)"
    r"|(?P<var>[a-zA-Z])"
    r"|(?P<op>[-+*/^(){}\[\]_!|,=<>])"
    r")"
)

_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
    "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "phi", "varphi", "chi", "psi", "omega",
}
_FUNCS: dict[str, Callable[[complex], complex]] = {
    "sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "ln": cmath.log, "exp": cmath.exp,
    "log": cmath.log10, "arcsin": cmath.asin, "arccos": cmath.acos, "arctan": cmath.atan,
    "cot": lambda z: 1 / cmath.tan(z), "sec": lambda z: 1 / cmath.cos(z), "csc": lambda z: 1 / cmath.sin(z),
    "sinh": cmath.sinh, "cosh": cmath.cosh, "tanh": cmath.tanh,
}
_MUL_CMDS = {"cdot", "times"}
# Exact powers stay exact only while small: a power tower must not hang the
# parent process; beyond these it goes to float (and overflows -> Unsupported).
_MAX_EXACT_EXP = 4096
_MAX_EXACT_BITS = 20000


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"character {text[pos]!r}")
        kind = m.lastgroup
        assert kind is not None
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


class _Parser:
    """Recursive descent over the token list; evaluates as it parses."""

    def __init__(self, tokens: list[tuple[str, str]], env: dict[str, complex] | None):
        self.toks = tokens
        self.i = 0
        self.env = env
        self.free: set[str] = set()

    # -- the algebra values are built in (exact Fractions and complex floats here;
    #    sympy objects in the symbolic worker's subclass)
    def num(self, text: str) -> Value:
        return _number(text)

    def div(self, a: Value, b: Value) -> Value:
        return _div(a, b)

    def pow(self, a: Value, b: Value) -> Value:
        return _pow(a, b)

    def root(self, v: Value, k: Value) -> Value:
        return _root(v, k)

    def const(self, name: str) -> Value:
        return {"pi": complex(math.pi), "infty": complex(math.inf), "e": complex(math.e), "i": 1j}[name]

    def abs(self, v: Value) -> Value:
        return abs(v) if isinstance(v, Fraction) else complex(abs(v))

    def func(self, name: str, arg: Value) -> Value:
        try:
            return _FUNCS[name](complex(arg))
        except (ValueError, OverflowError, ZeroDivisionError) as exc:
            raise Unsupported(str(exc)) from None

    # -- helpers
    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise Unsupported("unexpected end")
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        tok = self.take()
        if tok[1] != value:
            raise Unsupported(f"expected {value!r}, got {tok[1]!r}")

    # -- grammar
    def parse(self) -> Value:
        value = self.expr()
        if self.peek() is not None:
            raise Unsupported(f"trailing {self.peek()[1]!r}")  # type: ignore[index]
        return value

    def expr(self) -> Value:
        tok = self.peek()
        sign = 1
        if tok and tok[1] in "+-" and tok[0] == "op":
            self.take()
            sign = -1 if tok[1] == "-" else 1
        value = self.term()
        if sign < 0:
            value = -value
        while (tok := self.peek()) and tok[0] == "op" and tok[1] in "+-":
            self.take()
            rhs = self.term()
            value = value + rhs if tok[1] == "+" else value - rhs
        return value

    def term(self) -> Value:
        value = self.unary()
        while (tok := self.peek()) is not None:
            kind, text = tok
            if (kind == "op" and text in "*/") or (kind == "cmd" and text[1:] in _MUL_CMDS | {"div"}):
                self.take()
                rhs = self.unary()
                value = self.div(value, rhs) if text in ("/", "\\div") else value * rhs
            elif self._starts_atom(tok):
                if kind == "num" and self.toks[self.i - 1][0] == "num":
                    # `3 4` is two numbers (a hedge or a typo), never 12
                    raise Unsupported("two numbers side by side")
                value = value * self.power()  # implicit multiplication: 2x, 2\pi, (a)(b)
            else:
                break
        return value

    def unary(self) -> Value:
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in "+-":
            self.take()
            value = self.unary()
            return -value if tok[1] == "-" else value
        return self.power()

    def power(self) -> Value:
        base = self.atom()
        tok = self.peek()
        if tok and tok == ("op", "^"):
            self.take()
            nxt = self.peek()
            if nxt and nxt[0] == "op" and nxt[1] in "{(":
                exponent = self.atom()
            elif nxt and nxt[0] == "op" and nxt[1] == "-":
                self.take()
                exponent = -self.atom()
            else:
                # `2^10` is written for 2^{10} far more often than for 2^1 * 0.
                exponent = self.atom()
            return self.pow(base, exponent)
        if tok and tok == ("op", "!"):
            raise Unsupported("factorial")
        return base

    def _starts_atom(self, tok: tuple[str, str]) -> bool:
        kind, text = tok
        if kind in ("num", "var"):
            return True
        if kind == "op":
            return text in "({"
        return text[1:] not in _MUL_CMDS | {"div"}

    def group(self) -> Value:
        tok = self.take()
        if tok == ("op", "{"):
            value = self.expr()
            self.expect("}")
            return value
        # single-character argument, e.g. \frac12 = \frac{1}{2}, \sqrt2
        if tok[0] == "num":
            if len(tok[1]) > 1:
                self.i -= 1
                self.toks[self.i] = ("num", tok[1][1:])
            return self.num(tok[1][0])
        if tok[0] == "var":
            return self._var(tok[1])
        raise Unsupported(f"argument {tok[1]!r}")

    def atom(self) -> Value:
        kind, text = self.take()
        if kind == "num":
            return self.num(text)
        if kind == "var":
            if self.peek() == ("op", "_"):  # x_1, F_{n-k-1}: one name
                return self._var(f"{text}_{{{self._subscript()}}}")
            return self._var(text)
        if kind == "op":
            if text in "({":
                close = ")" if text == "(" else "}"
                value = self.expr()
                self.expect(close)
                return value
            if text == "|":  # |x|
                value = self.expr()
                self.expect("|")
                return self.abs(value)
            raise Unsupported(f"operator {text!r}")
        name = text[1:]
        if name in ("frac", "dfrac", "tfrac"):
            num = self.group()
            den = self.group()
            return self.div(num, den)
        if name == "sqrt":
            index: Value = Fraction(2)
            if self.peek() == ("op", "["):
                self.take()
                index = self.expr()
                self.expect("]")
            return self.root(self.group(), index)
        if name == "pi":
            return self.const("pi")
        if name == "infty":
            return self.const("infty")
        if name in _GREEK:
            return self._var(name)
        if name in _FUNCS:
            power = None
            if self.peek() == ("op", "^"):  # \sin^2(x) = (\sin x)^2
                self.take()
                power = self.atom()
                if name.startswith("arc") or power == -1:
                    raise Unsupported("inverse-function notation")
            tok = self.peek()
            if tok is None or tok[1] not in "({":
                raise Unsupported(f"\\{name} without a delimited argument")
            arg = self.atom()
            value = self.func(name, arg)
            return value if power is None else self.pow(value, power)
        if name in ("sum", "prod"):
            return self._big_operator(name)
        raise Unsupported(f"command \\{name}")

    def _subscript(self) -> str:
        """The raw text of a subscript after ``_`` (a braced group or one token)."""
        self.expect("_")
        tok = self.take()
        if tok != ("op", "{"):
            return tok[1]
        depth, out = 1, []
        while True:
            tok = self.take()
            depth += tok == ("op", "{")
            depth -= tok == ("op", "}")
            if depth == 0:
                return "".join(out)
            out.append(tok[1])

    def _big_operator(self, name: str) -> Value:
        """``\\sum_{k=a}^{b} body`` (the body is one product term)."""
        self.expect("_")
        self.expect("{")
        kind, index = self.take()
        if kind != "var":
            raise Unsupported("index of a sum")
        self.expect("=")
        lo = self.expr()
        self.expect("}")
        self.expect("^")
        hi = self.atom()
        body = self.term()
        return self.big(name, index, lo, hi, body)

    def big(self, name: str, index: str, lo: Value, hi: Value, body: Value) -> Value:
        raise Unsupported(f"\\{name}")  # numerically, only the symbolic worker evaluates these

    def _var(self, name: str) -> Value:
        if name == "e":
            return self.const("e")
        if name == "i":
            return self.const("i")  # in a final answer, i is the imaginary unit (3 + 4i)
        self.free.add(name)
        if self.env is None:
            raise _NeedsEnv(name)
        if name not in self.env:
            raise _NeedsEnv(name)
        return self.env[name]


class _NeedsEnv(Exception):
    pass


def _number(text: str) -> Value:
    # A decimal literal is an exact rational (10.5 = 21/2, 1000001.0 = 1000001):
    # whether a tolerance applies is the gold's business (``compare``), not the parser's.
    if len(text) > 4000:
        raise Unsupported("number too long")
    return Fraction(text)


def _div(a: Value, b: Value) -> Value:
    if b == 0:
        raise Unsupported("division by zero")
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a / b
    return complex(a) / complex(b)


def _pow(base: Value, exponent: Value) -> Value:
    if isinstance(base, Fraction) and isinstance(exponent, Fraction) and exponent.denominator == 1:
        e = exponent.numerator
        if abs(e) <= _MAX_EXACT_EXP and abs(base.numerator).bit_length() * abs(e) <= _MAX_EXACT_BITS \
                and abs(base.denominator).bit_length() * abs(e) <= _MAX_EXACT_BITS:
            if base == 0 and e < 0:
                raise Unsupported("division by zero")
            return base ** e
    try:
        b, x = complex(base), complex(exponent)
        if b == 0:
            return complex(0) if x.real > 0 else _raise("0 to a non-positive power")
        if b.imag == 0 and x.imag == 0 and b.real > 0:
            return complex(math.pow(b.real, x.real))
        return b ** x
    except (OverflowError, ZeroDivisionError) as exc:
        raise Unsupported(f"power: {exc}") from None


def _root(value: Value, index: Value) -> Value:
    if isinstance(value, Fraction) and isinstance(index, Fraction) and index.denominator == 1 and index > 0:
        n = index.numerator
        # exact roots of perfect powers stay exact (sqrt{4} = 2)
        num, den = abs(value.numerator), value.denominator
        rn, rd = _iroot(num, n), _iroot(den, n)
        if rn is not None and rd is not None and (value >= 0 or n % 2 == 1):
            root = Fraction(rn, rd)
            return -root if value < 0 else root
    v, k = complex(value), complex(index)
    if v.imag == 0 and k.imag == 0 and v.real < 0 and float(k.real).is_integer() and int(k.real) % 2 == 1:
        return complex(-((-v.real) ** (1 / k.real)))  # real odd root: \sqrt[3]{-8} = -2
    if k == 0:
        raise Unsupported("zeroth root")
    return v ** (1 / k)


def _iroot(x: int, n: int) -> int | None:
    if x.bit_length() > 4000:
        return None
    r = round(x ** (1.0 / n)) if x < 2**1000 else None
    if r is None:
        return None
    for c in (r - 1, r, r + 1):
        if c >= 0 and c**n == x:
            return c
    return None


def _raise(msg: str) -> complex:
    raise Unsupported(msg)


def evaluate(text: str, env: dict[str, complex] | None = None) -> tuple[Value, frozenset[str]]:
    """Evaluate ``text`` (normalized LaTeX) -> (value, free variable names).

    Without ``env``, raises ``NeedsVariables`` naming the free variables so
    the caller can pick evaluation points. Raises ``Unsupported`` outside the
    subset.
    """
    tokens = tokenize(text)
    if not tokens:
        raise Unsupported("empty")
    parser = _Parser(tokens, env)
    try:
        value = parser.parse()
    except _NeedsEnv:
        # collect every free variable, then report them
        names = {t[1] for t in tokens if t[0] == "var" and t[1] not in "ei"}
        names |= {t[1][1:] for t in tokens if t[0] == "cmd" and t[1][1:] in _GREEK}
        raise NeedsVariables(frozenset(names)) from None
    except (RecursionError, IndexError) as exc:
        raise Unsupported(str(exc)) from None
    return value, frozenset(parser.free)


class NeedsVariables(Exception):
    def __init__(self, names: frozenset[str]):
        super().__init__(", ".join(sorted(names)))
        self.names = names


# Deterministic "random" numerators for exact evaluation points.
_RNG_POINTS = (918273, -645091, 372811, 153347, -811129, 560761, 299993, -477209, 733181, 120001, 864197)

# Fixed, irrational-looking points. They can only prove two expressions
# *different* (a value differs at a point); sameness is proved by sympy.
_POINTS = (0.5772156649, 1.3247179572, 2.2360679775)

#: Relative tolerance of an answer against a non-integer decimal gold (the only
#: tolerance there is); documented in ``datagen.verify.math``.
DECIMAL_REL_TOL = 1e-6


def _finite(x: complex) -> bool:
    return not (cmath.isinf(x) or cmath.isnan(x))


def compare(gold: Value, ans: Value, gold_decimals: int | None = None, ans_is_decimal: bool = False) -> bool | None:
    """Is ``ans`` the gold value? True/False when decided, None: ask sympy.

    - Two rationals: exact (``1000001.0`` is not ``1000000``).
    - ``gold_decimals``: the gold is a non-integer decimal literal (with that
      many decimals); then the answer may differ by ``DECIMAL_REL_TOL``
      relative (absolute below 1), and by at most half a unit of the gold's
      last decimal (``1/3`` for ``0.333333``; not ``70/9`` for ``7.78``, not
      ``1000001`` for ``1000000.5``).
    - Anything non-finite (inf, nan) never equals a finite gold.
    - Otherwise (roots, pi, …) floats can only show a difference; equality is
      left to exact symbolic comparison.
    """
    if isinstance(gold, Fraction) and isinstance(ans, Fraction) and gold_decimals is None:
        return gold == ans
    g, a = complex(gold), complex(ans)
    if not _finite(g) or not _finite(a):
        if cmath.isnan(g) or cmath.isnan(a):
            return False
        return g == a  # \infty against \infty (same sign) only
    if gold_decimals is not None:
        if isinstance(gold, Fraction) and isinstance(ans, Fraction) and gold == ans:
            return True
        # 1e-6 relative (absolute below 1), and never past half a unit of the
        # gold's last decimal: 1000001 is not 1000000.5, 0.46 is not 0.5
        tol = min(DECIMAL_REL_TOL * max(abs(g), 1.0), 0.5 * 10.0 ** -gold_decimals)
        return abs(g - a) <= tol
    scale = max(abs(g), abs(a), 1e-300)
    if abs(g - a) > 1e-9 * scale and abs(g - a) > 1e-12:
        return False
    if isinstance(gold, Fraction) and isinstance(ans, Fraction):
        return gold == ans
    return None


def proportional(a: str, b: str) -> bool | None:
    """Are ``a`` and ``b`` (two equations' lhs - rhs) a non-zero constant
    multiple of each other? Decided exactly at rational points when both are
    rational functions, else None."""
    try:
        names = sorted(_free_names(a) | _free_names(b))
        if not names or len(names) > 6:
            return None
        ratio = None
        for k in range(5):
            env = {n: Fraction(_RNG_POINTS[(5 * k + j) % len(_RNG_POINTS)], 991 + 17 * j + 13 * k) for j, n in enumerate(names)}
            va, _ = evaluate(a, env)  # type: ignore[arg-type]
            vb, _ = evaluate(b, env)  # type: ignore[arg-type]
            if not (isinstance(va, Fraction) and isinstance(vb, Fraction)):
                return None
            if vb == 0 or va == 0:
                if va != vb:
                    return False
                continue
            if ratio is None:
                ratio = va / vb
            elif va / vb != ratio:
                return False
        return ratio is not None
    except (Unsupported, NeedsVariables, ZeroDivisionError, OverflowError, ValueError, RecursionError):
        return None


def fast_equal(a: str, b: str, gold_decimals: int | None = None, ans_is_decimal: bool = False) -> bool | None:
    """Gold text ``a`` vs answer text ``b``: True/False when the subset
    decides, None to ask sympy. Expressions with variables are only ever
    proved *different* here (a value differs at a fixed point)."""
    try:
        try:
            va, _ = evaluate(a)
            vb, _ = evaluate(b)
            return compare(va, vb, gold_decimals, ans_is_decimal)
        except NeedsVariables:
            pass
        names = _free_names(a) | _free_names(b)
        if len(names) > 6:
            return None
        # Exact first: at random rational points, rational functions evaluate
        # exactly (Fractions). Two different ones agree at a random point with
        # probability <= degree / 10^6 (Schwartz-Zippel); five points must agree.
        exact_points = 0
        for k in range(5):
            env = {n: Fraction(_RNG_POINTS[(7 * k + j) % len(_RNG_POINTS)], 997 + 31 * j + 7 * k)
                   for j, n in enumerate(sorted(names))}
            try:
                va, _ = evaluate(a, env)  # type: ignore[arg-type]
                vb, _ = evaluate(b, env)  # type: ignore[arg-type]
            except Unsupported:
                continue  # a pole at this point
            if not (isinstance(va, Fraction) and isinstance(vb, Fraction)):
                break  # irrational values: floats below can only disprove
            if va != vb:
                return False
            exact_points += 1
        else:
            if exact_points >= 3:
                return True
        for k, base in enumerate(_POINTS):
            env = {n: complex(base + 0.1173 * j * (k + 1)) for j, n in enumerate(sorted(names))}
            va, _ = evaluate(a, env)
            vb, _ = evaluate(b, env)
            x, y = complex(va), complex(vb)
            if _finite(x) and _finite(y) and abs(x - y) > 1e-6 * max(abs(x), abs(y), 1.0):
                return False
        return None
    except (Unsupported, NeedsVariables, ZeroDivisionError, OverflowError, ValueError, RecursionError):
        return None


def _free_names(text: str) -> frozenset[str]:
    tokens = tokenize(text)
    names = {t[1] for t in tokens if t[0] == "var" and t[1] not in "ei"}
    names |= {t[1][1:] for t in tokens if t[0] == "cmd" and t[1][1:] in _GREEK}
    return frozenset(names)


def is_number(text: str) -> Value | None:
    """The value of a variable-free expression in the subset, else None."""
    try:
        value, _ = evaluate(text)
        return value
    except (Unsupported, NeedsVariables, ZeroDivisionError, OverflowError, ValueError, RecursionError):
        return None


def to_sympy(text: str):
    """``text`` in the subset as a sympy expression (exact: decimals become
    rationals, ``\\log`` is base 10 as in latex2sympy2_extended); raises
    ``Unsupported`` outside it. For the symbolic worker: a hand parser is
    ~100x faster than latex2sympy's ANTLR grammar."""
    import sympy

    funcs = {"sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "ln": sympy.log, "exp": sympy.exp,
             "log": lambda x: sympy.log(x, 10), "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan,
             "cot": sympy.cot, "sec": sympy.sec, "csc": sympy.csc, "sinh": sympy.sinh, "cosh": sympy.cosh,
             "tanh": sympy.tanh}

    class _SympyParser(_Parser):
        def num(self, text: str):
            if len(text) > 4000:
                raise Unsupported("number too long")
            return sympy.Rational(text)

        def div(self, a, b):
            return a / b if b != 0 else sympy.zoo

        def pow(self, a, b):
            return sympy.Pow(a, b)

        def root(self, v, k):
            if isinstance(k, Fraction):
                k = sympy.Rational(k.numerator, k.denominator)
            if k == 0:
                raise Unsupported("zeroth root")
            if k.is_Integer and int(k) % 2 == 1 and v.is_number and v.is_negative:
                return -sympy.root(-v, k)  # real odd root: \\sqrt[3]{-8} = -2
            return sympy.root(v, k)

        def const(self, name: str):
            return {"pi": sympy.pi, "infty": sympy.oo, "e": sympy.E, "i": sympy.I}[name]

        def func(self, name: str, arg):
            return funcs[name](arg)

        def abs(self, v):
            return sympy.Abs(v)

        def big(self, name, index, lo, hi, body):
            k = sympy.Symbol(index)
            return (sympy.Sum if name == "sum" else sympy.Product)(body, (k, lo, hi))

        def _var(self, name: str):
            if name == "e":
                return sympy.E
            if name == "i":
                return sympy.I
            self.free.add(name)
            return sympy.Symbol(name)

    tokens = tokenize(text)
    if not tokens:
        raise Unsupported("empty")
    try:
        return _SympyParser(tokens, None).parse()
    except (RecursionError, IndexError) as exc:
        raise Unsupported(str(exc)) from None


# =========================================================================== magnitude guard
#
# Pathological constants (``9^{9^9}``, ``e^{e^{e^{e^{10}}}}``, ``(9^{9^9})!``,
# ``\tan(10^{10^{10}})``, ``10!!!``, ``\binom{10^9}{5\cdot10^8}``) would make
# every exact or symbolic evaluator run out of time or overflow, and a
# verdict of "could not judge" must not be something a policy can reach on
# purpose. So before anything evaluates them, their size is bounded in log
# space: each constant sub-expression is computed with mpmath floats (whose
# exponent is unbounded) only after its log10-magnitude is known to stay
# within ``ASTRONOMICAL_DIGITS``. A constant beyond that (more than that many
# decimal digits in its exponent, large or tiny) is astronomical: it cannot
# equal a gold that has none, and the verifier says ``incorrect`` at once.
# ``n!!`` is read as the other parsers read it: (n!)!.

#: A constant whose |log10| exceeds this is astronomical (no genuine answer has
#: 100,000-digit numbers; ``2^{10000}`` and ``1000!`` are far below).
ASTRONOMICAL_DIGITS = 100_000

_MAG_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<cmd>\\[a-zA-Z]+|\\.)|(?P<ch>.))", re.DOTALL)
_MAG_FUNCS = {"sin", "cos", "tan", "cot", "sec", "csc", "ln", "log", "lg", "arcsin", "arccos", "arctan",
              "sinh", "cosh", "tanh", "exp", "Gamma", "operatorname"}
_MAG_SKIP = {"left", "right", "big", "Big", "bigg", "Bigg", "displaystyle", ",", ";", "!", " ", ":", "quad"}


class _Astro(Exception):
    pass


class _Magnitude:
    """Recursive descent over a LaTeX constant expression; ``value()`` is an
    mpmath number, or None where the value is unknown (a variable, an
    unsupported command); ``astronomical`` is set as soon as any constant
    sub-expression is provably beyond ``ASTRONOMICAL_DIGITS``."""

    def __init__(self, text: str):
        self.mp = _mp_context()
        self.toks: list[tuple[str, str]] = []
        for m in _MAG_TOKEN.finditer(text):
            kind = m.lastgroup
            tok = m.group(kind) if kind else ""
            if kind == "cmd" and tok[1:] in _MAG_SKIP:
                continue
            if kind == "cmd" and tok[1:] in ("cdot", "times", "ast"):
                kind, tok = "ch", "*"
            elif kind == "cmd" and tok[1:] in ("dfrac", "tfrac", "cfrac"):
                tok = "\\frac"
            elif kind == "cmd" and tok[1:] in ("dbinom", "tbinom"):
                tok = "\\binom"
            if kind == "ch" and tok.isspace():
                continue
            self.toks.append((kind or "ch", tok))
        self.i = 0
        self.depth = 0
        self.astronomical = False

    # -- magnitude checks
    def _log10(self, v) -> float:
        return float(self.mp.log10(abs(v))) if v != 0 else float("-inf")

    def _check(self, v):
        if v is not None and v != 0 and abs(self._log10(v)) > ASTRONOMICAL_DIGITS:
            self.astronomical = True
            raise _Astro
        return v

    def _flag(self, log10_mag: float) -> None:
        if abs(log10_mag) > ASTRONOMICAL_DIGITS:
            self.astronomical = True
            raise _Astro

    def power(self, a, b):
        if a is None and b is not None and abs(b) > ASTRONOMICAL_DIGITS:
            # an expression in a variable raised to a huge power ((1+x)^{10^6}):
            # no evaluator expands or samples it within any time budget
            self.astronomical = True
            raise _Astro
        if a is None or b is None:
            return None
        if a == 0:
            return self.mp.mpf(0) if b > 0 else None
        self._flag(float(b) * self._log10(a))
        if a < 0 and b != int(b):
            return None
        return self._check(self.mp.power(a, b))

    def _loggamma10(self, x) -> float:
        return float(self.mp.loggamma(x) / self.mp.log(10))

    def factorial(self, n):
        if n is None or n < 0 or n != int(n):
            return None
        self._flag(self._loggamma10(n + 1))
        return self.mp.factorial(n)

    def gamma(self, x):
        if x is None or x <= 0:
            return None
        self._flag(self._loggamma10(x))
        return self.mp.gamma(x)

    def binom(self, n, k):
        if n is None or k is None or n < 0 or k < 0 or k > n:
            return None
        self._flag(self._loggamma10(n + 1) - self._loggamma10(k + 1) - self._loggamma10(n - k + 1))
        return self.mp.binomial(n, k)

    def func(self, name: str, x):
        if x is None:
            return None
        if name == "exp":
            return self.power(self.mp.e, x)
        if name == "Gamma":
            return self.gamma(x)
        if abs(x) > 10 ** 6 and name in ("sin", "cos", "tan", "cot", "sec", "csc"):
            return None  # bounded or not, its value needs long argument reduction: unknown here
        try:
            f = {"lg": self.mp.log10, "log": self.mp.log10, "ln": self.mp.ln, "arcsin": self.mp.asin,
                 "arccos": self.mp.acos, "arctan": self.mp.atan}.get(name) or getattr(self.mp, name)
            v = f(x)
        except (ValueError, ZeroDivisionError, AttributeError):
            return None
        return self._check(v) if self.mp.isfinite(v) and self.mp.im(v) == 0 else None

    # -- grammar (unknown pieces give None, never an exception)
    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else ("end", "")

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def run(self) -> bool:
        try:
            while self.i < len(self.toks):
                start = self.i
                self.expr()
                if self.i == start:
                    self.i += 1  # an unusable token: skip it, judge the rest
        except _Astro:
            return True
        except RecursionError:
            return self.astronomical
        return self.astronomical

    def expr(self):
        value = self.term()
        while self.peek() in (("ch", "+"), ("ch", "-")):
            op = self.take()[1]
            rhs = self.term()
            value = None if value is None or rhs is None else self._check(value + rhs if op == "+" else value - rhs)
        return value

    def term(self):
        value = self.unary()
        while True:
            tok = self.peek()
            if tok in (("ch", "*"), ("ch", "/")):
                self.take()
                rhs = self.unary()
                if value is None or rhs is None or (tok[1] == "/" and rhs == 0):
                    value = None
                else:
                    value = self._check(value * rhs if tok[1] == "*" else value / rhs)
            elif tok[0] in ("num", "cmd") or tok in (("ch", "("), ("ch", "{")) or (tok[0] == "ch" and tok[1].isalpha()):
                rhs = self.unary()
                value = None if value is None or rhs is None else self._check(value * rhs)
            else:
                return value

    def unary(self):
        if self.peek() in (("ch", "-"), ("ch", "+")):
            sign = self.take()[1]
            v = self.unary()
            return None if v is None else (-v if sign == "-" else v)
        return self.postfix()

    def postfix(self):
        value = self.atom()
        while True:
            tok = self.peek()
            if tok == ("ch", "!"):
                self.take()
                value = self.factorial(value)
            elif tok == ("ch", "^"):
                self.take()
                if self.peek() == ("ch", "-"):
                    self.take()
                    e = self.postfix()  # right-associative: 9^9^9 = 9^(9^9)
                    e = None if e is None else -e
                else:
                    e = self.postfix()
                value = self.power(value, e)
            elif tok == ("ch", "_"):
                self.take()
                self.atom()
                value = None
            else:
                return value

    def group(self):
        if self.peek() == ("ch", "{"):
            return self.atom()
        tok = self.take()
        if tok[0] == "num":  # \frac12: one digit is the argument
            if len(tok[1]) > 1:
                self.i -= 1
                self.toks[self.i] = ("num", tok[1][1:])
            return self.mp.mpf(tok[1][0])
        return None

    def atom(self):
        self.depth += 1
        if self.depth > 150:
            raise RecursionError
        try:
            return self._atom()
        finally:
            self.depth -= 1

    def _atom(self):
        kind, text = self.take()
        if kind == "num":
            return self.mp.mpf(text)
        if kind == "ch":
            if text in "({[":
                close = {"(": ")", "{": "}", "[": "]"}[text]
                v = self.expr()
                if self.peek() == ("ch", close):
                    self.take()
                    return v
                return None
            if text == "e":
                return self.mp.e
            return None  # a variable or a symbol: unknown value
        name = text[1:]
        if name == "pi":
            return self.mp.pi
        if name == "frac":
            a, b = self.group(), self.group()
            return None if a is None or b is None or b == 0 else self._check(a / b)
        if name == "binom":
            return self.binom(self.group(), self.group())
        if name == "sqrt":
            if self.peek() == ("ch", "["):
                self.take()
                k = self.expr()
                if self.peek() == ("ch", "]"):
                    self.take()
                v = self.group()
                return None if k is None or k == 0 else self.power(v, 1 / k)
            return self.power(self.group(), self.mp.mpf(0.5))
        if name in _MAG_FUNCS:
            if name == "operatorname":
                self.atom()
                name = "?"
            power = None
            if self.peek() == ("ch", "^"):
                self.take()
                power = self.postfix()
            arg = self.postfix() if self.peek()[0] != "end" else None
            v = self.func(name, arg) if name != "?" else None
            return v if power is None else self.power(v, power)
        if name in ("mathrm", "text", "mathbf", "boxed"):
            return self.atom()
        return None


_MP = None
#: Only these can make a constant's size explode; text without any is never astronomical.
_GROWTH = re.compile(r"\^|!|\\(?:[dt]?binom|Gamma|exp|sinh|cosh|operatorname)(?![a-zA-Z])")


_SMALL_POWER = re.compile(r"\^\s*(?:\{\s*[-+]?\s*\d{1,4}\s*\}|[-+]?\d)(?!\s*[\^!])")


def _mp_context():
    """One shared mpmath context (80 bits; its precision is never changed)."""
    global _MP
    if _MP is None:
        import mpmath

        ctx = mpmath.MPContext()
        ctx.prec = 80
        _MP = ctx
    return _MP


def astronomical(text: str) -> bool:
    """Whether ``text`` contains a constant provably beyond
    ``ASTRONOMICAL_DIGITS`` decimal digits of magnitude (huge or tiny), or
    one whose size cannot be bounded without evaluating it. Linear in the
    text; never raises (an unreadable expression is simply not flagged)."""
    # A power with a short literal exponent (x^2, 10^{-3}, 2^{1000}) stays far
    # below any hang however many there are side by side, unless nested (then
    # the exponent is not a literal): skip the estimator for the easy majority.
    if not _GROWTH.search(_SMALL_POWER.sub(" ", text)):
        return False
    try:
        return _Magnitude(text).run()
    except Exception:  # noqa: BLE001 -- a guard, never a verdict of its own on failure
        return False
