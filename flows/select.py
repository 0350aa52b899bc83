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
from pydantic import BaseModel, ConfigDict, Field

from datagen.select import SelectConfig
from datagen.store import open_store
from flows.common import logger, publish, stage_writer


class SelectParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str | None = None
    input: str = "filtered"
    output: str = "selected"
    prompts_output: str = "grpo-prompts"
    select: SelectConfig = Field(default_factory=SelectConfig)


@task(cache_policy=NO_CACHE)
def select_task(params: SelectParams) -> dict[str, str]:
    from datagen.select import select

    store = open_store(params.root)
    source = store.resolve(params.input)
    config = params.model_dump(mode="json", exclude={"root", "input", "output", "prompts_output"})
    writer = stage_writer(store, params.output, stage="select", parents=[source], config=config)
    pwriter = stage_writer(store, params.prompts_output, stage="select-prompts", parents=[source], config=config)
    if writer.committed is not None and pwriter.committed is not None:
        logger().info("select: %s already committed; nothing to do", writer.committed.ref)
        return {"selected": writer.committed.ref, "grpo_prompts": pwriter.committed.ref}
    result = select(store.scan(source), params.select)
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
