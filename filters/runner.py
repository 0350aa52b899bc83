"""The runner: applies the filter chain to a list of records and counts drops.

``run_filters(rows, config)`` returns every row, each with

- ``drop``: ``None`` (kept) or ``"<filter>:<reason>"`` of the *first* filter
  that dropped it (later filters only see the rows still kept), and
- ``drop_detail``: the measured value and threshold behind that drop,

plus the stats for the manifest::

    {"total": n, "kept": k,
     "dropped": {"<filter>/<reason>": count, ...},   # metric keys dropped/<filter>/<reason>
     "filters": [...], "seconds": {"<filter>": s, ...},      # wall clock
     "cpu_seconds": {"<filter>": s, ...},                   # this process's CPU time
     "length_counter": "approx" | "tokenizer:<path>", "skipped": {...}}

Order is cheap → expensive, and problems before samples: ``decontam`` and
``dedup`` judge each *problem* once (all its samples share the decision,
see ``filters.dedup``) over the whole list — never one shard at a time —
then the per-sample filters ``length``, ``answer``, ``code_block``,
``paragraph``, ``repetition`` and finally ``language`` (fastText per
sentence, the most expensive).

Sharded runs (the ``filter`` flow) split the chain by kind: the dataset-wide
filters (``DatasetFilter``: decontam, dedup) run once over one row per problem
(``problem_decisions``); every shard then runs the per-row filters and applies
those problem-level decisions (``filter_shard``), counted under the filter
that made them exactly as an unsharded run counts them.

Rows that carry only ``completion`` get ``reasoning``/``summary`` from
``datagen.records.split_completion`` (the same split generation uses);
``language`` defaults to ``en``. The input rows are not modified.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from datagen.records import split_completion
from filters.answer import AnswerFilter
from filters.base import DatasetFilter, Decision, RowFilter
from filters.code_block import CodeBlockFilter
from filters.config import FiltersConfig
from filters.decontam import DecontamFilter, load_benchmarks
from filters.dedup import DedupFilter
from filters.language import LanguageMixFilter
from filters.length import LengthFilter
from filters.paragraph import ParagraphFilter
from filters.repetition import RepetitionFilter

log = logging.getLogger(__name__)

#: Every filter by name, in the order the chain runs them.
FILTERS: dict[str, type[RowFilter | DatasetFilter]] = {
    "decontam": DecontamFilter,
    "dedup": DedupFilter,
    "length": LengthFilter,
    "answer": AnswerFilter,
    "code_block": CodeBlockFilter,
    "paragraph": ParagraphFilter,
    "repetition": RepetitionFilter,
    "language": LanguageMixFilter,
}
FILTER_NAMES: tuple[str, ...] = tuple(FILTERS)
#: ``drop_detail`` of a row dropped by a decision about its whole problem.
PROBLEM_LEVEL = "problem-level decision"
#: Rows handed to a row filter's ``check_batch`` at once (progress granularity).
BATCH = 256


def build_filter(name: str, config: FiltersConfig) -> RowFilter | DatasetFilter:
    """One filter from its own config section (benchmark files are read here, once)."""
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; choose from {', '.join(FILTER_NAMES)}")
    section = getattr(config, name)
    if name == "decontam":
        if not section.benchmarks:
            raise ValueError("decontam: no benchmark files configured; set decontam.benchmarks in the config")
        return DecontamFilter(load_benchmarks(section.benchmarks), section)
    if name == "answer":
        return AnswerFilter()
    if name == "language":
        return LanguageMixFilter(**section.model_dump(exclude={"enabled"}))
    return FILTERS[name](section)


def build_filters(config: FiltersConfig, names: Sequence[str] | None = None) -> tuple[list, dict[str, str]]:
    """The chain in ``FILTER_NAMES`` order -> (filters, skipped {name: why}).

    With ``names=None`` every enabled filter runs, except ``decontam`` when
    no benchmark is configured (reported in ``skipped``). Naming a filter
    explicitly runs it even if disabled in the config.
    """
    unknown = [n for n in (names or []) if n not in FILTER_NAMES]
    if unknown:
        raise ValueError(f"unknown filter(s) {', '.join(unknown)}; choose from {', '.join(FILTER_NAMES)}")
    chosen, skipped = [], {}
    for name in FILTER_NAMES:
        if names is not None:
            if name in names:
                chosen.append(build_filter(name, config))
            continue
        why = _why_skipped(name, config)
        if why:
            skipped[name] = why
        else:
            chosen.append(build_filter(name, config))
    return chosen, skipped


def _why_skipped(name: str, config: FiltersConfig) -> str | None:
    if not getattr(config, name).enabled:
        return "disabled in config"
    if name == "decontam" and not config.decontam.benchmarks:
        return "no benchmark files configured"
    return None


def enabled_filters(config: FiltersConfig) -> list[str]:
    """The filters a run with ``names=None`` runs, in chain order."""
    return [name for name in FILTER_NAMES if _why_skipped(name, config) is None]


def split_by_kind(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``names`` -> (dataset-wide filters, per-row filters), by the filter's type."""
    wide = [n for n in names if issubclass(FILTERS[n], DatasetFilter)]
    return wide, [n for n in names if n not in wide]


def drop_key(name: str, reason: str) -> str:
    """The metric key of a drop: ``<filter>/<reason>`` (the ``drop`` column holds ``<filter>:<reason>``)."""
    return f"{name}/{reason}"


#: A decision about a whole problem: (filter, reason, detail).
ProblemDrop = tuple[str, str, str | None]

#: The columns a dataset-wide filter reads: one row per problem carries them.
PROBLEM_COLUMNS = ("problem_id", "prompt", "source", "domain", "language")


def problem_decisions(
    problems: Sequence[Mapping[str, Any]], config: FiltersConfig, names: Sequence[str]
) -> tuple[dict[str, ProblemDrop], dict[str, Any]]:
    """Run the dataset-wide filters ``names`` over one row per problem -> ({problem_id: drop}, stats)."""
    rows, stats = run_filters(problems, config, names=names)
    drops = {}
    for r in rows:
        if r["drop"] is not None:
            name, _, reason = r["drop"].partition(":")
            drops[r["problem_id"]] = (name, reason, r["drop_detail"])
    return drops, stats


def filter_shard(
    rows: Sequence[Mapping[str, Any]],
    config: FiltersConfig,
    *,
    names: Sequence[str],
    problem_drops: Mapping[str, ProblemDrop],
    batch_size: int = BATCH,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One shard: rows of a dropped problem get that decision (``drop_detail`` ``PROBLEM_LEVEL``),
    the rest run through the per-row filters ``names``; every drop counted under its filter."""
    decided = [r for r in rows if r["problem_id"] in problem_drops]
    rest = [r for r in rows if r["problem_id"] not in problem_drops]
    out, stats = run_filters(rest, config, names=names, batch_size=batch_size)
    dropped: Counter[str] = Counter(stats["dropped"])
    for row in decided:
        name, reason, _ = problem_drops[row["problem_id"]]
        row = prepare(row, config.language.default_language)
        row["drop"], row["drop_detail"] = f"{name}:{reason}", PROBLEM_LEVEL
        dropped[drop_key(name, reason)] += 1
        out.append(row)
    stats.update(total=len(rows), kept=sum(1 for r in out if r["drop"] is None),
                 dropped=dict(sorted(dropped.items())))
    return out, stats


def prepare(row: Mapping[str, Any], default_language: str = "en") -> dict[str, Any]:
    """A copy of ``row`` with ``reasoning``/``summary`` split from ``completion`` when both are
    absent, and ``language`` set to ``default_language`` when absent (the target language)."""
    out = dict(row)
    if not out.get("language"):
        out["language"] = default_language
    if out.get("reasoning") is None and out.get("summary") is None and out.get("completion") is not None:
        split = split_completion(out["completion"])
        out["reasoning"], out["summary"] = split.reasoning, split.summary
    return out


def run_filters(
    rows: Sequence[Mapping[str, Any]],
    config: FiltersConfig | None = None,
    *,
    names: Sequence[str] | None = None,
    progress: bool = False,
    batch_size: int = BATCH,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the chain over ``rows`` (the whole dataset) -> (rows with ``drop``, stats). See module docstring."""
    config = config or FiltersConfig()
    filters, skipped = build_filters(config, names)
    out = [prepare(r, config.language.default_language) for r in rows]
    for row in out:
        row["drop"] = None
        row["drop_detail"] = None
    dropped: Counter[str] = Counter()
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    bar = _Progress(len(out) * len(filters)) if progress else None
    try:
        for flt in filters:
            alive = [r for r in out if r["drop"] is None]
            start, cpu_start = time.perf_counter(), time.process_time()
            if isinstance(flt, DatasetFilter):
                decisions = flt.check_all(alive)
                if bar:
                    bar.advance(flt.name, len(out))
            else:
                decisions = []
                for i in range(0, len(alive), batch_size):
                    decisions.extend(flt.check_batch(alive[i:i + batch_size]))
                    if bar:
                        bar.advance(flt.name, len(alive[i:i + batch_size]))
                if bar:
                    bar.advance(flt.name, len(out) - len(alive))
            seconds[flt.name] = time.perf_counter() - start
            cpu_seconds[flt.name] = time.process_time() - cpu_start
            _apply(flt.name, alive, decisions, dropped)
            log.info("filter %s: %d of %d rows dropped in %.2fs", flt.name,
                     sum(1 for d in decisions if not d.keep), len(alive), seconds[flt.name])
    finally:
        if bar:
            bar.close()
    length = next((f for f in filters if isinstance(f, LengthFilter)), None)
    stats = {
        "total": len(out),
        "kept": sum(1 for r in out if r["drop"] is None),
        "dropped": dict(sorted(dropped.items())),
        "filters": [f.name for f in filters],
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "skipped": skipped,
    }
    if length is not None:
        stats["length_counter"] = length.counter
    return out, stats


def _apply(name: str, rows: list[dict], decisions: list[Decision], dropped: Counter) -> None:
    if len(decisions) != len(rows):
        raise RuntimeError(f"filter {name} returned {len(decisions)} decisions for {len(rows)} rows")
    for row, decision in zip(rows, decisions):
        if not decision.keep:
            row["drop"] = f"{name}:{decision.reason}"
            row["drop_detail"] = decision.detail or None
            dropped[drop_key(name, decision.reason)] += 1


class _Progress:
    """A rich progress bar over rows × filters (only when asked for: the CLI)."""

    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("filter {task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), transient=False)
        self._progress.start()
        self._task = self._progress.add_task("", total=total)

    def advance(self, name: str, n: int) -> None:
        self._progress.update(self._task, advance=n, description=name)

    def close(self) -> None:
        self._progress.stop()


__all__ = [
    "FILTERS",
    "FILTER_NAMES",
    "PROBLEM_LEVEL",
    "build_filter",
    "build_filters",
    "drop_key",
    "enabled_filters",
    "filter_shard",
    "prepare",
    "problem_decisions",
    "run_filters",
    "split_by_kind",
]
