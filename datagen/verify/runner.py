"""Verify many rows at once: ``verify_rows(rows, verifier)``.

Used by ``datagen verify``, by the verify stage (one call per shard) and by
the GRPO rewards (``datagen.verify.rewards``), so a sample is judged the same
way wherever it is judged. Each row gets ``row["verdicts"][verifier] =
{outcome, score, detail}`` (the ``verdicts`` column as a dict;
``files.write_records`` encodes it for Parquet). The runner, not the
verifiers, counts outcomes.

One sample never stops a run. Every step that touches one sample is
isolated, and its failure becomes that sample's typed verdict, counted:

- reading the row (``prepare``): a missing completion, gold answer or test
  spec is ``error`` (nothing to judge, the data's gap); a completion that is
  not text (a number, a dict) is ``unparseable`` (no answer can be read); a
  gold answer that is a number is read as its decimal text, any other type
  is ``error``;
- text that is not valid Unicode (lone surrogates, as JSON escapes can
  carry) is repaired to U+FFFD before judging, so every row stays writable
  to Parquet and UTF-8 JSONL; repaired rows are counted (``repaired_text``);
- judging: the verifier runs on chunks of rows; if it raises on a chunk
  (recursion, overflow, a huge integer, a bug), the chunk's rows are judged
  again one at a time and only the row that still raises gets ``error``
  (the judge verifier, whose failure is the backend's, marks its chunk);
- reading the result: a verdict that is not a dict with a known outcome, a
  score in [0, 1] (or None) and a text detail is ``error``; details are
  clipped and made valid Unicode.

``VERIFIERS`` maps a verifier name to a ``Verifier``: ``prepare(row)`` gives
the verifier's inputs for a row or a verdict for a row it cannot take, and
``run(inputs, *, workers, on_done, **opts)`` judges a batch. Add a verifier
by adding an entry here.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from datagen.records import OUTCOMES, decode_verdicts, verdict

log = logging.getLogger(__name__)

Verdict = dict[str, Any]
OnDone = Callable[[int], None]

#: Rows per verifier call: a failing call is redone row by row, so this bounds
#: the rework, while staying large enough for the code verifier's worker pool.
CHUNK_ROWS = 256
#: Longest verdict detail kept (a detail quotes the candidate's output).
MAX_DETAIL_CHARS = 2000


@dataclasses.dataclass(frozen=True)
class Verifier:
    """A batch verifier and how a row becomes its input.

    ``prepare(row)`` returns the inputs ``run`` takes for that row (a dict),
    or a verdict when the row cannot be judged. ``retry_singly``: redo a
    failed chunk one row at a time (False where a failure is the whole
    backend's and a retry per row would only repeat it). ``check_opts``
    rejects a bad configuration before any row is judged.
    """

    run: Callable[..., list[Verdict]]
    prepare: Callable[[dict[str, Any]], dict[str, Any] | Verdict]
    retry_singly: bool = True
    check_opts: Callable[[dict[str, Any]], None] | None = None


# ------------------------------------------------------------------ reading rows


def _completion(row: dict[str, Any]) -> str | Verdict:
    completion = row.get("completion")
    if completion is None:
        return verdict("error", detail="missing completion")
    if not isinstance(completion, str):
        return verdict("unparseable", detail=f"completion is {type(completion).__name__}, not text: "
                                             "no answer can be read")
    return completion


def _gold_answer(row: dict[str, Any]) -> str | Verdict:
    answer = row.get("answer")
    if isinstance(answer, bool):  # a bool is an int to Python, never a gold answer
        return verdict("error", detail=f"gold answer is a bool ({answer}), not text (column 'answer')")
    if isinstance(answer, int):
        # Datasets store integer answers as numbers; str() of an int with more
        # than 4300 digits raises, so the length is checked first.
        if answer.bit_length() > 10_000:
            return verdict("error", detail="gold answer is an integer too large to read (column 'answer')")
        answer = str(answer)
    elif isinstance(answer, float):
        if not math.isfinite(answer):
            return verdict("error", detail=f"gold answer is {answer}, not a finite number (column 'answer')")
        answer = repr(answer)
    elif answer is not None and not isinstance(answer, str):
        return verdict("error", detail=f"gold answer is {type(answer).__name__}, not text (column 'answer')")
    if answer is None or not answer.strip():
        return verdict("error", detail="missing gold answer (column 'answer')")
    return answer


def _prepare_math(row: dict[str, Any]) -> dict[str, Any] | Verdict:
    answer = _gold_answer(row)
    if isinstance(answer, dict):
        return answer
    completion = _completion(row)
    return completion if isinstance(completion, dict) else {"completion": completion, "answer": answer}


def _prepare_code(row: dict[str, Any]) -> dict[str, Any] | Verdict:
    tests = row.get("tests")
    if tests is None or (isinstance(tests, str) and not tests.strip()):
        return verdict("error", detail="missing tests (column 'tests')")
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except ValueError as exc:  # includes a huge integer literal and invalid escapes
            return verdict("error", detail=f"tests is not valid JSON: {exc}")
        except RecursionError:
            return verdict("error", detail="tests is not valid JSON: nested too deeply")
    if not isinstance(tests, dict):
        return verdict("error", detail=f"tests must be a JSON object, got {type(tests).__name__}")
    completion = _completion(row)
    return completion if isinstance(completion, dict) else {"completion": completion, "tests": tests}


def _prepare_format(row: dict[str, Any]) -> dict[str, Any] | Verdict:
    completion = _completion(row)
    return completion if isinstance(completion, dict) else {"completion": completion}


def _prepare_judge(row: dict[str, Any]) -> dict[str, Any] | Verdict:
    # The reference is optional here: a writing rubric needs none, and verify_judge
    # gives ``error`` to a row whose template needs one it lacks.
    answer = _gold_answer(row) if row.get("answer") is not None else None
    if isinstance(answer, dict):
        return answer
    completion = _completion(row)
    if isinstance(completion, dict):
        return completion
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return verdict("error", detail="missing prompt (column 'prompt'): the judge needs the question")
    summary = row.get("summary")
    return {"completion": completion, "answer": answer, "prompt": prompt,
            "summary": summary if isinstance(summary, str) else None,
            "task": row.get("task") if isinstance(row.get("task"), str) else None,
            "language": row.get("language") if isinstance(row.get("language"), str) else None}


def _prepare_reference(row: dict[str, Any]) -> dict[str, Any] | Verdict:
    """chrF: the response and the reference translation (``answer``), with the row's language."""
    completion = _completion(row)
    if isinstance(completion, dict):
        return completion
    summary = row.get("summary")
    answer = row.get("answer")
    return {"completion": completion, "summary": summary if isinstance(summary, str) else None,
            "answer": answer if isinstance(answer, str) else None,
            "language": row.get("language") if isinstance(row.get("language"), str) else None}


def _prepare_self_cognition(row: dict[str, Any]) -> dict[str, Any] | Verdict:
    completion = _completion(row)
    if isinstance(completion, dict):
        return completion
    summary = row.get("summary")
    return {"completion": completion, "summary": summary if isinstance(summary, str) else None,
            "identity": row.get("identity")}


# ------------------------------------------------------------------ verifiers


def _run_math(inputs: list[dict[str, Any]], *, workers: int | None, on_done: OnDone, timeout_s: float = 5.0,
              think_prefilled: bool = False, **_: Any) -> list[Verdict]:
    from datagen.verify.math import verify_math_batch  # lazy: sympy is heavy

    out = verify_math_batch([x["completion"] for x in inputs], [x["answer"] for x in inputs], timeout_s=timeout_s,
                            think_prefilled=think_prefilled, workers=workers)
    on_done(len(inputs))
    return out


def _run_code(inputs: list[dict[str, Any]], *, workers: int | None, on_done: OnDone,
              think_prefilled: bool = False, **_: Any) -> list[Verdict]:
    from datagen.verify.code import verify_code_batch

    return verify_code_batch([x["completion"] for x in inputs], [x["tests"] for x in inputs], workers=workers,
                             think_prefilled=think_prefilled, on_done=lambda i: on_done(1))


def _run_format(inputs: list[dict[str, Any]], *, workers: int | None, on_done: OnDone,
                think_prefilled: bool | None = None, require_answer_tags: bool = False,
                min_reasoning_chars: int = 1, special_token: str | None = None, **_: Any) -> list[Verdict]:
    from datagen.verify.format import verify_format

    out = []
    for x in inputs:
        out.append(verify_format(x["completion"], think_prefilled=think_prefilled,
                                 require_answer_tags=require_answer_tags, min_reasoning_chars=min_reasoning_chars,
                                 special_token=special_token))
        on_done(1)
    return out


def _run_judge(inputs: list[dict[str, Any]], *, workers: int | None, on_done: OnDone, judge_backend: Any = None,
               judge_template: str = "judge.v1", judge_templates: dict[str, str] | None = None,
               judge_max_tokens: int | None = None, think_prefilled: bool = False, prompts_dir: str | None = None,
               **_: Any) -> list[Verdict]:
    from datagen.verify.judge import JUDGE_SAMPLING, verify_judge

    sampling = JUDGE_SAMPLING if judge_max_tokens is None else JUDGE_SAMPLING.model_copy(
        update={"max_tokens": judge_max_tokens})
    out = verify_judge(inputs, judge_backend, template=judge_template, templates=judge_templates, sampling=sampling,
                       think_prefilled=think_prefilled, prompts_dir=prompts_dir)
    on_done(len(inputs))
    return out


def _run_chrf(inputs: list[dict[str, Any]], *, workers: int | None, on_done: OnDone, chrf_threshold: float | None = None,
              chrf_threshold_by_language: dict[str, float] | None = None, think_prefilled: bool = False,
              **_: Any) -> list[Verdict]:
    from datagen.verify.chrf import DEFAULT_THRESHOLD, verify_chrf

    out = verify_chrf(inputs, threshold=DEFAULT_THRESHOLD if chrf_threshold is None else chrf_threshold,
                      threshold_by_language=chrf_threshold_by_language, think_prefilled=think_prefilled)
    on_done(len(inputs))
    return out


def _run_self_cognition(inputs: list[dict[str, Any]], *, workers: int | None, on_done: OnDone,
                        think_prefilled: bool = False, **_: Any) -> list[Verdict]:
    from datagen.verify.self_cognition import verify_self_cognition

    out = verify_self_cognition(inputs, think_prefilled=think_prefilled)
    on_done(len(inputs))
    return out


def _check_judge_opts(opts: dict[str, Any]) -> None:
    if opts.get("judge_backend") is None:
        raise ValueError("the judge verifier needs judge_backend=<a datagen.generate Backend>")


def _check_format_opts(opts: dict[str, Any]) -> None:
    n = opts.get("min_reasoning_chars", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"min_reasoning_chars must be an integer >= 0, got {n!r}")
    token = opts.get("special_token")
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError(f"special_token must be a non-empty string or None, got {token!r}")


VERIFIERS: dict[str, Verifier] = {
    "math": Verifier(_run_math, _prepare_math),
    "code": Verifier(_run_code, _prepare_code),
    "format": Verifier(_run_format, _prepare_format, check_opts=_check_format_opts),
    # A judge failure is its backend's (a server down, a bad template): one
    # request per row would only repeat it, so the chunk gets the error.
    "judge": Verifier(_run_judge, _prepare_judge, retry_singly=False, check_opts=_check_judge_opts),
    # Non-reasoning rows (datagen/nonreasoning.py): translations against their reference, self-cognition by rule.
    "chrf": Verifier(_run_chrf, _prepare_reference),
    "self_cognition": Verifier(_run_self_cognition, _prepare_self_cognition),
}


# ------------------------------------------------------------------ the runner


def verify_rows(
    rows: list[dict[str, Any]],
    verifier: str,
    *,
    workers: int | None = None,
    progress: bool = False,
    **opts: Any,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Set ``row["verdicts"][verifier]`` on every row (in place) and count outcomes.

    Returns ``(rows, stats)`` with ``stats["outcomes"] = {verifier: {outcome:
    count}}`` and, only when nonzero, ``stats["repaired_text"]`` (rows whose
    invalid Unicode was replaced) and ``stats["unreadable_verdicts"]`` (rows
    whose earlier ``verdicts`` value could not be read and was replaced).
    ``opts`` go to the verifier: ``timeout_s`` and ``think_prefilled`` for
    math; ``think_prefilled`` for code; ``think_prefilled``,
    ``require_answer_tags``, ``min_reasoning_chars`` and ``special_token``
    for format; ``judge_backend``, ``judge_template``, ``judge_templates`` (task -> template),
    ``judge_max_tokens``, ``prompts_dir`` for judge; ``chrf_threshold`` and
    ``chrf_threshold_by_language`` for chrf.

    Never raises because of one row. Raises ``KeyError`` for an unknown
    verifier name and ``ValueError`` for a bad option (before judging).
    """
    if verifier not in VERIFIERS:
        raise KeyError(f"unknown verifier {verifier!r}; expected one of {', '.join(VERIFIERS)}")
    spec = VERIFIERS[verifier]
    if spec.check_opts:
        spec.check_opts(opts)
    results: list[Verdict | None] = [None] * len(rows)
    todo: list[int] = []
    inputs: list[dict[str, Any]] = []
    repaired = 0
    for i, row in enumerate(rows):
        if _repair_unicode(row):
            repaired += 1
        try:
            prepared = spec.prepare(row)
        except Exception as exc:  # noqa: BLE001 -- a row the runner cannot read is that row's error
            log.warning("cannot read row %d for %s: %r", i, verifier, exc)
            prepared = verdict("error", detail=f"cannot read the row: {_describe(exc)}")
        if "outcome" in prepared:
            results[i] = prepared
        else:
            todo.append(i)
            inputs.append(prepared)
    with _progress(progress, len(rows), f"verify {verifier}") as advance:
        advance(len(rows) - len(todo))
        for start in range(0, len(todo), CHUNK_ROWS):
            chunk = inputs[start:start + CHUNK_ROWS]
            for i, v in zip(todo[start:start + CHUNK_ROWS], _judge_chunk(spec, verifier, chunk, workers, advance,
                                                                         opts)):
                results[i] = v
    counts: collections.Counter[str] = collections.Counter()
    unreadable = 0
    for row, v in zip(rows, results):
        try:
            verdicts = decode_verdicts(row.get("verdicts"))
        except (ValueError, RecursionError) as exc:
            log.warning("replacing an unreadable verdicts value (%s)", _describe(exc))
            verdicts, unreadable = {}, unreadable + 1
        verdicts[verifier] = v
        row["verdicts"] = verdicts
        counts[v["outcome"]] += 1
    stats: dict[str, Any] = {"outcomes": {verifier: dict(counts)}}
    if repaired:
        stats["repaired_text"] = repaired
    if unreadable:
        stats["unreadable_verdicts"] = unreadable
    return rows, stats


def _judge_chunk(spec: Verifier, name: str, chunk: list[dict[str, Any]], workers: int | None, advance: OnDone,
                 opts: dict[str, Any]) -> list[Verdict]:
    """Verdicts for one chunk; a raising call is redone row by row (see module doc)."""
    budget = [len(chunk)]  # progress never advances past the chunk, however often it is retried

    def on_done(n: int) -> None:
        n = min(n, budget[0])
        budget[0] -= n
        advance(n)

    try:
        return _checked(spec.run(chunk, workers=workers, on_done=on_done, **opts), len(chunk), name)
    except Exception as exc:  # noqa: BLE001 -- see below: isolated per row, never the run's end
        failure = exc
    if not spec.retry_singly or len(chunk) == 1:
        log.error("%s verifier failed on %d row(s): %s", name, len(chunk), _describe(failure))
        on_done(budget[0])
        return [verdict("error", detail=f"{name} verifier failed: {_describe(failure)}") for _ in chunk]
    log.warning("%s verifier failed on a chunk of %d rows (%s); judging them one at a time",
                name, len(chunk), _describe(failure))
    out = []
    for item in chunk:
        try:
            out.extend(_checked(spec.run([item], workers=None, on_done=lambda n: None, **opts), 1, name))
        except Exception as exc:  # noqa: BLE001 -- this row's own failure: its verdict, counted as error
            log.error("%s verifier failed on one row: %s", name, _describe(exc))
            out.append(verdict("error", detail=f"{name} verifier failed: {_describe(exc)}"))
    on_done(budget[0])
    return out


def _checked(verdicts: Any, n: int, name: str) -> list[Verdict]:
    """The verifier's verdicts, each one well-formed or replaced by an ``error``."""
    verdicts = list(verdicts)
    if len(verdicts) != n:
        raise RuntimeError(f"{name} verifier returned {len(verdicts)} verdicts for {n} rows")
    return [_well_formed(v, name) for v in verdicts]


def _well_formed(v: Any, name: str) -> Verdict:
    if not isinstance(v, dict) or v.get("outcome") not in OUTCOMES:
        shown = v.get("outcome") if isinstance(v, dict) else type(v).__name__
        return verdict("error", detail=f"{name} verifier returned no valid verdict ({_clip(repr(shown), 80)})")
    score = v.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                              or not 0.0 <= score <= 1.0):  # NaN fails the range test too
        return verdict("error", detail=f"{name} verifier returned score {_clip(repr(score), 80)} "
                                       f"for outcome {v['outcome']}")
    detail = v.get("detail")
    detail = "" if detail is None else detail if isinstance(detail, str) else repr(detail)
    return {"outcome": v["outcome"], "score": None if score is None else float(score),
            "detail": _valid_unicode(_clip(detail, MAX_DETAIL_CHARS))}


def _repair_unicode(row: dict[str, Any]) -> bool:
    """Replace lone surrogates in the row's text (top-level strings and the
    strings in its lists and dicts) by U+FFFD; True when anything changed."""
    changed = False
    for key, value in list(row.items()):
        fixed = _repair_value(value, depth=0)
        if fixed is not value:
            row[key] = fixed
            changed = True
    return changed


def _repair_value(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return value if value.isascii() else _valid_unicode(value)
    if depth >= 8 or not isinstance(value, (list, dict)):
        return value
    if isinstance(value, list):
        items = [_repair_value(x, depth + 1) for x in value]
        return items if any(a is not b for a, b in zip(items, value)) else value
    pairs = {_repair_value(k, depth + 1): _repair_value(x, depth + 1) for k, x in value.items()}
    changed = any(a is not b for a, b in zip(pairs, value)) or any(
        pairs[k2] is not value[k1] for k1, k2 in zip(value, pairs))
    return pairs if changed else value


def _valid_unicode(text: str) -> str:
    """``text`` with each lone surrogate (not encodable as UTF-8) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _describe(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001 -- an exception whose str() fails (e.g. a huge int in its args)
        text = type(exc).__name__
    return _valid_unicode(_clip(text, 300))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


@contextlib.contextmanager
def _progress(enabled: bool, total: int, label: str) -> Iterator[OnDone]:
    if not enabled:
        yield lambda n: None
        return
    import threading

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    lock = threading.Lock()  # code verification reports from worker threads
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(label, total=total)

        def advance(n: int) -> None:
            with lock:
                bar.advance(task, n)

        yield advance
