"""The child side of the math verifier's symbolic path (``python -m datagen.verify._math_worker``).

It imports sympy once, then judges one job per JSON line from stdin and
answers one JSON line on stdout; the parent (``datagen.verify._math_pool``)
enforces the time limit by killing it. See that module for the protocol.
"""

from __future__ import annotations

import json
import re
import sys

#: The child's address-space limit: a runaway expression raises MemoryError
#: (answered as `error`) instead of swapping the machine.
_MEMORY_LIMIT = 4 * 1024**3


# =========================================================================== child side


def _symbolic_eq_factory():
    """The child's comparison ``eq(gold, answer) -> bool``; exact, never one-point.

    - Parsing: latex2sympy2_extended, falling back to math-verify's parser
      (its normalizations) for what it cannot read.
    - Undefined or non-finite values (zoo, nan, ±oo) equal only an identical gold.
    - Decimal literals become exact rationals; a tolerance applies only when
      the gold is a non-integer decimal (``_math_fast.compare``).
    - Constants: ``simplify(g - a) == 0``, else equal to 60 significant
      digits. With variables: ``simplify`` of the difference, else five
      random rational points where the difference must vanish (exact
      rational arithmetic; algebraic values checked to 60 digits).
    - Relations, sets, intervals: math-verify's structural comparison
      (``grader.sympy_expr_eq``), with its numeric and symbolic leaf tests
      replaced by the exact ones above (its own rounds floats to 6 places).
    - ``EQN:`` pairs: two equations' ``lhs - rhs`` that differ by a constant
      non-zero factor are the same equation.
    """
    import functools
    import random

    import sympy
    from latex2sympy2_extended import latex2sympy
    from latex2sympy2_extended.logic import And as OrderedAnd
    from latex2sympy2_extended.sets import FiniteSet as OrderedSet
    from math_verify import LatexExtractionConfig, grader, parse
    from sympy import Basic, MatrixBase
    from sympy.matrices.expressions import MatrixExpr

    from datagen.verify import _math_fast as fast
    from datagen.verify.math import _one_group, _split_rel, _split_top, decimal_places, is_decimal_literal

    imaginary = sympy.Symbol("i")
    bad = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)

    @functools.lru_cache(maxsize=256)
    def to_sympy(text: str, relation: bool = False):
        """Our hand parser (the common subset, ~100x faster than ANTLR), then
        latex2sympy2_extended, then math-verify's parser (its normalizations)."""
        expr = None
        try:
            got = set_or_relation(text) if relation else fast.to_sympy(text)
            if got is not None:
                return got
        except (fast.Unsupported, TypeError, ValueError, ZeroDivisionError, OverflowError):
            pass
        try:
            expr = latex2sympy(text)
        except Exception:  # noqa: BLE001 -- latex2sympy raises many types on bad input
            expr = None
        if not isinstance(expr, (Basic, MatrixBase)):
            try:
                got = parse(f"${text}$", [LatexExtractionConfig()], parsing_timeout=None)
            except Exception:  # noqa: BLE001
                got = []
            expr = next((x for x in got if isinstance(x, (Basic, MatrixBase))), None)
        if isinstance(expr, Basic) and expr.has(imaginary):
            expr = expr.subs(imaginary, sympy.I)  # i is the imaginary unit in a final answer
        return expr

    def set_or_relation(text: str):
        """Intervals, unions, braced sets and relation chains built from our
        hand parser (latex2sympy's grammar costs ~50 ms a text); None when the
        text has a form it does not cover (function application, ``\\in``)."""
        t = text.strip()
        if re.search(r"[a-zA-Z]\(|\\in(?![a-zA-Z])|\\(?:cap|setminus|mathbb)", t):
            return None
        union = _split_top(t, ("\\cup",))
        if len(union) > 1:
            parts = [set_or_relation(u) for u in union]
            return None if any(not isinstance(p, sympy.Set) for p in parts) else sympy.Union(*parts)
        if len(t) > 1 and t[0] in "([" and t[-1] in ")]" and _one_group(t):
            ends = _split_top(t[1:-1], (",",))
            if len(ends) == 2:
                lo, hi = fast.to_sympy(ends[0]), fast.to_sympy(ends[1])
                return sympy.Interval(lo, hi, left_open=t[0] == "(", right_open=t[-1] == ")")
            return None
        if t.startswith("\\{") and t.endswith("\\}"):
            return OrderedSet(*(fast.to_sympy(x) for x in _split_top(t[2:-2], (",",)) if x))
        parts = _split_rel(t)
        if len(parts) < 3:
            return fast.to_sympy(t)
        sides = [fast.to_sympy(x) for x in parts[::2]]
        make = {"<": sympy.Lt, "<=": sympy.Le, ">": sympy.Gt, ">=": sympy.Ge, "\\neq": sympy.Ne}
        rels = [make[op](a, b, evaluate=False) for a, op, b in zip(sides, parts[1::2], sides[1:])]
        if len(rels) == 1:
            return rels[0]
        return OrderedAnd(*rels)  # keeps the written order, which math-verify reads

    def undefined(e) -> bool:
        if not isinstance(e, sympy.Expr):
            return False  # sets and intervals may end at oo; their elements are judged as leaves
        if e.has(*bad):
            return True
        try:
            done = e.doit()
            if isinstance(done, Basic) and done.has(*bad):
                return True
            if isinstance(done, sympy.Expr) and not done.free_symbols:
                v = done.evalf(30)
                return bool(v.has(*bad)) or v.is_finite is False
        except Exception:  # noqa: BLE001 -- cannot evaluate: not provably undefined
            return False
        return False

    def exact(e):
        floats = e.atoms(sympy.Float) if isinstance(e, Basic) else set()
        return e.xreplace({f: sympy.Rational(str(f)) for f in floats}) if floats else e

    def tiny(v, scale) -> bool:
        v = sympy.N(v, 60)
        if not v.is_number or v.has(*bad):
            return False
        return bool(abs(v) <= sympy.Float(10, 60) ** -45 * max(1, abs(sympy.N(scale, 60))))

    rng_seed = 20240601

    def exprs_equal(g, a, gold_decimals=None, ans_decimal=False) -> bool:
        g = g.as_explicit() if isinstance(g, MatrixExpr) and not isinstance(g, MatrixBase) else g
        a = a.as_explicit() if isinstance(a, MatrixExpr) and not isinstance(a, MatrixBase) else a
        if undefined(g) or undefined(a):
            return undefined(g) and undefined(a) and sympy.srepr(g) == sympy.srepr(a)
        if isinstance(g, MatrixBase) or isinstance(a, MatrixBase):
            if not (isinstance(g, MatrixBase) and isinstance(a, MatrixBase)) or g.shape != a.shape:
                return False
            return all(exprs_equal(x, y) for x, y in zip(g, a))
        if not (isinstance(g, sympy.Expr) and isinstance(a, sympy.Expr)):
            return bool(grader.sympy_expr_eq(g, a, 6, 15))
        if g == a:
            return True
        if gold_decimals is not None and not g.free_symbols and not a.free_symbols:
            gv, av = complex(sympy.N(g, 30)), complex(sympy.N(exact(a), 30))
            return bool(fast.compare(gv, av, gold_decimals, ans_decimal))
        g, a = exact(g), exact(a)
        d = g - a
        if d == 0:
            return True
        if d.has(sympy.Sum, sympy.Product, sympy.Integral, sympy.Limit, sympy.Derivative):
            # unevaluated operators: points and simplify can take minutes; equal
            # only when they expand to the same expression
            return bool(sympy.expand(d) == 0)
        free = sorted(d.free_symbols, key=str)
        if not free:
            # a constant: exact when sympy evaluates it to a rational, else it
            # must vanish to 60 significant digits (simplify of nested
            # radicals can take minutes; 355/113 - pi is 2.7e-7)
            if d.is_Rational:
                return False
            return tiny(d, g)
        rng = random.Random(rng_seed)
        checked = 0
        for _ in range(12):
            point = {s: sympy.Rational(rng.randint(-97, 97) or 1, rng.randint(1, 29)) for s in free}
            v = d.xreplace(point)
            if v.has(*bad) or (isinstance(v, sympy.Expr) and v.is_finite is False):
                continue  # a pole of one side: another point
            if v == 0:
                checked += 1
            elif v.is_Rational:
                return False
            elif tiny(v, g.xreplace(point)):
                checked += 1
            else:
                return False
            if checked >= 5:
                return True
        return bool(sympy.simplify(d) == 0)  # every point was a pole: ask simplify

    def leaf(a, b, *_args) -> bool:
        try:
            return exprs_equal(a, b)
        except Exception:  # noqa: BLE001
            return False

    # math-verify's structure (sets, intervals, relations), our exact leaves
    grader.sympy_numeric_eq = leaf
    grader.sympy_symbolic_eq = leaf

    def eq(x: str, y: str) -> bool | None:
        if x.startswith("REL:") and y.startswith("REL:"):
            g, a = to_sympy(x[4:], relation=True), to_sympy(y[4:], relation=True)
            if g is None or a is None:
                return x[4:].replace(" ", "") == y[4:].replace(" ", "")
            return bool(grader.sympy_expr_eq(g, a, 6, 15))
        if x.startswith("EQN:") and y.startswith("EQN:"):
            quick = fast.proportional(x[4:], y[4:])
            if quick is not None:
                return quick
            g, a = to_sympy(x[4:]), to_sympy(y[4:])
            if not isinstance(g, sympy.Expr) or not isinstance(a, sympy.Expr) or a == 0 or g == 0:
                return False
            # a constant ratio at random rational points (no simplify: sums and
            # special functions can take minutes there)
            free = sorted(g.free_symbols | a.free_symbols, key=str)
            rng = random.Random(rng_seed)
            ratios = []
            for _ in range(4):
                point = {s: sympy.Rational(rng.randint(-97, 97) or 1, rng.randint(1, 29)) for s in free}
                vg, va = sympy.N(exact(g).xreplace(point).doit(), 50), sympy.N(exact(a).xreplace(point).doit(), 50)
                if not (vg.is_number and va.is_number) or va == 0:
                    return False
                ratios.append(vg / va)
            return all(tiny(r - ratios[0], ratios[0]) for r in ratios) and not tiny(ratios[0], 1)
        dec, ans_dec = decimal_places(x), is_decimal_literal(y)
        quick = fast.fast_equal(x, y, dec, ans_dec)
        if quick is not None:
            return quick
        g, a = to_sympy(x), to_sympy(y)
        if g is None or a is None:
            return x.replace(" ", "").lower() == y.replace(" ", "").lower()
        return exprs_equal(g, a, dec, ans_dec)

    # parses are memoised within one job only (a job compares each text with
    # several others); clearing per job keeps benchmark passes honest
    eq.new_job = to_sympy.cache_clear  # type: ignore[attr-defined]
    return eq


def _serve() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT, _MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):
        pass
    sys.setrecursionlimit(10000)
    from datagen.verify.math import judge_texts

    eq = _symbolic_eq_factory()
    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        try:
            job = json.loads(line)
            eq.new_job()  # type: ignore[attr-defined]
            result = judge_texts(job["gold"], job["answers"], eq)
            reply = {"ok": True, "result": bool(result)}
        except BaseException as exc:  # noqa: BLE001 -- MemoryError, RecursionError: report, keep serving
            reply = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    _serve()
