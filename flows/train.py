"""``sft`` and ``grpo``: training on GPU workers, from dataset versions.

A training run reads one version (SFT: chat ``messages``; GRPO: prompts with
gold answers) and commits a *run* version whose rows are the logged metrics
(one per logged step) and whose manifest carries the trained model's
location, the training config and the final metrics — so a model is always
traceable to the exact data version it was trained on.

Both take a slot of the global concurrency limit ``gpu``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from datagen.store import open_store
from flows.common import logger, publish, stage_writer
from trainers.config import GRPOConfig, SFTConfig


class SFTParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str | None = None
    input: str = "sft-mix"
    output: str = "sft-runs"
    sft: SFTConfig
    gpu_limit: bool = True


class GRPOParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str | None = None
    input: str = "grpo-prompts"
    output: str = "grpo-runs"
    grpo: GRPOConfig
    gpu_limit: bool = True


def _gpu(enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    from prefect.concurrency.sync import concurrency

    return concurrency("gpu", occupy=1, strict=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def _commit_run(writer, result, stage: str) -> str:
    summary = asdict(result) if is_dataclass(result) else dict(vars(result))
    history = summary.pop("history", None)
    if not history:
        # SFT keeps its per-step metrics in the run folder's metrics.jsonl.
        log_file = Path(summary.get("output_dir") or ".") / "metrics.jsonl"
        history = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()] \
            if log_file.is_file() else []
    rows = [{k: _jsonable(v) for k, v in h.items()} for h in history]
    if rows:
        import pyarrow as pa

        # Metrics rows, not records: no record schema imposed; train and eval
        # steps log different keys, so take the union of them.
        keys = list(dict.fromkeys(k for r in rows for k in r))
        writer.write(pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in rows]))
    stats = {stage: _jsonable({k: v for k, v in summary.items() if not isinstance(v, (list, dict))}),
             "final_metrics": _jsonable(summary.get("metrics", {}))}
    manifest = writer.commit(stats=stats)
    publish(stage, manifest, stats)
    return manifest.ref


def _train(params: SFTParams | GRPOParams, stage: str, train: Callable[[Any], Any]) -> str:
    """Resolve the input version, train on it (holding a ``gpu`` slot), commit the run version."""
    store = open_store(params.root)
    source = store.resolve(params.input)
    config = params.model_dump(mode="json", exclude={"root", "input", "output", "gpu_limit"})
    writer = stage_writer(store, params.output, stage=stage, parents=[source], config=config)
    if writer.committed is not None:
        logger().info("%s: %s already committed; nothing to do", stage, writer.committed.ref)
        return writer.committed.ref
    with _gpu(params.gpu_limit):
        result = train(store.scan(source))
    return _commit_run(writer, result, stage)


@task(cache_policy=NO_CACHE)
def sft_task(params: SFTParams) -> str:
    from trainers.sft import train_sft

    return _train(params, "sft", lambda lf: train_sft(params.sft, lf.select("messages").collect().to_dicts()))


@task(cache_policy=NO_CACHE)
def grpo_task(params: GRPOParams) -> str:
    from trainers.grpo import train_grpo

    return _train(params, "grpo", lambda lf: train_grpo(params.grpo, lf.collect().to_dicts()))


@flow(name="sft")
def sft_flow(params: SFTParams) -> str:
    """Supervised fine-tuning on an SFT mix version; returns the run version."""
    return sft_task(params)


@flow(name="grpo")
def grpo_flow(params: GRPOParams) -> str:
    """GRPO on a prompt-set version; returns the run version."""
    return grpo_task(params)
