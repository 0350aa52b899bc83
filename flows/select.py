"""``select``: rejection sampling over a filtered version.

Writes two versions: the selected samples (up to k accepted, not-dropped
samples per problem) and the GRPO prompt set (problems whose pass rate lies
in the band, with their pass rates). Selection is per problem across the
whole version, so it runs as one task: it decides over a projection of the
columns it needs (``datagen.select.decide``), then copies the kept rows shard
by shard in input order — the text is read once, one shard at a time, so
memory stays flat whatever the version's size.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from datagen.config import where
from datagen.select import SelectConfig
from flows.common import StageParams, logger, open_stage, publish


class SelectParams(StageParams):
    root: str | None = where(None)
    input: str = where("filtered")
    output: str = where("selected")
    prompts_output: str = where("grpo-prompts")
    select: SelectConfig = Field(default_factory=SelectConfig)


@task(cache_policy=NO_CACHE)
def select_task(params: SelectParams) -> dict[str, str]:
    from datagen.select import decide

    run = open_stage(params, "select", [params.input])
    writer = run.writer(params.output)
    pwriter = run.writer(params.prompts_output, stage="select-prompts")
    if writer.committed is not None and pwriter.committed is not None:
        logger().info("select: %s already committed; nothing to do", writer.committed.ref)
        return {"selected": writer.committed.ref, "grpo_prompts": pwriter.committed.ref}
    result = decide(run.store.scan(run.source), params.select)
    stats = {"select": result.stats}
    if writer.committed is None:
        write_selected(run.store, run.source, result, writer)
        selected = writer.commit(stats=stats)
    else:
        selected = writer.committed
    if pwriter.committed is None:
        pwriter.write(_rows(result.grpo_prompts))
        prompts = pwriter.commit(stats=stats)
    else:
        prompts = pwriter.committed
    publish("select", selected, stats)
    publish("select-prompts", prompts, {"rows": prompts.rows})
    return {"selected": selected.ref, "grpo_prompts": prompts.ref}


def write_selected(store, source, decision, writer) -> None:
    """Copy the rows ``decision`` keeps from version ``source`` to ``writer``, shard by shard (input order),
    adding ``pass_rate``: one shard in memory at a time."""
    import polars as pl
    import pyarrow as pa

    offset, wrote = 0, False
    for i, shard in enumerate(source.shards):
        rows, rates = decision.rows_of_shard(offset, shard.rows)
        offset += shard.rows
        last = i == len(source.shards) - 1
        if rows.len() == 0 and (wrote or not last):
            continue
        table = store.read_shard(shard.path).take(pa.array(rows.to_numpy()))
        writer.write(pl.from_arrow(table).with_columns(rates.cast(pl.Float64).alias("pass_rate")))
        wrote = True


def _rows(data):
    """Selection results as something the writer takes (polars frame or rows)."""
    if hasattr(data, "collect"):
        data = data.collect()
    return data


@flow(name="select")
def select_flow(params: SelectParams) -> dict[str, str]:
    """Rejection sampling; returns ``{"selected": ref, "grpo_prompts": ref}``."""
    return select_task(params)
