"""The deployments of this repository, declared in code: ``python -m flows.deploy``.

This module is the one source of truth for what runs where (there is no
``prefect.yaml`` beside it):

- ``pipeline/pipeline-nightly``: the whole pipeline on a cron schedule, on the
  ``cpu`` work pool, with its parameters from ``configs/pipeline.yaml``
  (validated with ``datagen.config.load`` before anything is registered). Its
  stages run inside that flow run; GPU work leaves it only through the
  generate stage's fan-out (below).
- stage flows on demand (no schedule): ``ingest``, ``verify``, ``filter``,
  ``select``, ``mix`` on ``cpu``; ``generate``, ``sft``, ``grpo`` on ``gpu``.
- ``generate/generate-fanout`` on ``cpu``: a generate run whose only job is
  to coordinate (``fan_out: true``). The coordinator waits for its shards;
  on the ``gpu`` pool it would hold a GPU worker's only slot while waiting —
  with one GPU worker, forever.
- ``generate-shard/generate-shard-gpu`` on ``gpu``: one shard of a generate
  run — what ``generate_flow`` with ``fan_out: true`` launches per shard
  (``run_deployment``), so N GPU workers work on N shards at once.

``apply`` also creates what the deployments need on the server: the two work
pools (type ``process``) if missing, and the global concurrency limit ``gpu``
(its limit = how many GPUs Prefect work may occupy at once, i.e. the number of
GPU workers), which the GPU stages take a slot of.

Where the code comes from: without ``--source`` a deployment names its flow
by module path (``flows.generate.generate_shard_flow``) and a worker imports
it from the installed package (``pip install -e .`` on every worker box);
with ``--source DIR_OR_GIT_URL`` a worker pulls the code from there before each
run (a folder it can read, or a git repository it clones).

Without ``--apply`` nothing is registered: the plan is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PIPELINE_CONFIG = REPO / "configs" / "pipeline.yaml"
DEFAULT_CRON = "0 2 * * *"
GPU_LIMIT_NAME = "gpu"  # the name flows/generate.py and flows/train.py take slots of


@dataclasses.dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: which flow, on which pool, when, with which default parameters."""

    flow_name: str  # the Prefect flow name (``@flow(name=...)``)
    name: str  # the deployment name; runs are addressed as ``flow_name/name``
    entrypoint: str  # ``path/to/file.py:function`` relative to the repository root
    pool: str
    description: str
    cron: str | None = None
    timezone: str = "UTC"
    parameters: dict[str, Any] | None = None
    tags: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    @property
    def module_path(self) -> str:
        """``flows/generate.py:generate_flow`` -> ``flows.generate.generate_flow``."""
        file, fn = self.entrypoint.split(":")
        return f"{file.removesuffix('.py').replace('/', '.')}.{fn}"


def plan(
    *,
    pipeline_config: str | Path | None = DEFAULT_PIPELINE_CONFIG,
    cron: str = DEFAULT_CRON,
    timezone: str = "UTC",
    cpu_pool: str = "cpu",
    gpu_pool: str = "gpu",
    only: Sequence[str] | None = None,
) -> list[DeploymentSpec]:
    """The deployments to register (no server needed).

    ``only`` keeps the deployments whose flow name or full name is listed
    (e.g. ``["generate-shard"]``); the pipeline's config is read and validated
    only when the pipeline deployment is kept. Raises ``datagen.config.ConfigError``
    for an invalid pipeline config and ``ValueError`` for an unknown ``only`` name.
    """
    from flows.catalog import FLOWS

    pools = {"cpu": cpu_pool, "gpu": gpu_pool}
    # CPU stages first, then GPU ones (the order the plan prints in)
    on_demand = [(name, e.entrypoint, pools[e.pool], e.description)
                 for kind in ("cpu", "gpu") for name, e in FLOWS.items() if e.pool == kind]
    specs = [
        DeploymentSpec(flow, f"{flow}-{'gpu' if pool == gpu_pool else 'cpu'}", entry, pool, desc,
                       tags=("gpu",) if pool == gpu_pool else ())
        for flow, entry, pool, desc in on_demand
    ]
    specs.append(DeploymentSpec(
        "generate", "generate-fanout", "flows/generate.py:generate_flow", cpu_pool,
        "Coordinate a fanned-out generate run (set fan_out: true): one generate-shard run per shard on the "
        f"{gpu_pool!r} pool; commits one version when all are done.",
    ))
    specs.append(DeploymentSpec(
        "generate-shard", "generate-shard-gpu", "flows/generate.py:generate_shard_flow", gpu_pool,
        "One shard of a fanned-out generate run (launched by generate with fan_out: true).", tags=("gpu",),
    ))
    wanted = set(only) if only else None
    if wanted is not None:
        known = {s.flow_name for s in specs} | {s.full_name for s in specs} | {"pipeline", "pipeline/pipeline-nightly"}
        unknown = sorted(wanted - known)
        if unknown:
            raise ValueError(f"unknown deployment(s) {unknown}; choose from {sorted(known)}")
        specs = [s for s in specs if s.flow_name in wanted or s.full_name in wanted]
    if wanted is None or wanted & {"pipeline", "pipeline/pipeline-nightly"}:
        specs.insert(0, DeploymentSpec(
            "pipeline", "pipeline-nightly", "flows/pipeline.py:pipeline_flow", cpu_pool,
            f"The whole pipeline on a schedule ({cron} {timezone}), parameters from {pipeline_config}.",
            cron=cron, timezone=timezone, parameters=pipeline_parameters(pipeline_config),
        ))
    return specs


def pipeline_parameters(config: str | Path | None) -> dict[str, Any]:
    """The pipeline deployment's default parameters: the YAML file validated as ``PipelineParams``."""
    from datagen.config import ConfigError, load
    from flows.pipeline import PipelineParams

    if config is None:
        raise ConfigError("the pipeline deployment needs a config (--pipeline-config FILE.yaml)")
    params = load(PipelineParams, config)
    return {"params": params.model_dump(mode="json")}


def ensure_infrastructure(*, pools: Sequence[str], gpu_slots: int) -> list[str]:
    """Create the work pools (type ``process``) that are missing and set the ``gpu`` limit; what changed."""
    from prefect import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
        WorkPoolCreate,
    )
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    done = []
    with get_client(sync_client=True) as client:
        for pool in dict.fromkeys(pools):
            try:
                existing = client.read_work_pool(pool)
            except ObjectNotFound:
                client.create_work_pool(WorkPoolCreate(
                    name=pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template(),
                ))
                done.append(f"created work pool {pool!r} (process)")
            else:
                done.append(f"work pool {pool!r} exists ({existing.type})")
        try:
            limit = client.read_global_concurrency_limit_by_name(GPU_LIMIT_NAME)
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GPU_LIMIT_NAME, limit=gpu_slots))
            done.append(f"created concurrency limit {GPU_LIMIT_NAME!r} = {gpu_slots}")
        else:
            if limit.limit != gpu_slots or not limit.active:
                client.update_global_concurrency_limit(
                    GPU_LIMIT_NAME, GlobalConcurrencyLimitUpdate(limit=gpu_slots, active=True)
                )
                done.append(f"set concurrency limit {GPU_LIMIT_NAME!r} = {gpu_slots} (was {limit.limit})")
            else:
                done.append(f"concurrency limit {GPU_LIMIT_NAME!r} = {gpu_slots}")
    return done


def register(spec: DeploymentSpec, *, source: str | None = None) -> str:
    """Create or update one deployment on the server (``PREFECT_API_URL``); its id."""
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.deployments.runner import EntrypointType, RunnerDeployment

    common: dict[str, Any] = {
        "name": spec.name,
        "work_pool_name": spec.pool,
        "description": spec.description,
        "parameters": spec.parameters or {},
        "tags": list(spec.tags),
        "schedule": CronSchedule(cron=spec.cron, timezone=spec.timezone) if spec.cron else None,
    }
    if source is None:
        module, fn = spec.module_path.rsplit(".", 1)
        flow = getattr(importlib.import_module(module), fn)
        deployment = RunnerDeployment.from_flow(flow, entrypoint_type=EntrypointType.MODULE_PATH, **common)
    else:
        from prefect.runner.storage import create_storage_from_source

        deployment = RunnerDeployment.from_storage(
            create_storage_from_source(source), entrypoint=spec.entrypoint, flow_name=spec.flow_name, **common
        )
    if deployment.flow_name != spec.flow_name:
        raise RuntimeError(f"{spec.entrypoint} is flow {deployment.flow_name!r}, expected {spec.flow_name!r}")
    return str(deployment.apply())


def apply(specs: Sequence[DeploymentSpec], *, source: str | None = None, gpu_slots: int = 1) -> dict[str, str]:
    """Pools, the ``gpu`` limit, then every deployment; ``{flow/name: deployment id}``."""
    if gpu_slots < 1:
        raise ValueError("gpu_slots must be >= 1 (the number of GPU workers)")
    for line in ensure_infrastructure(pools=[s.pool for s in specs], gpu_slots=gpu_slots):
        log.info(line)
    return {spec.full_name: register(spec, source=source) for spec in specs}


def _describe(spec: DeploymentSpec, *, source: str | None) -> str:
    where = f"{source} :: {spec.entrypoint}" if source else spec.module_path
    when = f"cron {spec.cron!r} ({spec.timezone})" if spec.cron else "on demand"
    return f"{spec.full_name:<38} pool={spec.pool:<6} {when:<28} {where}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.deploy",
        description="Register this repository's Prefect deployments (dry run without --apply).",
    )
    parser.add_argument("--apply", action="store_true", help="register on the server at PREFECT_API_URL")
    parser.add_argument("--source", help="where workers get the code: a folder or a git URL "
                                         "(default: the installed package, by module path)")
    parser.add_argument("--pipeline-config", default=str(DEFAULT_PIPELINE_CONFIG),
                        help="the pipeline deployment's parameters (default: %(default)s)")
    parser.add_argument("--cron", default=DEFAULT_CRON, help="the pipeline's schedule (default: %(default)r)")
    parser.add_argument("--timezone", default="UTC")
    parser.add_argument("--cpu-pool", default="cpu")
    parser.add_argument("--gpu-pool", default="gpu")
    parser.add_argument("--gpu-slots", type=int, default=1,
                        help="limit of the global concurrency limit 'gpu' = number of GPU workers (default: 1)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="register only this flow (e.g. generate-shard) or flow/deployment; repeatable")
    parser.add_argument("--json", action="store_true", help="print what was registered as JSON")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)  # this module's progress only; not every HTTP request of the client
    log.setLevel(logging.INFO)
    log.propagate = False  # Prefect configures the root logger too: print once

    from datagen.config import ConfigError

    source = args.source
    if source and "://" not in source and not source.endswith(".git"):
        source = str(Path(source).resolve())  # workers must find it from any working directory
    try:
        specs = plan(pipeline_config=args.pipeline_config, cron=args.cron, timezone=args.timezone,
                     cpu_pool=args.cpu_pool, gpu_pool=args.gpu_pool, only=args.only)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.apply:
        for spec in specs:
            print(_describe(spec, source=source))
        print("(dry run: nothing registered; add --apply to register on PREFECT_API_URL)")
        return 0
    ids = apply(specs, source=source, gpu_slots=args.gpu_slots)
    if args.json:
        print(json.dumps(ids, indent=2))
    else:
        for spec in specs:
            print(f"registered {_describe(spec, source=source)}  id={ids[spec.full_name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
