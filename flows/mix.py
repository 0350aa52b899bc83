"""``mix``: reasoning samples + non-reasoning samples -> an SFT version of chat ``messages``.

Targets default to DeepSeek-R1's 600k reasoning : 200k non-reasoning; with
fewer available, everything available is taken and the shortfall is in the
manifest's stats (never silent). Counts per source and domain go there too.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field, field_validator

from datagen.config import how, where
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
    #: rows read and turned into conversations at once; memory grows with it, never with the versions' size
    batch_rows: int = how(4096, ge=1)
    #: rows of one shuffle bucket (sorted in memory as Arrow, then written)
    bucket_rows: int = how(20_000, ge=1)
    #: local folder for the shuffle's spill files (None = the system's temporary folder)
    spill_dir: str | None = how(None)

    @field_validator("non_reasoning", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [] if value is None else [value] if isinstance(value, str) else value


@task(cache_policy=NO_CACHE)
def mix_task(params: MixParams) -> str:
    from datagen.mix import mix_streaming

    run = open_stage(params, "mix", [params.reasoning, *params.non_reasoning])
    writer = run.writer(params.output)
    if run.done(writer):
        return writer.committed.ref
    import tempfile

    reasoning, *non_reasoning = run.parents
    # Each version read batch by batch (the non-reasoning ones differ in their columns: samples,
    # imported chats, references); mix_streaming reads each twice and spills its shuffle to disk.
    sources = [("reasoning", _batches(run.store, reasoning, params.batch_rows))]
    sources += [("non_reasoning", _batches(run.store, m, params.batch_rows)) for m in non_reasoning]
    with tempfile.TemporaryDirectory(prefix="datagen-mix-", dir=params.spill_dir) as spill:
        mix_stats = mix_streaming(sources, writer.write, params.mix, spill_dir=spill,
                                  bucket_rows=params.bucket_rows)
    stats = {"mix": mix_stats}
    manifest = writer.commit(stats=stats)
    publish("mix", manifest, stats)
    return manifest.ref


def _batches(store, manifest, batch_rows: int):
    """A callable yielding the version's rows as frames of up to ``batch_rows``, shard by shard, same order each call."""
    def batches():
        import polars as pl
        import pyarrow.parquet as pq

        for shard in manifest.shards:
            with store._open(shard.path) as fh:
                for batch in pq.ParquetFile(fh).iter_batches(batch_size=batch_rows):
                    yield pl.from_arrow(batch)
    return batches


@flow(name="mix")
def mix_flow(params: MixParams) -> str:
    """Build the SFT mix; returns the ``name@version`` written."""
    return mix_task(params)
