"""Verify many rows at once: ``verify_rows(rows, verifier)``.

Used by ``datagen verify`` and by the verify flow (one call per shard). Each
row gets ``row["verdicts"][verifier] = {outcome, score, detail}`` (the
``verdicts`` column as a dict; ``files.write_records`` encodes it for
Parquet). A row that lacks what the verifier needs — no completion, no gold
answer, no tests, test JSON that does not parse — gets an ``error`` verdict
whose detail names what is missing, and the run goes on. The runner, not the
verifiers, counts outcomes.

``VERIFIERS`` maps a verifier name to a function
``(rows, *, workers, on_done, **opts) -> list[verdict]`` that is only handed
rows that passed the verifier's ``needs`` check. Add a verifier by adding an
entry here.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from datagen.records import decode_verdicts, verdict

log = logging.getLogger(__name__)

Verdict = dict[str, Any]
OnDone = Callable[[int], None]


@dataclasses.dataclass(frozen=True)
class Verifier:
    """A batch verifier and what a row must carry for it to judge."""

    run: Callable[..., list[Verdict]]
    needs: Callable[[dict[str, Any]], str | None]  # None, or what is missing


def _missing_completion(row: dict[str, Any]) -> str | None:
    completion = row.get("completion")
    if not isinstance(completion, str) or not completion.strip():
        return "missing completion"
    return None


def _needs_math(row: dict[str, Any]) -> str | None:
    answer = row.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        return "missing gold answer (column 'answer')"
    return _missing_completion(row)


def _needs_code(row: dict[str, Any]) -> str | None:
    tests = row.get("tests")
    if tests is None or (isinstance(tests, str) and not tests.strip()):
        return "missing tests (column 'tests')"
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except ValueError as exc:
            return f"tests is not valid JSON: {exc}"
    if not isinstance(tests, dict):
        return "tests must be a JSON object"
    return _missing_completion(row)


def _run_math(rows: list[dict[str, Any]], *, workers: int | None, on_done: OnDone, timeout_s: float = 5.0,
              **_: Any) -> list[Verdict]:
    from datagen.verify.math import verify_math_batch  # lazy: sympy is heavy

    out: list[Verdict] = []
    for chunk in _chunks(rows, 256):  # chunks so a progress bar moves
        try:
            out.extend(verify_math_batch([r["completion"] for r in chunk], [r["answer"] for r in chunk],
                                         timeout_s=timeout_s))
        except Exception as exc:  # the verifier's failure is counted as error, never as incorrect
            log.exception("math verifier failed on a chunk of %d rows", len(chunk))
            out.extend(verdict("error", detail=f"math verifier failed: {exc!r}") for _ in chunk)
        for _ in chunk:
            on_done(1)
    return out


def _run_code(rows: list[dict[str, Any]], *, workers: int | None, on_done: OnDone,
              think_prefilled: bool = False, **_: Any) -> list[Verdict]:
    from datagen.verify.code import verify_code_batch

    return verify_code_batch([r["completion"] for r in rows], [r["tests"] for r in rows], workers=workers,
                             think_prefilled=think_prefilled, on_done=lambda i: on_done(1))


def _run_format(rows: list[dict[str, Any]], *, workers: int | None, on_done: OnDone,
                think_prefilled: bool | None = None, require_answer_tags: bool = False, **_: Any) -> list[Verdict]:
    from datagen.verify.format import verify_format

    out = []
    for row in rows:
        out.append(verify_format(row["completion"], think_prefilled=think_prefilled,
                                 require_answer_tags=require_answer_tags))
        on_done(1)
    return out


def _run_judge(rows: list[dict[str, Any]], *, workers: int | None, on_done: OnDone, judge_backend: Any = None,
               judge_template: str = "judge.v1", judge_max_tokens: int | None = None, think_prefilled: bool = False,
               **_: Any) -> list[Verdict]:
    from datagen.verify.judge import JUDGE_SAMPLING, verify_judge

    sampling = JUDGE_SAMPLING if judge_max_tokens is None else JUDGE_SAMPLING.model_copy(
        update={"max_tokens": judge_max_tokens})

    if judge_backend is None:
        raise ValueError("the judge verifier needs judge_backend=<a datagen.generate Backend>")
    out: list[Verdict] = []
    for chunk in _chunks(rows, 256):  # large chunks: a GPU backend batches the whole chunk
        try:
            out.extend(verify_judge(chunk, judge_backend, template=judge_template, sampling=sampling,
                                    think_prefilled=think_prefilled))
        except Exception as exc:  # the judge's own failure is error, never incorrect
            log.exception("judge failed on a chunk of %d rows", len(chunk))
            out.extend(verdict("error", detail=f"judge failed: {exc!r}") for _ in chunk)
        on_done(len(chunk))
    return out


VERIFIERS: dict[str, Verifier] = {
    "math": Verifier(_run_math, _needs_math),
    "code": Verifier(_run_code, _needs_code),
    "format": Verifier(_run_format, _missing_completion),
    "judge": Verifier(_run_judge, _needs_math),  # same needs: a reference answer and a completion
}


def verify_rows(
    rows: list[dict[str, Any]],
    verifier: str,
    *,
    workers: int | None = None,
    progress: bool = False,
    **opts: Any,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Set ``row["verdicts"][verifier]`` on every row (in place) and count outcomes.

    Returns ``(rows, {"outcomes": {verifier: {outcome: count}}})``. ``opts``
    go to the verifier (``timeout_s`` for math, ``think_prefilled`` for code
    and format, ``require_answer_tags`` for format). Raises ``KeyError`` for
    an unknown verifier name.
    """
    if verifier not in VERIFIERS:
        raise KeyError(f"unknown verifier {verifier!r}; expected one of {', '.join(VERIFIERS)}")
    spec = VERIFIERS[verifier]
    results: list[Verdict | None] = [None] * len(rows)
    todo: list[int] = []
    for i, row in enumerate(rows):
        missing = spec.needs(row)
        if missing:
            results[i] = verdict("error", detail=missing)
        else:
            todo.append(i)
    with _progress(progress, len(rows), f"verify {verifier}") as advance:
        advance(len(rows) - len(todo))
        if todo:
            judged = spec.run([rows[i] for i in todo], workers=workers, on_done=advance, **opts)
            for i, v in zip(todo, judged):
                results[i] = v
    counts: collections.Counter[str] = collections.Counter()
    for row, v in zip(rows, results):
        verdicts = decode_verdicts(row.get("verdicts"))
        verdicts[verifier] = v
        row["verdicts"] = verdicts
        counts[v["outcome"]] += 1
    return rows, {"outcomes": {verifier: dict(counts)}}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


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
