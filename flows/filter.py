"""``filter``: a verified version -> a filtered version (``drop`` set on every row).

Two steps, so dataset-wide filters see the whole dataset while the expensive
per-sample filters run one task per shard:

1. ``decontam`` and ``dedup`` judge *problems*: they run once over a
   prompts-only projection of the whole version (one row per problem), in
   one task; the decision is a small map problem_id -> drop reason.
2. One task per shard runs the per-sample filters (length, answer,
   code_block, paragraph, repetition, language) and applies the map.

Every row is kept in the output with ``drop`` null (kept) or
``<filter>:<reason>``; select reads only the kept ones.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field

from datagen.store import open_store
from filters.config import FiltersConfig
from flows.common import logger, map_version, merge_stats, publish, stage_writer

DATASET_WIDE = ("decontam", "dedup")


class FilterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str | None = None
    input: str = "verified"
    output: str = "filtered"
    filters: FiltersConfig = Field(default_factory=FiltersConfig)


def enabled_filters(config: FiltersConfig) -> list[str]:
    from filters.runner import FILTER_NAMES

    out = []
    for name in FILTER_NAMES:
        if not getattr(config, name).enabled:
            continue
        if name == "decontam" and not config.decontam.benchmarks:
            continue
        out.append(name)
    return out


@task(cache_policy=NO_CACHE)
def problem_filters(root: str | None, ref: str, config: FiltersConfig, names: list[str]) -> tuple[dict, dict]:
    """Run the dataset-wide filters over one row per problem -> ({problem_id: drop}, stats)."""
    import polars as pl

    from filters.runner import run_filters

    store = open_store(root)
    problems = (
        store.scan(ref).select("problem_id", "prompt", "source", "domain", "language")
        .unique(subset="problem_id", keep="first", maintain_order=True).collect().to_dicts()
    )
    _ = pl  # polars drives the projection; rows stay small (one per problem)
    rows, stats = run_filters(problems, config, names=names)
    decisions = {r["problem_id"]: r["drop"] for r in rows if r["drop"] is not None}
    return decisions, {"problems": stats}


def filter_shard(rows: list[dict[str, Any]], *, config: FiltersConfig, names: list[str],
                 problem_drops: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Plain function: per-sample filters over one shard, plus the problem-level drops."""
    from filters.runner import run_filters

    pre = [r for r in rows if r["problem_id"] in problem_drops]
    rest = [r for r in rows if r["problem_id"] not in problem_drops]
    out, stats = run_filters(rest, config, names=names) if names and rest else (rest, {"total": len(rest),
                                                                                         "kept": len(rest)})
    dropped: dict[str, int] = dict(stats.get("dropped", {}))
    for r in pre:
        r = dict(r)
        r["drop"] = problem_drops[r["problem_id"]]
        r["drop_detail"] = "problem-level decision"
        key = r["drop"].replace(":", "/", 1)
        dropped[key] = dropped.get(key, 0) + 1
        out.append(r)
    for r in out:
        r.setdefault("drop_detail", None)
    return out, {"total": len(rows), "kept": sum(1 for r in out if r.get("drop") is None), "dropped": dropped,
                 "seconds": stats.get("seconds", {})}


@flow(name="filter")
def filter_flow(params: FilterParams) -> str:
    """Filter every shard of ``input``; returns the ``name@version`` written."""
    store = open_store(params.root)
    source = store.resolve(params.input)
    config = params.model_dump(mode="json", exclude={"root", "input", "output"})
    writer = stage_writer(store, params.output, stage="filter", parents=[source], config=config)
    if writer.committed is not None:
        logger().info("filter: %s already committed; nothing to do", writer.committed.ref)
        return writer.committed.ref
    names = enabled_filters(params.filters)
    wide = [n for n in names if n in DATASET_WIDE]
    per_sample = [n for n in names if n not in DATASET_WIDE]
    problem_drops, wide_stats = (problem_filters(params.root, source.ref, params.filters, wide)
                                 if wide else ({}, {}))
    fn = partial(filter_shard, config=params.filters, names=per_sample, problem_drops=problem_drops)
    stats = map_version(store, source, writer, fn, stage="filter")
    stats = merge_stats([stats, wide_stats, {"filters": {"enabled": names}}])
    manifest = writer.commit(stats=stats)
    publish("filter", manifest, stats)
    return manifest.ref
