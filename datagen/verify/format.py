"""Format verifier: ``<think>…</think>`` then a non-empty answer (R1), optionally
the R1-Zero form ``<think>…</think><answer>…</answer>``. Tags are configurable.

Pre-filled ``<think>``: many chat templates (DeepSeek-R1's, Qwen3's) end the
prompt with ``<think>\\n``, so the model's completion starts inside the think
block and never contains the opening tag. Requiring it there zeroes every
format reward, so ``think_prefilled`` is explicit:

- ``None`` (default): accept both — the opening tag present, or absent with
  the closing tag present (the same reading as ``records.split_completion``);
- ``True``: the template wrote the opening tag; the completion must not repeat it;
- ``False``: the completion must open the think block itself.

Every failure is ``incorrect`` (format is always judgeable) with a stable
reason slug first in the detail, e.g. ``"unclosed_think: …"``.
"""

from __future__ import annotations

from typing import Any

from datagen.records import verdict

#: Reason slugs (stable: they are metric keys).
REASONS = (
    "empty_completion",
    "missing_think",
    "unexpected_think_open",
    "text_before_think",
    "unclosed_think",
    "multiple_think_blocks",
    "empty_answer",
    "missing_answer_tags",
    "malformed_answer_tags",
    "text_outside_answer",
)


def verify_format(
    completion: str | None,
    *,
    think_tags: tuple[str, str] = ("<think>", "</think>"),
    answer_tags: tuple[str, str] = ("<answer>", "</answer>"),
    require_answer_tags: bool = False,
    think_prefilled: bool | None = None,
) -> dict[str, Any]:
    """Verdict on the completion's shape. ``correct`` detail says which form it has."""
    reason = format_problem(
        completion,
        think_tags=think_tags,
        answer_tags=answer_tags,
        require_answer_tags=require_answer_tags,
        think_prefilled=think_prefilled,
    )
    if reason is None:
        return verdict("correct", detail="ok")
    return verdict("incorrect", detail=reason)


def format_problem(
    completion: str | None,
    *,
    think_tags: tuple[str, str] = ("<think>", "</think>"),
    answer_tags: tuple[str, str] = ("<answer>", "</answer>"),
    require_answer_tags: bool = False,
    think_prefilled: bool | None = None,
) -> str | None:
    """None when well-formed, else ``"<slug>: <explanation>"``."""
    open_tag, close_tag = think_tags
    text = completion or ""
    if not text.strip():
        return "empty_completion: the completion is empty"
    n_open, n_close = text.count(open_tag), text.count(close_tag)
    if n_close == 0:
        if n_open == 0 and think_prefilled is False:
            return f"missing_think: no {open_tag}…{close_tag} block"
        if n_open == 0 and think_prefilled is None:
            return f"missing_think: no {close_tag} (and no {open_tag})"
        return f"unclosed_think: {close_tag} never comes; the generation stopped inside its reasoning"
    if n_close > 1 or n_open > 1:
        return f"multiple_think_blocks: {n_open} {open_tag} and {n_close} {close_tag}"
    close_at = text.index(close_tag)
    if n_open == 1:
        open_at = text.index(open_tag)
        if think_prefilled is True:
            return f"unexpected_think_open: the template pre-fills {open_tag}; the completion repeats it"
        if open_at > close_at:
            return f"multiple_think_blocks: {open_tag} after {close_tag}"
        if text[:open_at].strip():
            return f"text_before_think: text before {open_tag}"
    elif think_prefilled is False:
        return f"missing_think: {close_tag} without {open_tag} (pass think_prefilled=True if the template pre-fills it)"
    answer = text[close_at + len(close_tag):]
    a_open, a_close = answer_tags
    n_a_open, n_a_close = answer.count(a_open), answer.count(a_close)
    if n_a_open == 0 and n_a_close == 0:
        if require_answer_tags:
            return f"missing_answer_tags: no {a_open}…{a_close} after {close_tag}"
        if not answer.strip():
            return f"empty_answer: nothing after {close_tag}"
        return None
    if n_a_open != 1 or n_a_close != 1 or answer.index(a_open) > answer.index(a_close):
        return f"malformed_answer_tags: {n_a_open} {a_open} and {n_a_close} {a_close}"
    before, rest = answer.split(a_open, 1)
    inner, after = rest.split(a_close, 1)
    if require_answer_tags and (before.strip() or after.strip()):
        return f"text_outside_answer: text around {a_open}…{a_close}"
    if not inner.strip():
        return f"empty_answer: {a_open}{a_close} is empty"
    return None
