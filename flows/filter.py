"""``filter``: a verified version -> a filtered version (``drop`` set on every row).

Two steps, so dataset-wide filters see the whole dataset while the expensive
per-sample filters run one task per shard (the split and the counting are
``filters.runner``'s):

1. the dataset-wide filters (decontam, dedup) judge *problems*: they run once
   over a prompts-only projection of the whole version (one row per problem),
   in one task; the decision is a small map problem_id -> drop.
2. One task per shard runs the per-row filters and applies the map.

Every row is kept in the output with ``drop`` null (kept) or
``<filter>:<reason>``; select reads only the kept ones.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from datagen.config import how, where
from filters.config import FiltersConfig
from filters.runner import PROBLEM_COLUMNS, enabled_filters, filter_shard, problem_decisions, split_by_kind
from flows.common import ShardRunner, StageParams, map_version, merge_stats, open_stage, publish


class FilterParams(StageParams):
    root: str | None = where(None)
    input: str = where("verified")
    output: str = where("filtered")
    filters: FiltersConfig = Field(default_factory=FiltersConfig)
    #: rows handed to a per-row filter at once
    batch_size: int = how(256, ge=1)
    #: where the shard tasks run: threads (default), processes (every core), dask (a cluster's address)
    runner: ShardRunner = how(ShardRunner())


@task(cache_policy=NO_CACHE)
def problem_filters(root: str | None, ref: str, config: FiltersConfig, names: list[str]) -> tuple[dict, dict]:
    """The dataset-wide filters over one row per problem -> ({problem_id: drop}, stats)."""
    from datagen.store import open_store

    problems = (
        open_store(root).scan(ref).select(*PROBLEM_COLUMNS)
        .unique(subset="problem_id", keep="first", maintain_order=True).collect().to_dicts()
    )
    drops, stats = problem_decisions(problems, config, names)
    return drops, {"problems": stats}


@flow(name="filter")
def filter_flow(params: FilterParams) -> str:
    """Filter every shard of ``input``; returns the ``name@version`` written."""
    run = open_stage(params, "filter", [params.input])
    writer = run.writer(params.output)
    if run.done(writer):
        return writer.committed.ref
    names = enabled_filters(params.filters)
    wide, per_row = split_by_kind(names)
    problem_drops: dict[str, Any] = {}
    wide_stats: dict[str, Any] = {}
    if wide:
        problem_drops, wide_stats = problem_filters(params.root, run.source.ref, params.filters, wide)
    fn = partial(filter_shard, config=params.filters, names=per_row, problem_drops=problem_drops,
                 batch_size=params.batch_size)
    stats = map_version(run.store, run.source, writer, fn, stage="filter", runner=params.runner)
    stats = merge_stats([stats, wide_stats, {"enabled": names}])
    manifest = writer.commit(stats=stats)
    publish("filter", manifest, stats)
    return manifest.ref
