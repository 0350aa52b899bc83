"""Rewards for GRPO, built on the verifiers (the grader *is* the reward).

Each reward is a plain batch function ``f(completions, **columns) ->
list[float | None]``: ``completions`` are the generated texts (or TRL's
conversational form, a list of messages per completion: the last message's
content is used), ``columns`` are the dataset columns of the same rows as
lists (``domain``, ``answer``, ``tests``, ``language`` …); unknown columns
are ignored. ``None`` means "cannot judge this one" (no gold answer, a
domain no rule verifier covers, the verifier itself failed: ``error``) —
never a fake 0.0, which would punish good samples for our own failures (TRL
drops ``None`` from the reward mean).

A ``timeout`` is 0.0, never ``None``, for every verifier (red-team finding,
issue 11 follow-up): ``None`` gives the completion advantage 0 while a wrong
answer gets a negative one, so if "too slow to judge" paid ``None`` a policy
would learn to emit a slow answer (a power tower, ``(9^{9^9})!``) whenever it
is unsure. The verdict keeps its ``timeout`` outcome, so the stats still
count it; only the reward treats it as a failed answer. ``error`` (the
verifier's own failure, which the candidate cannot steer towards once the
pathological forms are decided as ``incorrect``) stays ``None``.

Names resolve through the one flat dict ``REWARDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from datagen.records import split_completion
from datagen.verify.format import R1_MIN_REASONING_WORDS, verify_format

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


def _reward_of(v: dict[str, Any], verifier: str) -> float | None:
    """A verdict as a reward: its score; ``error`` (the verifier failed) is
    None; a ``timeout`` of any verifier is 0.0 -- never better than
    ``incorrect``, or slow answers would be learned (module docstring)."""
    if v["outcome"] == "error":
        return None
    if v["outcome"] == "timeout":
        return 0.0
    score = v["score"]
    return 0.0 if score is None and v["outcome"] in ("incorrect", "unparseable") else score


def _judge(verifier: str, texts: list[str], rows: list[dict[str, Any]], **opts: Any) -> list[float | None]:
    """Rewards of ``texts`` by the runner's verifier (the same isolation, needs
    and verdicts as ``datagen verify``): a sample the verifier chokes on is
    None, never an exception that ends the training step."""
    from datagen.verify.runner import verify_rows

    judged = [{**row, "completion": text} for row, text in zip(rows, texts)]
    verify_rows(judged, verifier, **opts)
    return [_reward_of(row["verdicts"][verifier], verifier) for row in judged]


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def accuracy_reward(completions: Sequence[Any], *, think_prefilled: bool = False, math_timeout_s: float = 5.0,
                    **columns: Any) -> list[float | None]:
    """1.0 / 0.0 by the rule verifier of the row's domain: ``math`` (``answer``
    column, ``datagen.verify.math``) or ``code`` (``tests`` column,
    ``datagen.verify.code``); ``None`` elsewhere.

    The verdict is the one ``datagen verify`` writes for the same row (both go
    through ``runner.verify_rows``): an empty or answerless completion is 0.0;
    ``None`` where the verifier cannot judge (no gold answer or tests, its own
    ``error``). A ``timeout`` (math or code) is 0.0: never better than wrong.
    Without a ``domain`` column, a row with ``tests`` is code and one with an
    ``answer`` is math. ``think_prefilled``: the chat template opened the
    think block, so a completion without ``</think>`` is unfinished reasoning.
    """
    texts = [completion_text(c) for c in completions]
    n = len(texts)
    domains, answers, tests = (_column(columns, k, n) for k in ("domain", "answer", "tests"))
    rewards: list[float | None] = [None] * n
    by_verifier: dict[str, list[int]] = {"math": [], "code": []}
    for i in range(n):
        if texts[i] is None:
            continue
        domain = domains[i] or ("code" if _present(tests[i]) else "math" if _present(answers[i]) else None)
        if domain in by_verifier:
            by_verifier[domain].append(i)
    for verifier, idx in by_verifier.items():
        if not idx:
            continue
        opts: dict[str, Any] = {"think_prefilled": think_prefilled}
        if verifier == "math":
            opts["timeout_s"] = math_timeout_s
        rows = [{"answer": answers[i], "tests": tests[i]} for i in idx]
        for i, r in zip(idx, _judge(verifier, [texts[i] for i in idx], rows, **opts)):
            rewards[i] = r
    return rewards


def format_reward(completions: Sequence[Any], *, think_prefilled: bool | None = None,
                  require_answer_tags: bool = False, min_reasoning_chars: int = 1,
                  min_reasoning_words: int = R1_MIN_REASONING_WORDS,
                  special_token: str | None = None, **columns: Any) -> list[float | None]:
    """1.0 when the completion has the R1 shape (``<think>`` reasoning, then a
    visible answer; with ``require_answer_tags`` the R1-Zero ``<answer>``
    form; with ``special_token`` the cold-start form), else 0.0; ``None`` for
    a completion that is not text. The verdict is ``datagen.verify.format``'s.

    ``min_reasoning_words`` (default ``R1_MIN_REASONING_WORDS``; 0 turns it
    off) is the floor on the reasoning's content (``reasoning_words``:
    distinct words, a CJK character counting as one): a format reward that
    empty or filler reasoning (the alphabet, ``0 1 2 … 19``, ``hmm`` repeated)
    could earn would teach GRPO to drop the chain of thought.
    ``min_reasoning_chars`` (default 1: not empty) is the older floor on
    visible non-repeated characters, kept for callers that set it.
    """
    texts = [completion_text(c) for c in completions]
    out: list[float | None] = [None] * len(texts)
    for i, text in enumerate(texts):
        if text is None:
            continue
        v = verify_format(text, think_prefilled=think_prefilled, require_answer_tags=require_answer_tags,
                          min_reasoning_chars=min_reasoning_chars, min_reasoning_words=min_reasoning_words,
                          special_token=special_token)
        out[i] = v["score"] if v["outcome"] in ("correct", "incorrect") else None
    return out


def language_consistency_reward(completions: Sequence[Any], *, think_prefilled: bool = False,
                                **columns: Any) -> list[float | None]:
    """DeepSeek-R1's language-consistency reward, by ``datagen.language`` (the
    measure the language filter uses): the share of the reasoning's words in
    the row's ``language`` times the same share of the answer (each part
    judged on its own, so an answer in another language scores 0 however clean
    the reasoning is). A completion without ``<think>`` is judged as one text.

    The reward pays for words written in the target language, so writing none
    earns nothing: an empty completion, or a reasoning (or a think-less
    completion) with no judged words, scores 0.0 — else a constant answer such
    as ``}`` would beat every genuine reasoning (1.0 for saying nothing). An
    *answer* with no words (``\\boxed{5}``) is neutral (factor 1).

    ``None`` only without a ``language`` for the row or without a completion.
    """
    from datagen.language import ANSWER_ANALYZER, analyze  # lazy: loads the fastText model on first use

    texts = [completion_text(c) for c in completions]
    languages = _column(columns, "language", len(texts))
    out: list[float | None] = []
    for text, language in zip(texts, languages):
        if text is None or not language:
            out.append(None)
            continue
        split = split_completion(text, think_prefilled=think_prefilled)
        body = split.reasoning or (split.summary if split.reasoning is None else "")
        report = analyze(body, language) if body else None
        if report is None or not report.judged_words:
            out.append(0.0)
            continue
        score = report.consistency
        if split.reasoning and split.summary:
            score *= ANSWER_ANALYZER.analyze(split.summary, language).consistency
        out.append(score)
    return out


#: The old name, kept for configs that use it.
language_reward = language_consistency_reward


REWARDS: dict[str, Reward] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "language": language_consistency_reward,
    "language_consistency": language_consistency_reward,
}
