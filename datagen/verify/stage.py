"""The verify stage's logic, one shard at a time: run the verifiers that apply to each row's
domain, then decide ``accepted`` from the verdicts (``accept``).

Plain Python, no Prefect (STYLE.md habit 12): ``flows/verify.py`` runs
``verify_shard`` once per shard; ``datagen verify`` runs the verifiers alone.

Counting rules (the contract of ``accept``): a row's ``accepted`` is the
three-valued AND (Kleene logic) of the verdicts of the verifiers that apply to
its domain: ``False`` when any applicable verifier judged the candidate wrong
(``incorrect``, ``unparseable``, ``memory``, ``runtime_error``, and
``timeout`` of a verifier that runs the candidate's code: the candidate
exceeded its time limit); otherwise ``None`` when any applicable verifier
could not judge (``error``, ``timeout`` of any other verifier — e.g. a sympy
comparison or a judge request that timed out — or a required verdict that is
missing); otherwise ``True``. So a verifier's own failure never turns a sample
into a rejection by itself: it can only leave it undecided, and every
undecided row is counted by reason in the stats.

Which verifiers apply: a row whose ``task`` (the non-reasoning rows of
``datagen.nonreasoning``: writing, factual_qa, translation, self_cognition)
is listed in ``verifiers_by_task`` is judged by that list; any other row by
its domain's list in ``verifiers_by_domain``. So ``general`` rows are
accepted by the verifiers configured for their task (judge, chrf,
self_cognition), and a task with no verifier configured stays undecided.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from datagen.records import Rows, as_frame, decode_verdicts, encode_verdicts

log = logging.getLogger(__name__)

#: Verifiers that must have judged a row of the domain (missing -> undecided).
DEFAULT_VERIFIERS_BY_DOMAIN: dict[str, list[str]] = {"math": ["math"], "code": ["code"], "general": []}
#: Non-reasoning task -> verifiers that must all say ``correct`` (overrides the domain's list).
#: The defaults need no model; ``judge`` joins writing, factual_qa and translation when
#: a judge backend is configured (``datagen.nonreasoning.TASKS`` lists each task's full set).
DEFAULT_VERIFIERS_BY_TASK: dict[str, list[str]] = {"self_cognition": ["self_cognition"], "translation": ["chrf"]}
#: Verifiers that apply to any domain when their verdict is present (the
#: format check; the generative judge for answers rules cannot check).
DEFAULT_OPTIONAL_VERIFIERS: tuple[str, ...] = ("format", "judge")
#: Verifiers whose ``timeout`` is the candidate's (its code ran past the time
#: limit), a real judgement; any other verifier's timeout is its own failure.
CANDIDATE_RUNNING_VERIFIERS: tuple[str, ...] = ("code",)

_FAIL_OUTCOMES = frozenset({"incorrect", "unparseable", "memory", "runtime_error"})


def required_verifiers(row: Mapping[str, Any], verifiers_by_domain: Mapping[str, list[str]],
                       verifiers_by_task: Mapping[str, list[str]]) -> list[str] | None:
    """The verifiers that must judge ``row``: its task's list, else its domain's; None = domain not listed."""
    task = row.get("task")
    if isinstance(task, str) and task in verifiers_by_task:
        return list(verifiers_by_task[task])
    domain = row.get("domain")
    return list(verifiers_by_domain[domain]) if domain in verifiers_by_domain else None


def verify_shard(
    rows: list[dict[str, Any]],
    *,
    verifiers_by_domain: Mapping[str, list[str]],
    verifiers_by_task: Mapping[str, list[str]] | None = None,
    judge: Any = None,
    chrf_threshold: float | None = None,
    chrf_threshold_by_language: Mapping[str, float] | None = None,
    math_timeout_s: float = 5.0,
    workers: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Verify one shard's rows and set ``accepted``; ``(rows, stats)``.

    Each verifier runs once over the rows that need it (``required_verifiers``;
    ``workers`` parallel sandbox / math workers; None = all cores). ``judge``: a
    ``datagen.verify.judge.JudgeConfig`` (its backend is loaded once per process),
    required when a list names ``judge``. ``stats``: ``outcomes`` (verifier ->
    outcome -> rows) and ``acceptance`` (``accept``'s counts) — counts only, so
    shards add up.
    """
    from datagen.verify.runner import verify_rows

    by_task = DEFAULT_VERIFIERS_BY_TASK if verifiers_by_task is None else verifiers_by_task
    for row in rows:
        row["verdicts"] = decode_verdicts(row.get("verdicts"))
    needs = [required_verifiers(r, verifiers_by_domain, by_task) or [] for r in rows]
    outcomes: dict[str, dict[str, int]] = {}
    for verifier in sorted({v for vs in needs for v in vs}):
        subset = [r for r, vs in zip(rows, needs) if verifier in vs]
        opts: dict[str, Any] = {}
        if verifier == "math":
            opts = {"timeout_s": math_timeout_s}
        elif verifier == "chrf":
            opts = {"chrf_threshold": chrf_threshold, "chrf_threshold_by_language": chrf_threshold_by_language}
        elif verifier == "judge":
            if judge is None:
                raise ValueError("rows need the judge verifier but no judge is configured: set verify.judge.backend "
                                 "(kind hf | openai | vllm), or remove 'judge' from verifiers_by_domain/by_task")
            from datagen.verify.judge import judge_backend_for

            opts = {"judge_backend": judge_backend_for(judge), "judge_template": judge.template,
                    "judge_templates": dict(judge.templates), "judge_max_tokens": judge.max_tokens,
                    "think_prefilled": judge.think_prefilled, "prompts_dir": judge.prompts_dir}
        _, vstats = verify_rows(subset, verifier, workers=workers, **opts)
        for name, counts in vstats.get("outcomes", {}).items():
            mine = outcomes.setdefault(name, {})
            for outcome, n in counts.items():
                mine[outcome] = mine.get(outcome, 0) + n
    for row in rows:
        row["verdicts"] = encode_verdicts(row["verdicts"])
    decided = accept(rows, verifiers_by_domain, verifiers_by_task=by_task)
    stats: dict[str, Any] = {"acceptance": decided.stats}
    if outcomes:
        stats["outcomes"] = outcomes
    return decided.rows.to_dicts(), stats


@dataclasses.dataclass
class AcceptResult:
    """``rows``: the input with ``accepted`` set. ``stats``: see ``accept``."""

    rows: pl.DataFrame
    stats: dict[str, Any]


def accept(
    rows: Rows,
    verifiers_by_domain: Mapping[str, list[str]] | None = None,
    *,
    verifiers_by_task: Mapping[str, list[str]] | None = None,
    optional_verifiers: Iterable[str] = DEFAULT_OPTIONAL_VERIFIERS,
    candidate_running_verifiers: Iterable[str] = CANDIDATE_RUNNING_VERIFIERS,
) -> AcceptResult:
    """Set ``accepted`` on every row from its ``verdicts`` (dict or JSON string).

    ``verifiers_by_domain`` lists the verifiers that must have judged a row of
    each domain (default ``DEFAULT_VERIFIERS_BY_DOMAIN``); ``optional_verifiers``
    apply to every domain when their verdict is present. A row whose ``task`` is
    in ``verifiers_by_task`` (default ``DEFAULT_VERIFIERS_BY_TASK``) needs that
    task's list instead of its domain's. A domain missing from the mapping uses
    every verdict present. The decision rule is in the module
    docstring; a row with no applicable verdict at all is undecided (None).
    Any existing ``accepted`` value is replaced.

    ``stats``: ``rows``, ``accepted``, ``rejected``, ``undecided``,
    ``by_domain`` and ``by_task`` (the same four per domain, per task of rows
    that have one), ``undecided_reasons`` 
    (``verifier:outcome`` / ``verifier:missing`` / ``no_verdicts`` -> rows) and
    ``outcomes`` (verifier -> outcome -> rows, over applicable verdicts). Counts only, so the
    stats of shards add up; a rate is derived when shown.
    """
    frame = as_frame(rows)
    required_by_domain = dict(DEFAULT_VERIFIERS_BY_DOMAIN if verifiers_by_domain is None else verifiers_by_domain)
    required_by_task = dict(DEFAULT_VERIFIERS_BY_TASK if verifiers_by_task is None else verifiers_by_task)
    tasks = frame["task"].to_list() if "task" in frame.columns else [None] * frame.height
    by_task: dict[str, dict[str, Any]] = {}
    optional = tuple(optional_verifiers)
    runs_candidate = frozenset(candidate_running_verifiers)

    domains = frame["domain"].to_list() if "domain" in frame.columns else [None] * frame.height
    raw_verdicts = frame["verdicts"].to_list() if "verdicts" in frame.columns else [None] * frame.height
    decisions: list[bool | None] = []
    by_domain: dict[str, dict[str, Any]] = {}
    undecided_reasons: dict[str, int] = {}
    outcomes: dict[str, dict[str, int]] = {}

    for domain, task, raw in zip(domains, tasks, raw_verdicts):
        verdicts = {name: v for name, v in decode_verdicts(raw).items() if v is not None}
        needed = required_verifiers({"domain": domain, "task": task}, required_by_domain, required_by_task)
        if needed is not None:
            required = needed
            applicable = required + [name for name in optional if name in verdicts and name not in required]
        else:
            required, applicable = [], sorted(verdicts)
        failed, reasons = False, []
        for name in applicable:
            v = verdicts.get(name)
            if v is None:
                reasons.append(f"{name}:missing")
                continue
            outcome = v.get("outcome") if isinstance(v, Mapping) else None
            counts = outcomes.setdefault(name, {})
            counts[str(outcome)] = counts.get(str(outcome), 0) + 1
            if outcome == "correct":
                continue
            if outcome in _FAIL_OUTCOMES or (outcome == "timeout" and name in runs_candidate):
                failed = True
            else:  # error, the verifier's own timeout, or an outcome we do not know
                reasons.append(f"{name}:{outcome}")
        if not applicable:
            reasons.append("no_verdicts")
        decision: bool | None = False if failed else (None if reasons else True)
        decisions.append(decision)

        d = by_domain.setdefault(str(domain), {"rows": 0, "accepted": 0, "rejected": 0, "undecided": 0})
        d["rows"] += 1
        if decision is None:
            d["undecided"] += 1
            for reason in reasons:
                undecided_reasons[reason] = undecided_reasons.get(reason, 0) + 1
        else:
            d["accepted" if decision else "rejected"] += 1
        if isinstance(task, str):
            t = by_task.setdefault(task, {"rows": 0, "accepted": 0, "rejected": 0, "undecided": 0})
            t["rows"] += 1
            t["undecided" if decision is None else "accepted" if decision else "rejected"] += 1

    stats = {
        "rows": frame.height,
        "accepted": sum(d["accepted"] for d in by_domain.values()),
        "rejected": sum(d["rejected"] for d in by_domain.values()),
        "undecided": sum(d["undecided"] for d in by_domain.values()),
        "by_domain": dict(sorted(by_domain.items())),
        **({"by_task": dict(sorted(by_task.items()))} if by_task else {}),
        "undecided_reasons": dict(sorted(undecided_reasons.items())),
        "outcomes": {k: dict(sorted(v.items())) for k, v in sorted(outcomes.items())},
    }
    if stats["undecided"]:
        log.warning(
            "accept: %d of %d rows undecided (%s)", stats["undecided"], frame.height, stats["undecided_reasons"]
        )
    out = frame.with_columns(pl.Series("accepted", decisions, dtype=pl.Boolean))
    return AcceptResult(rows=out, stats=stats)


__all__ = [
    "CANDIDATE_RUNNING_VERIFIERS",
    "DEFAULT_OPTIONAL_VERIFIERS",
    "DEFAULT_VERIFIERS_BY_DOMAIN",
    "DEFAULT_VERIFIERS_BY_TASK",
    "AcceptResult",
    "accept",
    "required_verifiers",
    "verify_shard",
]
