"""Procedurally generated problems with gold answers, for the demo and tests.

No problem set can be downloaded here, and R1 in miniature needs problems a
rule can check: multi-step integer arithmetic ("Compute 3 + 4 * 2." -> "11")
is verifiable by the math verifier, scales in difficulty with the number of
operations, and is learnable by a tiny character-level model. The
non-reasoning side (writing, QA, self-cognition in R1's 200k) gets templated
prompts with reference answers, so ``mix`` has something to mix in.

Every generator is deterministic per seed (its own ``random.Random``), yields
distinct prompts, and returns valid record rows (``records.normalize_row``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from datagen.records import normalize_row, seeded_hash

_OPERATORS = ("+", "-", "*")


def arithmetic_problems(
    n: int,
    *,
    seed: int,
    min_ops: int = 1,
    max_ops: int = 3,
    max_operand: int = 20,
    source: str = "synthetic-arith",
) -> list[dict[str, Any]]:
    """``n`` distinct integer arithmetic problems, domain ``math``.

    Each has ``min_ops``..``max_ops`` operators from ``+ - *`` over operands
    in 0..``max_operand``, the usual precedence (``*`` before ``+``/``-``), no
    parentheses; ``answer`` is the exact integer as a string and the extra
    column ``n_ops`` the operator count. Raises ``ValueError`` for bad bounds
    or when ``n`` distinct problems cannot be found (the space is too small).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 1 <= min_ops <= max_ops:
        raise ValueError(f"need 1 <= min_ops <= max_ops, got min_ops={min_ops}, max_ops={max_ops}")
    if max_operand < 1:
        raise ValueError(f"max_operand must be >= 1, got {max_operand}")
    rng = random.Random(seed)

    def draw() -> tuple[str, dict[str, Any]]:
        ops = rng.randint(min_ops, max_ops)
        operands = [rng.randint(0, max_operand) for _ in range(ops + 1)]
        operators = [rng.choice(_OPERATORS) for _ in range(ops)]
        expression = " ".join([str(operands[0])] + [f"{op} {x}" for op, x in zip(operators, operands[1:])])
        return f"Compute {expression}.", {"answer": str(evaluate(operands, operators)), "n_ops": ops}

    return _distinct(n, draw, source=source, domain="math")


def evaluate(operands: Sequence[int], operators: Sequence[str]) -> int:
    """Value of ``operands[0] op0 operands[1] op1 …`` with ``*`` binding tighter
    than ``+``/``-`` (left to right otherwise). No ``eval``."""
    if len(operands) != len(operators) + 1:
        raise ValueError("need exactly one more operand than operators")
    terms: list[int] = [operands[0]]
    signs: list[int] = [1]
    for op, x in zip(operators, operands[1:]):
        if op == "*":
            terms[-1] *= x
        elif op in "+-":
            terms.append(x)
            signs.append(1 if op == "+" else -1)
        else:
            raise ValueError(f"unknown operator {op!r}")
    return sum(s * t for s, t in zip(signs, terms))


# --------------------------------------------------------------------------- general (non-reasoning)

_WORDS = (
    "apple",
    "river",
    "candle",
    "garden",
    "pencil",
    "window",
    "orange",
    "silver",
    "planet",
    "bridge",
    "forest",
    "rocket",
    "button",
    "marble",
    "castle",
    "pepper",
    "violin",
    "tunnel",
    "meadow",
    "anchor",
)
_CAPITALS = (
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Canada", "Ottawa"),
    ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Norway", "Oslo"),
    ("Greece", "Athens"),
)
_SELF = (
    ("Who are you?", "I am a small assistant model trained on data made by datagen."),
    ("What can you do?", "I can answer questions, solve arithmetic step by step and help with short writing tasks."),
)


def _general_templates(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(6)
    if kind == 0:
        word = rng.choice(_WORDS)
        return f"Write the word '{word}' backwards.", word[::-1]
    if kind == 1:
        word = rng.choice(_WORDS)
        return f"Write the word '{word}' in capital letters.", word.upper()
    if kind == 2:
        word = rng.choice(_WORDS)
        return f"How many letters are in the word '{word}'?", str(len(word))
    if kind == 3:
        words = rng.sample(_WORDS, rng.randint(2, 4))
        return f"Sort these words alphabetically: {', '.join(words)}.", ", ".join(sorted(words))
    if kind == 4:
        word, times = rng.choice(_WORDS), rng.randint(2, 4)
        return f"Repeat the word '{word}' {times} times, separated by spaces.", " ".join([word] * times)
    if rng.random() < 0.8:
        country, capital = rng.choice(_CAPITALS)
        return f"What is the capital of {country}?", f"The capital of {country} is {capital}."
    return rng.choice(_SELF)


def general_problems(n: int, seed: int, *, source: str = "synthetic-general") -> list[dict[str, Any]]:
    """``n`` distinct templated non-reasoning prompts (writing, factual QA,
    self-cognition), domain ``general``, each with a reference ``answer``.

    Raises ``ValueError`` when ``n`` exceeds what the templates can make
    distinct (a few thousand).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)

    def draw() -> tuple[str, dict[str, Any]]:
        prompt, answer = _general_templates(rng)
        return prompt, {"answer": answer}

    return _distinct(n, draw, source=source, domain="general")


def _distinct(
    n: int, draw: Callable[[], tuple[str, dict[str, Any]]], *, source: str, domain: str
) -> list[dict[str, Any]]:
    """Draw until ``n`` distinct prompts; give up (ValueError) after many misses in a row."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    misses = 0
    while len(rows) < n:
        prompt, fields = draw()
        if prompt in seen:
            misses += 1
            if misses > 10_000:
                raise ValueError(
                    f"could only make {len(rows)} distinct {domain} problems of the {n} asked; "
                    "widen the generator's bounds (more operations, larger operands) or ask for fewer"
                )
            continue
        misses = 0
        seen.add(prompt)
        rows.append(normalize_row({"prompt": prompt, "source": source, "domain": domain, "language": "en", **fields}))
    return rows


#: Separates the held-out split's seeded hash from other seeded choices (records.seeded_rank).
_SPLIT_SALT = 3


def split_problems(
    problems: Sequence[dict[str, Any]], held_out_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split into ``(train, held_out)`` with no ``problem_id`` on both sides.

    ``round(held_out_fraction * distinct problem ids)`` ids are held out, the
    ones with the smallest seeded hash, so the split is deterministic per seed
    and does not depend on the input order; rows sharing a problem_id stay
    together. Both lists keep the input order.
    """
    if not 0.0 <= held_out_fraction <= 1.0:
        raise ValueError(f"held_out_fraction must be within [0, 1], got {held_out_fraction}")
    ids = sorted({p["problem_id"] for p in problems}, key=lambda pid: (seeded_hash(seed, pid, salt=_SPLIT_SALT), pid))
    held = set(ids[: round(held_out_fraction * len(ids))])
    train = [p for p in problems if p["problem_id"] not in held]
    held_out = [p for p in problems if p["problem_id"] in held]
    return train, held_out


__all__ = ["arithmetic_problems", "evaluate", "general_problems", "split_problems"]
