"""``generate``: a problems version -> a generations version, n samples per problem.

The problems are cut into deterministic shards (``datagen.generate.stage.plan_shards``:
names from the problem ids and the config fingerprint). Each shard is one unit
of work, done one of two ways:

- in this flow run, one task per shard (the default; a worker with a GPU
  runs them under the global concurrency limit ``gpu``);
- fanned out across machines (``fan_out: true``): one run of the shard-level
  deployment ``generate-shard/<name>`` per shard on the ``gpu`` work pool, so
  N workers on N GPU boxes work on N shards at once.

Either way a shard is written with its completion marker into the output
version, a rerun skips finished shards, and this (parent) flow commits one
version when all shards are done.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field

from datagen.config import how, where
from datagen.generate.config import GenerateConfig
from datagen.store import open_store
from flows.common import (
    RETRY,
    StageParams,
    gpu_slot,
    merge_stats,
    open_stage,
    publish,
    saved_shard_stats,
    write_shard_with_stats,
)

_BACKENDS: dict[str, Any] = {}
_BACKENDS_LOCK = threading.Lock()


class GenerateParams(StageParams):
    root: str | None = where(None)
    input: str = where("problems")
    output: str = where("generations")
    generation: GenerateConfig
    #: problems per shard (one task / one deployment run each); shard names depend on it
    shard_size: int = Field(64, ge=1)
    #: only problems of these domains (None = all)
    domains: list[str] | None = None
    #: run each shard as a run of the shard deployment (scale-out across workers)
    fan_out: bool = how(False)
    shard_deployment: str = how("generate-shard/generate-shard-gpu")
    #: occupy a slot of the global concurrency limit ``gpu`` while generating
    gpu_limit: bool = how(True)

    def stage_config(self) -> dict[str, Any]:
        """What generation computes: ``GenerateConfig.fingerprint`` (the model, sampling, prompt, n, k,
        seed — not the backend's throughput knobs such as batch sizes), the shard size and the domains."""
        return {"generation": self.generation.fingerprint(), "shard_size": self.shard_size, "domains": self.domains}


class ShardParams(BaseModel):
    """Parameters of one shard (the shard-level deployment's parameters)."""

    model_config = ConfigDict(extra="forbid")

    root: str | None = None
    output: str
    version: str
    shard_name: str
    generation: GenerateConfig
    problems: list[dict[str, Any]]
    gpu_limit: bool = True


def backend_for(config: GenerateConfig):
    """One backend (loaded model) per worker process and backend config."""
    from datagen.generate.backends import make_backend

    key = config.backend.model_dump_json()
    with _BACKENDS_LOCK:
        if key not in _BACKENDS:
            _BACKENDS[key] = make_backend(config.backend)
        return _BACKENDS[key]


def run_shard(params: ShardParams) -> dict[str, Any]:
    """Generate one shard into the output version unless it is already done; its stats."""
    from datagen.generate.stage import generate_checked

    store = open_store(params.root)
    writer = store.writer(params.output, stage="_shard", version=params.version)
    if writer.shard_done(params.shard_name):
        info = writer.shard_info(params.shard_name)
        return {"shards_skipped": 1, "samples": info.rows}
    with gpu_slot(params.gpu_limit):
        # Raises GenerationFailed (naming the endpoint) when too many samples failed:
        # the task retries it if transient, and a failed shard is never written.
        rows, gen_stats = generate_checked(params.problems, backend_for(params.generation), params.generation,
                                           shard_name=params.shard_name)
    stats = {"shards_generated": 1, **gen_stats}
    write_shard_with_stats(store, writer, params.shard_name, rows, stats)
    return stats


@task(cache_policy=NO_CACHE, task_run_name="generate {params.shard_name}", **RETRY)
def generate_shard_task(params: ShardParams) -> dict[str, Any]:
    return run_shard(params)


def uses_gpu(config: GenerateConfig) -> bool:
    """Whether this process's shard tasks run on a GPU, so the ``gpu`` tag (and any
    tag concurrency limit on it) is true: vLLM always, hf on a CUDA device (or
    ``auto`` with one present); an OpenAI-compatible backend's GPU is the server's."""
    backend = config.backend
    if backend.kind == "vllm":
        return True
    if backend.kind == "hf":
        if str(backend.device).startswith("cuda"):
            return True
        if backend.device == "auto":
            try:
                import torch
            except ImportError:
                return False
            return torch.cuda.is_available()
    return False


@flow(name="generate-shard")
def generate_shard_flow(params: ShardParams) -> dict[str, Any]:
    """One shard as its own flow run (the unit the ``gpu`` pool's workers pick up)."""
    return run_shard(params)


def _via_deployment(name: str, params: ShardParams) -> dict[str, Any]:
    from prefect.deployments import run_deployment

    store = open_store(params.root)
    writer = store.writer(params.output, stage="_shard", version=params.version)
    if writer.shard_done(params.shard_name):  # resume without paying for a flow run
        return {"shards_skipped": 1, "samples": writer.shard_info(params.shard_name).rows}
    run = run_deployment(name, parameters={"params": json.loads(params.model_dump_json())}, timeout=None,
                         poll_interval=2, as_subflow=True)
    if not run.state or not run.state.is_completed():
        raise RuntimeError(f"shard {params.shard_name}: deployment run {run.id} ended {run.state}")
    # The child's return value is not persisted (it would live on the worker's disk);
    # its stats are in the store, beside the shard it wrote.
    stats = saved_shard_stats(store, writer, params.shard_name)
    if stats is None:
        raise RuntimeError(f"shard {params.shard_name}: deployment run {run.id} completed without its stats")
    return stats


@flow(name="generate")
def generate_flow(params: GenerateParams) -> str:
    """Generate n samples per problem of ``input``; returns the ``name@version`` written."""
    from datagen.generate.stage import plan_shards
    from flows.progress import report

    run = open_stage(params, "generate", [params.input])
    store = run.store
    writer = run.writer(params.output)
    if run.done(writer):
        return writer.committed.ref
    lf = store.scan(run.source)
    if params.domains:
        import polars as pl

        lf = lf.filter(pl.col("domain").is_in(params.domains))
    problems = lf.collect().to_dicts()
    shards = plan_shards(problems, params.generation, params.shard_size)
    shard_params = [
        ShardParams(root=store.root, output=writer.dataset, version=writer.version, shard_name=s.name,
                    generation=params.generation, problems=s.problems, gpu_limit=params.gpu_limit)
        for s in shards
    ]
    report("generate", 0, len(shards))
    results = []
    if params.fan_out:
        with ThreadPoolExecutor(max_workers=max(1, min(32, len(shards)))) as pool:
            for done, stats in enumerate(pool.map(lambda p: _via_deployment(params.shard_deployment, p),
                                                  shard_params), 1):
                results.append(stats)
                report("generate", done, len(shards))
    else:
        from prefect.futures import as_completed

        shard_task = generate_shard_task.with_options(tags=["gpu"] if uses_gpu(params.generation) else [])
        futures = [shard_task.submit(p) for p in shard_params]
        for done, fut in enumerate(as_completed(futures), 1):
            results.append(fut.result())
            report("generate", done, len(shards))
    from datagen.generate.stage import finish_stats

    stats = {"generate": finish_stats(merge_stats(results), params.generation)}  # shares + warnings; all-errors raises
    stats["generate"]["n"] = params.generation.n
    manifest = writer.commit(stats=stats)
    publish("generate", manifest, stats)
    return manifest.ref
