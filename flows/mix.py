"""``mix``: reasoning samples + non-reasoning samples -> an SFT version of chat ``messages``.

Targets default to DeepSeek-R1's 600k reasoning : 200k non-reasoning; with
fewer available, everything available is taken and the shortfall is in the
manifest's stats (never silent). Counts per source and domain go there too.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field

from datagen.mix import MixConfig
from datagen.store import open_store
from flows.common import logger, publish, stage_writer


class MixParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str | None = None
    reasoning: str = "selected"
    #: a version of non-reasoning samples (writing, QA, …); None = reasoning only
    non_reasoning: str | None = None
    output: str = "sft-mix"
    mix: MixConfig = Field(default_factory=MixConfig)


@task(cache_policy=NO_CACHE)
def mix_task(params: MixParams) -> str:
    from datagen.mix import mix

    store = open_store(params.root)
    reasoning = store.resolve(params.reasoning)
    parents = [reasoning]
    non_reasoning = None
    if params.non_reasoning:
        non_reasoning = store.resolve(params.non_reasoning)
        parents.append(non_reasoning)
    config = params.model_dump(mode="json", exclude={"root", "reasoning", "non_reasoning", "output"})
    writer = stage_writer(store, params.output, stage="mix", parents=parents, config=config)
    if writer.committed is not None:
        logger().info("mix: %s already committed; nothing to do", writer.committed.ref)
        return writer.committed.ref
    nr = store.scan(non_reasoning) if non_reasoning is not None else []
    result = mix(store.scan(reasoning), nr, params.mix)
    rows = result.rows.collect() if hasattr(result.rows, "collect") else result.rows
    writer.write(rows)
    stats = {"mix": result.stats}
    manifest = writer.commit(stats=stats)
    publish("mix", manifest, stats)
    return manifest.ref


@flow(name="mix")
def mix_flow(params: MixParams) -> str:
    """Build the SFT mix; returns the ``name@version`` written."""
    return mix_task(params)
