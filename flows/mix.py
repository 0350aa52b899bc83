"""``mix``: reasoning samples + non-reasoning samples -> an SFT version of chat ``messages``.

Targets default to DeepSeek-R1's 600k reasoning : 200k non-reasoning; with
fewer available, everything available is taken and the shortfall is in the
manifest's stats (never silent). Counts per source and domain go there too.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field, field_validator

from datagen.config import where
from datagen.mix import MixConfig
from flows.common import StageParams, open_stage, publish


class MixParams(StageParams):
    root: str | None = where(None)
    reasoning: str = where("selected")
    #: versions of non-reasoning samples (verified general samples, imported chats, reference answers);
    #: empty = reasoning only. One version may be given as a string.
    non_reasoning: list[str] = where([])  # pydantic copies the default per instance
    output: str = where("sft-mix")
    mix: MixConfig = Field(default_factory=MixConfig)

    @field_validator("non_reasoning", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [] if value is None else [value] if isinstance(value, str) else value


@task(cache_policy=NO_CACHE)
def mix_task(params: MixParams) -> str:
    from datagen.mix import mix

    run = open_stage(params, "mix", [params.reasoning, *params.non_reasoning])
    writer = run.writer(params.output)
    if run.done(writer):
        return writer.committed.ref
    reasoning, *non_reasoning = run.parents
    import polars as pl

    # The non-reasoning versions differ in their columns (samples, imported chats, references).
    nr = pl.concat([run.store.scan(m).collect() for m in non_reasoning], how="diagonal_relaxed") \
        if non_reasoning else []
    result = mix(run.store.scan(reasoning), nr, params.mix)
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
