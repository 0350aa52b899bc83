"""Rewards for GRPO, built on the verifiers (the grader *is* the reward).

Each reward is a plain batch function ``f(completions, **columns) ->
list[float | None]``: ``completions`` are the generated texts (or TRL's
conversational form, a list of messages per completion: the last message's
content is used), ``columns`` are the dataset columns of the same rows as
lists (``domain``, ``answer``, ``tests``, ``language`` …); unknown columns
are ignored. ``None`` means "cannot judge this one" (no gold answer, a
domain no rule verifier covers, the verifier itself failed or timed out) —
never a fake 0.0, which would punish good samples for our own failures (TRL
drops ``None`` from the reward mean).

Names resolve through the one flat dict ``REWARDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from datagen.records import split_completion

Reward = Callable[..., list[float | None]]


def completion_text(completion: Any) -> str | None:
    """Plain text of a completion: a string, or the last message of a conversation."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content")
        return content if isinstance(content, str) else None
    return None


def _column(columns: dict[str, Any], name: str, n: int) -> list[Any]:
    values = columns.get(name)
    if values is None:
        return [None] * n
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} values for {n} completions")
    return list(values)


def _score(v: dict[str, Any], *, verifier_timeout_is_unknown: bool) -> float | None:
    if v["outcome"] == "error":
        return None
    if v["outcome"] == "timeout" and verifier_timeout_is_unknown:
        return None  # the math verifier ran out of time: it could not judge
    return v["score"]


def accuracy_reward(completions: Sequence[Any], *, think_prefilled: bool = False, math_timeout_s: float = 5.0,
                    **columns: Any) -> list[float | None]:
    """1.0 / 0.0 by the rule verifier of the row's domain: ``math`` (``answer``
    column) or ``code`` (``tests`` column); ``None`` elsewhere.

    Without a ``domain`` column, a row with ``tests`` is code and one with an
    ``answer`` is math. A code timeout is the candidate's (0.0); a math
    timeout is the verifier's (None).
    """
    texts = [completion_text(c) for c in completions]
    if think_prefilled:
        # The verifiers read the text after </think>; a pre-filled template
        # makes a completion without any tag unfinished reasoning.
        texts = [t if t is None or "</think>" in t else "<think>" + t for t in texts]
    n = len(texts)
    domains, answers, tests = (_column(columns, k, n) for k in ("domain", "answer", "tests"))
    rewards: list[float | None] = [None] * n
    math_idx, code_idx = [], []
    for i in range(n):
        domain = domains[i] or ("code" if tests[i] else "math" if answers[i] else None)
        if texts[i] is None:
            continue
        if domain == "math" and answers[i]:
            math_idx.append(i)
        elif domain == "code" and tests[i]:
            code_idx.append(i)
    if math_idx:
        from datagen.verify.math import verify_math_batch

        verdicts = verify_math_batch([texts[i] for i in math_idx], [str(answers[i]) for i in math_idx],
                                     timeout_s=math_timeout_s)
        for i, v in zip(math_idx, verdicts):
            rewards[i] = _score(v, verifier_timeout_is_unknown=True)
    if code_idx:
        from datagen.verify.code import verify_code_batch

        verdicts = verify_code_batch([texts[i] for i in code_idx], [tests[i] for i in code_idx])
        for i, v in zip(code_idx, verdicts):
            rewards[i] = _score(v, verifier_timeout_is_unknown=False)
    return rewards


def format_reward(completions: Sequence[Any], *, think_prefilled: bool | None = None,
                  require_answer_tags: bool = False, **columns: Any) -> list[float | None]:
    """1.0 when the completion has the R1 (or, with ``require_answer_tags``,
    R1-Zero) shape, else 0.0; see ``datagen.verify.format``."""
    from datagen.verify.format import verify_format

    out: list[float | None] = []
    for completion in completions:
        text = completion_text(completion)
        if text is None:
            out.append(None)
            continue
        v = verify_format(text, think_prefilled=think_prefilled, require_answer_tags=require_answer_tags)
        out.append(v["score"])
    return out


def language_reward(completions: Sequence[Any], *, think_prefilled: bool = False,
                    **columns: Any) -> list[float | None]:
    """DeepSeek-R1's language-consistency reward: the share of the reasoning's
    words in the row's ``language``. ``None`` without a language column or
    without any reasoning to judge."""
    from filters.language import language_consistency  # lazy: loads the fastText model

    texts = [completion_text(c) for c in completions]
    languages = _column(columns, "language", len(texts))
    out: list[float | None] = []
    for text, language in zip(texts, languages):
        if text is None or not language:
            out.append(None)
            continue
        reasoning = split_completion(text, think_prefilled=think_prefilled).reasoning
        out.append(float(language_consistency(reasoning, language)) if reasoning else None)
    return out


REWARDS: dict[str, Reward] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "language": language_reward,
}
