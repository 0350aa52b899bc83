"""``select``: rejection sampling over a filtered version.

Writes two versions: the selected samples (up to k accepted, not-dropped
samples per problem) and the GRPO prompt set (problems whose pass rate lies
in the band, with their pass rates). Selection is per problem across the
whole version, so it runs as one task over a projection of the columns it
needs — the text columns are read only for the rows kept.
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
    from datagen.select import select

    run = open_stage(params, "select", [params.input])
    writer = run.writer(params.output)
    pwriter = run.writer(params.prompts_output, stage="select-prompts")
    if writer.committed is not None and pwriter.committed is not None:
        logger().info("select: %s already committed; nothing to do", writer.committed.ref)
        return {"selected": writer.committed.ref, "grpo_prompts": pwriter.committed.ref}
    result = select(run.store.scan(run.source), params.select)
    stats = {"select": result.stats}
    if writer.committed is None:
        writer.write(_rows(result.selected))
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


def _rows(data):
    """Selection results as something the writer takes (polars frame or rows)."""
    if hasattr(data, "collect"):
        data = data.collect()
    return data


@flow(name="select")
def select_flow(params: SelectParams) -> dict[str, str]:
    """Rejection sampling; returns ``{"selected": ref, "grpo_prompts": ref}``."""
    return select_task(params)
