"""What every flow shares: stage parameters in three parts, opening a stage run, per-shard tasks, stats, artifacts.

Flows are a thin shell (STYLE.md, habit 12): the work is plain functions in
``datagen/``, ``filters/``, ``trainers/``; a flow reads a version, runs one
task per shard (never per record: a task run costs ~10–20 ms here), and
commits a new version whose manifest carries the flow run id, the stage
config and the parent versions.

A stage's parameters come in three parts, declared on each field:

- **what it computes** (plain fields): the stage config. Only this goes into
  the run key, hashed canonically (sorted JSON).
- **where** it reads and writes (``where()`` fields, ``datagen.config``): root, input, output.
  The inputs enter the key as the exact parent versions they resolve to.
- **how** it runs (``how()`` fields): workers, batch sizes, fan-out, GPU
  limit. They never change the output, so they never change the key.

Resume: the output version id is keyed by (stage, exact parents, config) —
the run key — so rerunning a flow with the same inputs and config finds the
same version, skips shards whose completion marker exists, and returns at
once if the version was already committed, whatever the run options.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, model_validator

from datagen.config import part_of, what_of
from datagen.store import Manifest, Store, StoreError, VersionWriter, open_store
from datagen.store.manifest import flatten_stats

log = logging.getLogger(__name__)


class StageParams(BaseModel):
    """Base of every stage's parameters (also its Prefect flow parameters)."""

    model_config = ConfigDict(extra="forbid")

    def stage_config(self) -> dict[str, Any]:
        """What the stage computes: every field not marked ``where`` or ``how`` (nested models too)."""
        return what_of(self)

    def run_options(self) -> dict[str, Any]:
        """How the stage runs: the ``how`` fields (recorded, never keyed)."""
        return {k: v for k, v in self.model_dump(mode="json").items() if part_of(type(self), k) == "how"}

    def recorded(self) -> dict[str, Any]:
        """What a manifest records: every parameter but the ``where`` ones (those are its lineage)."""
        return {k: v for k, v in self.model_dump(mode="json").items() if part_of(type(self), k) != "where"}


def canonical_hash(payload: Any) -> str:
    """24 hex digits of sha256 over canonical JSON (sorted keys): the one hash of configs and run keys."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def run_key(stage: str, parents: Sequence[str], config: Mapping[str, Any]) -> str:
    """A stable key for (stage, exact parent versions, config): same key = same output version."""
    return canonical_hash({"stage": stage, "parents": list(parents), "config": config})


# Transient failures worth a task retry: a dropped connection, a timeout, throttling (HTTP 429/5xx).
# Not OSError as a whole: FileNotFoundError and PermissionError are OSErrors and retrying them
# repeats a logic error. S3 is retried with backoff in one place, ``datagen.store.objects``.
TRANSIENT_TYPES: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """True for a failure a retry can cure: connection errors, timeouts, throttling — or one explicitly
    raised from them (``raise … from``). A ``StoreError`` never is: the store already retried its
    transient S3 failures with backoff, so a second layer would only multiply the attempts."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, StoreError):
            return False
        if isinstance(exc, TRANSIENT_TYPES):
            return True
        status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(status, int) and status in TRANSIENT_STATUS:
            return True
        if type(exc).__name__ in ("TimeoutException", "ConnectError", "ReadError", "RemoteProtocolError"):
            return True  # httpx's transport errors (the openai backend), matched by name: no httpx import here
        exc = exc.__cause__  # not __context__: a logic error raised while handling a reset is still one
        seen += 1
    return False


def retry_transient(task_obj, parameters, state) -> bool:
    """``retry_condition_fn`` for tasks: retry only known-transient failures."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classified, not swallowed: the task fails on its own
        return is_transient(exc)
    return False


#: The retry policy of every shard task: transient failures only, bounded.
RETRY = {"retries": 2, "retry_delay_seconds": [1, 5], "retry_condition_fn": retry_transient}


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


@dataclass
class StageRun:
    """An opened stage run: its store, the exact parent versions, and what it computes."""

    store: Store
    stage: str
    params: StageParams
    parents: list[Manifest]
    config: dict[str, Any]

    @property
    def source(self) -> Manifest:
        return self.parents[0]

    def writer(self, dataset: str, *, stage: str | None = None,
               extra_key: Mapping[str, Any] | None = None) -> VersionWriter:
        """The (resumable) writer of one output version; ``writer.committed`` is set if it already exists.

        The manifest records every parameter but where it reads and writes (the run options
        of the run that made it included); the run key only (stage, parents, config, ``extra_key``)."""
        stage = stage or self.stage
        refs = [m.ref for m in self.parents]
        keyed = {**self.config, **(extra_key or {})}
        return self.store.writer(
            dataset,
            stage=stage,
            config={**self.params.recorded(), **(extra_key or {})},
            parents=refs,
            flow_run_id=flow_run_id(),
            run_key=run_key(stage, refs, keyed),
        )

    def done(self, writer: VersionWriter) -> bool:
        """True (and logged) when the version was committed by an earlier run: nothing to do."""
        if writer.committed is None:
            return False
        logger().info("%s: %s already committed; nothing to do", self.stage, writer.committed.ref)
        return True


def open_stage(params: StageParams, stage: str, inputs: Sequence[str]) -> StageRun:
    """Open a stage run: the store at ``params.root``, the parents ``inputs`` resolved to exact versions."""
    store = open_store(getattr(params, "root", None))
    parents = [store.resolve(ref) for ref in inputs]
    return StageRun(store, stage, params, parents, params.stage_config())


def merge_stats(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum nested count dicts (per-shard stats -> stage stats). Non-numbers: last wins.

    Stats are counts so that they add up; a rate is derived from them when shown (``shown``)."""
    out: dict[str, Any] = {}
    for part in parts:
        _merge_into(out, part)
    return out


def _merge_into(out: dict[str, Any], part: Mapping[str, Any]) -> None:
    for k, v in part.items():
        if isinstance(v, Mapping):
            _merge_into(out.setdefault(k, {}), v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(out.get(k), (int, float)):
            out[k] = out[k] + v
        else:
            out[k] = v


def shown(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Stats as shown: counts plus the rates derived from them (``acceptance_rate`` = accepted / decided)."""
    out: dict[str, Any] = {}
    for k, v in stats.items():
        out[k] = shown(v) if isinstance(v, Mapping) else v
    acc, rej = stats.get("accepted"), stats.get("rejected")
    if isinstance(acc, int) and isinstance(rej, int) and "acceptance_rate" not in out:
        out["acceptance_rate"] = round(acc / (acc + rej), 4) if acc + rej else None
    return out


@task(cache_policy=NO_CACHE, task_run_name="{out_dataset}/{shard_name}", **RETRY)
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
    saved = saved_shard_stats(store, writer, shard_name) if writer.shard_done(shard_name) else None
    if saved is not None:
        return saved
    out_rows, stats = fn(store.read_shard(in_path).to_pylist())
    write_shard_with_stats(store, writer, shard_name, out_rows, stats)
    return stats


def _stats_key(writer: VersionWriter, shard_name: str) -> str:
    return f"{writer.dataset}/{writer.version}/stats/{shard_name}.json"


def write_shard_with_stats(store: Store, writer: VersionWriter, shard_name: str, rows: Any,
                           stats: Mapping[str, Any]) -> None:
    """Write a shard's stats, then the shard: its completion marker is the signal that both exist.

    The stats live in the store beside the shard, the one place every worker shares, so a
    rerun (or a fanned-out parent, whose children's return values are not persisted) reads them."""
    store.objects.put_bytes(_stats_key(writer, shard_name), json.dumps(stats).encode())
    writer.write_shard(shard_name, rows)


def saved_shard_stats(store: Store, writer: VersionWriter, shard_name: str) -> dict[str, Any] | None:
    """The stats ``write_shard_with_stats`` saved for a shard, or None when there are none."""
    key = _stats_key(writer, shard_name)
    return json.loads(store.objects.get_bytes(key)) if store.objects.exists(key) else None


class ShardRunner(BaseModel):
    """Where a CPU stage's shard tasks run (a ``how`` parameter: it never changes the output).

    - ``threads``: Prefect's thread pool in the flow's process (the default; the
      GIL-bound filters then use about one core);
    - ``processes``: a local Dask cluster of ``workers`` single-threaded worker
      processes (default: one per CPU), started for the stage and closed after it —
      every core of the worker;
    - ``dask``: an existing Dask cluster at ``address`` (``tcp://host:8786``), so
      the shards spread over the machines its workers run on (each needs this
      package installed and the store root reachable: S3, or a shared path).

    Both Dask kinds go through ``prefect-dask``'s ``DaskTaskRunner``, in a ``shards``
    subflow, so each shard is still a Prefect task run (retries, logs, states)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["threads", "processes", "dask"] = "threads"
    workers: int | None = Field(None, ge=1, description="processes: worker processes (None = one per CPU)")
    address: str | None = Field(None, description="dask: the scheduler's address, e.g. tcp://10.0.0.5:8786")

    @model_validator(mode="after")
    def _address_for_dask(self) -> ShardRunner:
        if self.kind == "dask" and not self.address:
            raise ValueError("runner kind 'dask' needs an address (runner: {kind: dask, address: tcp://HOST:8786}); "
                             "use kind 'processes' for a local cluster")
        if self.kind != "dask" and self.address:
            raise ValueError(f"runner address is only for kind 'dask' (kind is {self.kind!r}); drop it or set kind: dask")
        return self

    def task_runner(self):
        """The Prefect task runner for this choice (None for ``threads``: the flow's own)."""
        if self.kind == "threads":
            return None
        from prefect_dask import DaskTaskRunner

        if self.kind == "dask":
            return DaskTaskRunner(address=self.address)
        import os

        n = self.workers or os.cpu_count() or 1
        # One thread per process: the filters and verifiers hold the GIL, so parallelism is processes.
        return DaskTaskRunner(cluster_kwargs={"n_workers": n, "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None})


def map_version(
    store: Store,
    source: Manifest,
    writer: VersionWriter,
    fn: Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], dict[str, Any]]],
    *,
    stage: str = "stage",
    runner: ShardRunner | None = None,
) -> dict[str, Any]:
    """Run ``fn`` over every shard of ``source`` as one task per shard; merged stats.

    ``runner`` says where the shard tasks run (threads here, local processes, a
    Dask cluster); ``fn`` must then pickle (a module-level function or a
    ``functools.partial`` of one). The merged stats do not depend on the runner."""
    task_runner = runner.task_runner() if runner is not None else None
    if task_runner is None:
        return _map_shards(store.root, source, writer.dataset, writer.version, fn, stage)
    from prefect import flow

    shards = flow(_map_shards, name=f"{stage}-shards", task_runner=task_runner, log_prints=False)
    with _shared_api():
        return shards(store.root, source, writer.dataset, writer.version, fn, stage)


def _shared_api():
    """Shard runs in other processes must report to this run's API. With a ``PREFECT_API_URL`` they
    do already (it travels with the task's settings); in an ad-hoc run on the ephemeral server
    each worker process would start a server of its own (slow, and its runs invisible here), so
    the settings name this process's ephemeral server (a per-process singleton, started by now)."""
    import contextlib

    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        return contextlib.nullcontext()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()  # a no-op when the flow's client started it
    return temporary_settings(updates={PREFECT_API_URL: server.api_url})


def _map_shards(root: str, source: Manifest, dataset: str, version: str, fn, stage: str) -> dict[str, Any]:
    """Submit one ``map_shard`` task per shard to the current task runner; merged stats."""
    from prefect.futures import as_completed

    from flows.progress import report

    futures = [
        map_shard.submit(root, shard.path, dataset, version, f"part-{i:05d}", fn)
        for i, shard in enumerate(source.shards)
    ]
    total = len(futures)
    report(stage, 0, total)
    results = []
    for done, fut in enumerate(as_completed(futures), 1):
        results.append(fut.result())
        report(stage, done, total)
    return merge_stats(results)


def gpu_slot(enabled: bool):
    """A slot of the global concurrency limit ``gpu`` while the block runs (or nothing when disabled)."""
    import contextlib

    if not enabled:
        return contextlib.nullcontext()
    from prefect.concurrency.sync import concurrency

    return concurrency("gpu", occupy=1, strict=False)


def publish(stage: str, manifest: Manifest, stats: Mapping[str, Any], *, store: Store | None = None) -> None:
    """Prefect artifacts for a stage: the version written (full location, a viewer
    link when ``$DATAGEN_VIEWER_URL`` names a ``datagen datasets serve``, its
    plots) and its statistics, rounded. ``store`` defaults to the run's root."""
    try:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact
        from prefect.context import get_run_context

        get_run_context()
    except Exception:  # noqa: BLE001 - not in a run: nothing to publish to
        return
    from datagen.store.card import format_value, version_markdown

    store = store or open_store(_run_root())
    viewer = viewer_url()
    flat = flatten_stats(shown(stats))
    key = f"{stage}-{manifest.dataset}".lower().replace("_", "-")
    create_table_artifact(
        table=[{"statistic": k, "value": format_value(v)} for k, v in flat.items()]
        or [{"statistic": "rows", "value": format_value(manifest.rows)}],
        key=key[:100],
        description=f"{stage}: statistics of {manifest.ref} ({manifest.rows:,} rows)",
    )
    create_markdown_artifact(
        markdown=f"**{stage}** wrote\n\n" + version_markdown(
            manifest, store.objects.uri(f"{manifest.dataset}/{manifest.id}"), viewer_url=viewer,
            plots=_plot_sources(store, manifest, viewer)),
        key=f"{key}-version"[:100],
        description=f"{stage}: the version it wrote, {manifest.ref}",
    )


def publish_rollup(root: str | None, versions: Mapping[str, str]) -> None:
    """The pipeline run's artifact: every version it wrote (``{stage: ref}``), with locations."""
    try:
        from prefect.artifacts import create_markdown_artifact
        from prefect.context import get_run_context

        get_run_context()
    except Exception:  # noqa: BLE001 - not in a run
        return
    from datagen.store.card import rollup_markdown

    store = open_store(root)
    rows = []
    for stage, ref in versions.items():
        m = store.resolve(ref)
        rows.append((stage, m, store.objects.uri(f"{m.dataset}/{m.id}")))
    create_markdown_artifact(markdown=rollup_markdown(rows, viewer_url=viewer_url()), key="pipeline-versions",
                             description=f"every version this pipeline run wrote, in {store.root}")


def viewer_url() -> str | None:
    """``$DATAGEN_VIEWER_URL``: where a ``datagen datasets serve`` of the same root answers (for links)."""
    import os

    return os.environ.get("DATAGEN_VIEWER_URL") or None


def _run_root() -> str | None:
    """The store root of the current flow run (its ``params.root``), else the default root."""
    try:
        from prefect.runtime import flow_run

        params = flow_run.parameters.get("params") or {}
        return params.get("root") if isinstance(params, Mapping) else getattr(params, "root", None)
    except Exception:  # noqa: BLE001 - outside a flow run
        return None


def _plot_sources(store: Store, manifest: Manifest, viewer: str | None, max_bytes: int = 400_000):
    """(title, src) of the version's plots: viewer URLs, else ``data:`` URIs up to ``max_bytes`` in all."""
    import base64

    from datagen.store.card import viewer_link

    keys = [k for k in store.objects.list_keys(f"{manifest.dataset}/{manifest.id}/plots") if k.endswith(".png")]
    out, used = [], 0
    for key in keys:
        name = key.rsplit("/", 1)[1][: -len(".png")]
        title = name.replace("_", " ")
        if viewer:
            out.append((title, f"{viewer_link(viewer, manifest.ref)}plots/{name}.png"))
            continue
        data = store.objects.get_bytes(key)
        used += len(data)
        if used > max_bytes:
            break
        out.append((title, "data:image/png;base64," + base64.b64encode(data).decode()))
    return out


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
