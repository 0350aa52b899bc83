"""``tokenize``: an SFT version of chat ``messages`` -> a version of token ids and assistant masks.

Tokenise once, as a stage (issue 18): the chat template renders each row, the
tokens in the loss (assistant content and its end-of-turn token) are marked,
and the result is a dataset version like any other (local or S3): columns
``input_ids``, ``assistant_mask``, ``n_tokens`` beside the rows' ids
(``trainers.tokenize.tokenize_batch``). Its manifest's config records the chat
template's name and sha256, the tokenizer's sha256 and ``max_length``.

Cached by that hash: the run key is (input version, ``max_length``,
``truncate``, template and tokenizer hashes) — not the tokenizer's path — so
the same messages tokenised by the same tokenizer and template resolve to the
version already committed, and a changed template makes a new one.

One task per input shard, streaming it a record batch at a time into output
shards of at most ``shard_tokens`` tokens (``part-<input>-<k>``), so memory
stays bounded by those, whatever the version's size; a shard's stats object,
written after its last output shard, marks it done for a resumed run. The
``sft`` flow runs this first when its input holds messages, and trains from
the version memory-mapped (``trainers.tokenize.materialize_version``).
"""

from __future__ import annotations

import functools
import json
from typing import Any, Literal

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from datagen.config import how, where
from datagen.store import Manifest, Store, open_store
from flows.common import RETRY, ShardRunner, StageParams, flow_run_id, logger, open_stage, publish, run_key


class TokenizeParams(StageParams):
    root: str | None = where(None)
    input: str = where("sft-mix")
    output: str | None = where(None, description="dataset to write; None = '<input dataset>-tokens'")
    # Where the tokenizer is read from, like input: it enters the run key by what it is (the
    # hashes of its vocabulary and chat template), not by its path.
    tokenizer: str = where(..., description="tokenizer and chat template: a model dir, NAME@VERSION of a model "
                           "in model_store, or a hub id (SFT's sft.model)")
    model_store: str | None = where(None, description="store root for a NAME@VERSION tokenizer")
    max_length: int = Field(2048, ge=8, description="samples longer than this are dropped (counted) or fail")
    truncate: Literal["drop", "error"] = "drop"
    #: rows tokenised at once; memory grows with it, never with the version's size
    batch_rows: int = how(1024, ge=1)
    #: tokens per output shard: ~5 bytes each held, ~4x that while Parquet encodes the shard
    shard_tokens: int = how(4_000_000, ge=1)
    runner: ShardRunner = how(ShardRunner())
    #: shard tasks running at once; None = 2 on threads (the GIL: more buys little and each holds a
    #: shard's buffers, a few hundred MB), every shard on processes/dask (one per worker process)
    shards_in_flight: int | None = how(None, ge=1)


@functools.lru_cache(maxsize=4)
def _tokenizer(ref: str, model_store: str | None):
    """One load per worker process and tokenizer (a shard task runs many times in one)."""
    from trainers.tokenize import load_tokenizer

    return load_tokenizer(ref, model_store)


def _stats_key(dataset: str, version: str, index: int) -> str:
    return f"{dataset}/{version}/stats/part-{index:05d}.json"


def tokenize_shard_rows(store: Store, in_path: str, dataset: str, version: str, index: int, tokenizer, *,
                        max_length: int, truncate: str, batch_rows: int, shard_tokens: int) -> dict[str, Any]:
    """Input shard ``in_path`` -> output shards ``part-<index>-<k>`` of version ``version``;
    its stats (``trainers.tokenize.tokenize_batch``'s, summed; ``longest`` the max). Plain
    function (no Prefect): the task below wraps it, the benchmark calls it.

    Skips a shard whose stats object exists (finished by an earlier run); otherwise first
    removes markers an interrupted run left for it (their boundaries may differ)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trainers.tokenize import ID_COLUMNS, tokenize_batch

    key = _stats_key(dataset, version, index)
    if store.objects.exists(key):
        return json.loads(store.objects.get_bytes(key))
    writer = store.writer(dataset, stage="_task", version=version)
    for stale in store.objects.list_keys(f"{dataset}/{version}/markers"):
        if stale.rsplit("/", 1)[-1].startswith(f"part-{index:05d}-"):
            store.objects.delete(stale)
    stats = {"rows_in": 0, "samples": 0, "tokens": 0, "dropped_too_long": 0, "longest": 0}
    held: list[pa.Table] = []
    held_tokens, part = 0, 0

    def flush() -> None:
        nonlocal held_tokens, part
        if held:
            writer.write_shard(f"part-{index:05d}-{part:04d}", pa.concat_tables(held))
            part += 1
            held.clear()
            held_tokens = 0

    with store._open(in_path) as fh:
        pf = pq.ParquetFile(fh)
        cols = [c for c in ("messages", *ID_COLUMNS) if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
            table, st = tokenize_batch(batch, tokenizer, max_length=max_length, truncate=truncate)
            for k in ("rows_in", "samples", "tokens", "dropped_too_long"):
                stats[k] += st[k]
            stats["longest"] = max(stats["longest"], st["longest"])
            if table.num_rows:
                held.append(table)
                held_tokens += st["tokens"]
            if held_tokens >= shard_tokens:
                flush()
    flush()
    store.objects.put_bytes(key, json.dumps(stats).encode())  # last: the shard is done
    return stats


@task(cache_policy=NO_CACHE, task_run_name="{dataset}/part-{index:05d}", **RETRY)
def tokenize_shard(root: str, in_path: str, dataset: str, version: str, index: int, params: TokenizeParams
                   ) -> dict[str, Any]:
    return tokenize_shard_rows(open_store(root), in_path, dataset, version, index,
                               _tokenizer(params.tokenizer, params.model_store), max_length=params.max_length,
                               truncate=params.truncate, batch_rows=params.batch_rows,
                               shard_tokens=params.shard_tokens)


def _tokenize_shards(root: str, source: Manifest, dataset: str, version: str, params: TokenizeParams
                     ) -> dict[str, Any]:
    """One ``tokenize_shard`` task per input shard on the current task runner, at most
    ``shards_in_flight`` at once (memory is per shard in flight); merged stats."""
    from prefect.futures import as_completed

    from flows.progress import report

    shards = list(enumerate(source.shards))
    window = params.shards_in_flight or (2 if params.runner.kind == "threads" else len(shards))
    pending: set = set()

    def submit_next() -> None:
        if shards:
            i, s = shards.pop(0)
            pending.add(tokenize_shard.submit(root, s.path, dataset, version, i, params))

    n = len(shards)
    for _ in range(window):
        submit_next()
    report("tokenize", 0, n)
    total = {"rows_in": 0, "samples": 0, "tokens": 0, "dropped_too_long": 0, "longest": 0}
    done = 0
    while pending:
        fut = next(iter(as_completed(pending)))
        pending.remove(fut)
        st = fut.result()
        submit_next()
        for k, v in total.items():
            total[k] = max(v, st[k]) if k == "longest" else v + st[k]
        done += 1
        report("tokenize", done, n)
    return total


@task(cache_policy=NO_CACHE)
def tokenize_task(params: TokenizeParams) -> str:
    from trainers.tokenize import FORMAT, template_fingerprint

    run = open_stage(params, "tokenize", [params.input])
    names = {c["name"] for c in run.source.schema_}
    if "messages" not in names:
        raise ValueError(f"{run.source.ref} has no 'messages' column (columns {sorted(names)}); tokenize takes "
                         "an SFT version of chat messages, e.g. the mix stage's output")
    fp = template_fingerprint(_tokenizer(params.tokenizer, params.model_store))
    refs = [m.ref for m in run.parents]
    keyed = {**run.config, "format": FORMAT, "template_sha256": fp["template_sha256"],
             "tokenizer_sha256": fp["tokenizer_sha256"]}
    writer = run.store.writer(params.output or f"{run.source.dataset}-tokens", stage="tokenize",
                              config={**params.recorded(), "tokenizer": params.tokenizer, **fp, "format": FORMAT},
                              parents=refs,
                              flow_run_id=flow_run_id(), run_key=run_key("tokenize", refs, keyed))
    if run.done(writer):
        return writer.committed.ref
    task_runner = params.runner.task_runner()
    if task_runner is None:
        totals = _tokenize_shards(run.store.root, run.source, writer.dataset, writer.version, params)
    else:
        from flows.common import _shared_api

        shards = flow(_tokenize_shards, name="tokenize-shards", task_runner=task_runner, log_prints=False)
        with _shared_api():
            totals = shards(run.store.root, run.source, writer.dataset, writer.version, params)
    if not totals["samples"]:
        raise ValueError(f"{run.source.ref}: no sample fits max_length={params.max_length} "
                         f"({totals['dropped_too_long']} of {totals['rows_in']} too long); raise max_length")
    if totals["dropped_too_long"]:
        logger().warning("tokenize: dropped %d of %d rows longer than max_length=%d", totals["dropped_too_long"],
                         totals["rows_in"], params.max_length)
    stats = {"tokenize": totals}
    manifest = writer.commit(stats=stats)
    publish("tokenize", manifest, stats)
    return manifest.ref


@flow(name="tokenize")
def tokenize_flow(params: TokenizeParams) -> str:
    """Tokenise an SFT version once for a tokenizer and chat template; returns the ``name@version`` (an
    existing one when this data, template and ``max_length`` were tokenised before)."""
    return tokenize_task(params)
