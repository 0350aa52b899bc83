"""What every flow shares: the store handle, run keys, per-shard tasks, stats, artifacts.

Flows are a thin shell (STYLE.md, habit 12): the work is plain functions in
``datagen/``, ``filters/``, ``trainers/``; a flow reads a version, runs one
task per shard (never per record: a task run costs ~10–20 ms here), and
commits a new version whose manifest carries the flow run id, the stage
config and the parent versions.

Resume: a stage's output version id is keyed by a hash of (stage, parents,
config) — the run key — so rerunning a flow with the same inputs and config
finds the same version, skips shards whose completion marker exists, and
returns at once if the version was already committed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from datagen.store import Manifest, Store, VersionWriter, open_store
from datagen.store.manifest import flatten_stats

log = logging.getLogger(__name__)

# Transient failures worth a task retry: storage hiccups, not logic errors.
TRANSIENT = (ConnectionError, TimeoutError, OSError)


def retry_transient(task_obj, parameters, state) -> bool:
    """``retry_condition_fn`` for tasks: retry only known-transient failures."""
    try:
        state.result()
    except TRANSIENT:
        return True
    except Exception:  # noqa: BLE001 - a logic error: do not retry
        return False
    return False


def flow_run_id() -> str | None:
    """The current Prefect flow run id, or None outside a flow."""
    try:
        from prefect.runtime import flow_run

        rid = flow_run.id
        return str(rid) if rid else None
    except Exception:  # noqa: BLE001
        return None


def logger():
    try:
        return get_run_logger()
    except Exception:  # noqa: BLE001 - outside a run context
        return log


def run_key(stage: str, parents: Sequence[str], config: Mapping[str, Any]) -> str:
    """A stable key for (stage, exact parent versions, config): same key = same output version."""
    payload = json.dumps({"stage": stage, "parents": list(parents), "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def stage_writer(
    store: Store, dataset: str, *, stage: str, parents: Sequence[Manifest], config: Mapping[str, Any]
) -> VersionWriter:
    """The (resumable) writer of a stage's output version."""
    parent_refs = [m.ref for m in parents]
    return store.writer(
        dataset,
        stage=stage,
        config=dict(config),
        parents=parent_refs,
        flow_run_id=flow_run_id(),
        run_key=run_key(stage, parent_refs, config),
    )


def merge_stats(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum nested count dicts (per-shard stats -> stage stats). Non-numbers: last wins;
    ``*_rate`` keys become None (a ratio does not add up; recompute it from the counts)."""
    out: dict[str, Any] = {}
    for part in parts:
        _merge_into(out, part)
    return out


def _merge_into(out: dict[str, Any], part: Mapping[str, Any]) -> None:
    for k, v in part.items():
        if k.endswith("_rate"):
            out[k] = None  # a ratio does not add up across shards: the caller recomputes it
        elif isinstance(v, Mapping):
            _merge_into(out.setdefault(k, {}), v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(out.get(k), (int, float)):
            out[k] = out[k] + v
        else:
            out[k] = v


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_transient)
def map_shard(
    root: str,
    in_path: str,
    out_dataset: str,
    out_version: str,
    shard_name: str,
    fn: Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], dict[str, Any]]],
) -> dict[str, Any]:
    """One input shard -> one output shard through a plain function ``fn(rows) -> (rows, stats)``.

    Skips (returns the saved stats of) a shard finished by an earlier run.
    """
    store = open_store(root)
    writer = store.writer(out_dataset, stage="_task", version=out_version)
    stats_key = f"{out_dataset}/{out_version}/stats/{shard_name}.json"
    if writer.shard_done(shard_name) and store.objects.exists(stats_key):
        return json.loads(store.objects.get_bytes(stats_key))
    rows = store.read_shard(in_path).to_pylist()
    out_rows, stats = fn(rows)
    # Stats first, then the shard (its marker is the completion signal).
    store.objects.put_bytes(stats_key, json.dumps(stats).encode())
    writer.write_shard(shard_name, out_rows)
    return stats


def map_version(
    store: Store,
    source: Manifest,
    writer: VersionWriter,
    fn: Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], dict[str, Any]]],
    *,
    stage: str = "stage",
) -> dict[str, Any]:
    """Run ``fn`` over every shard of ``source`` as one task per shard; merged stats."""
    from prefect.futures import as_completed

    from flows.progress import report

    futures = [
        map_shard.submit(store.root, shard.path, writer.dataset, writer.version, f"part-{i:05d}", fn)
        for i, shard in enumerate(source.shards)
    ]
    total = len(futures)
    report(stage, 0, total)
    results = []
    for done, fut in enumerate(as_completed(futures), 1):
        results.append(fut.result())
        report(stage, done, total)
    return merge_stats(results)


def publish(stage: str, manifest: Manifest, stats: Mapping[str, Any]) -> None:
    """Prefect artifacts for a stage: the version written and its statistics."""
    try:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact
        from prefect.context import get_run_context

        get_run_context()
    except Exception:  # noqa: BLE001 - not in a run: nothing to publish to
        return
    flat = flatten_stats(stats)
    key = f"{stage}-{manifest.dataset}".lower().replace("_", "-")
    create_table_artifact(
        table=[{"statistic": k, "value": v} for k, v in flat.items()] or [{"statistic": "rows", "value": manifest.rows}],
        key=key[:100],
        description=f"{stage}: {manifest.ref} ({manifest.rows:,} rows)",
    )
    create_markdown_artifact(
        markdown=f"**{stage}** wrote `{manifest.ref}` — {manifest.rows:,} rows, {len(manifest.shards)} shards; "
        f"parents: {', '.join(str(p) for p in manifest.parents) or '-'}",
        key=f"{key}-version"[:100],
    )


def ad_hoc_run_settings():
    """Prefect settings for an ad-hoc run in this process (CLI, demo, benchmarks).

    With no ``PREFECT_API_URL`` the run goes to a temporary server that dies
    with the process, so flow-run heartbeats (for a server to spot crashed
    runs on workers) serve nothing — and Prefect 3.8's heartbeat thread costs
    ~1 s at the end of *every* flow run (it sleeps in 1 s steps and is joined
    on exit), i.e. 8+ s of a pipeline. They are turned off there; against a
    real server (workers, deployments) they stay on.
    """
    import contextlib
    import os

    if os.environ.get("PREFECT_API_URL"):
        return contextlib.nullcontext()
    import prefect.settings as ps
    from prefect.settings import temporary_settings

    return temporary_settings(updates={ps.PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
