"""``sft`` and ``grpo``: training on GPU workers, from dataset versions.

A training run reads one version (SFT: chat ``messages``; GRPO: prompts with
gold answers) and commits a *run* version whose rows are the logged metrics
(one per logged step) and whose manifest carries the trained model's
location, the training config and the final metrics — so a model is always
traceable to the exact data version it was trained on.

Both take a slot of the global concurrency limit ``gpu``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from datagen.config import how, where
from flows.common import StageParams, gpu_slot, logger, open_stage, publish
from trainers.config import GRPOConfig, SFTConfig


class SFTParams(StageParams):
    root: str | None = where(None)
    input: str = where("sft-mix")
    output: str = where("sft-runs")
    sft: SFTConfig
    gpu_limit: bool = how(True)


class GRPOParams(StageParams):
    root: str | None = where(None)
    input: str = where("grpo-prompts")
    output: str = where("grpo-runs")
    grpo: GRPOConfig
    gpu_limit: bool = how(True)


def on_log(stage: str) -> Callable[[dict[str, Any]], None]:
    """The trainers' ``on_log`` callback under a flow: each logged step into the Prefect run's log."""
    run_logger = logger()

    def log_step(metrics: dict[str, Any]) -> None:
        run_logger.info("%s %s", stage, json.dumps(metrics, default=str))

    return log_step


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):  # NaN is not JSON
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
    _metrics_artifact(stage, stats["final_metrics"])
    return manifest.ref


def _metrics_artifact(stage: str, metrics: dict[str, Any]) -> None:
    """A table artifact of the final training metrics (inside a run only)."""
    if not metrics:
        return
    from prefect.artifacts import create_table_artifact
    from prefect.context import get_run_context

    try:
        get_run_context()
    except Exception:  # noqa: BLE001 - not in a run: nothing to publish to
        return
    from datagen.store.card import format_value

    create_table_artifact(table=[{"metric": k, "value": format_value(v)} for k, v in metrics.items()],
                          key=f"{stage}-metrics", description=f"final {stage} metrics")


def _train(params: SFTParams | GRPOParams, stage: str, train: Callable[[Any], Any]) -> str:
    """Resolve the input version, train on it (holding a ``gpu`` slot), commit the run version."""
    run = open_stage(params, stage, [params.input])
    writer = run.writer(params.output)
    if run.done(writer):
        return writer.committed.ref
    with gpu_slot(params.gpu_limit):
        result = train(run.store.scan(run.source))
    return _commit_run(writer, result, stage)


@task(cache_policy=NO_CACHE)
def sft_task(params: SFTParams) -> str:
    from trainers.sft import train_sft

    return _train(params, "sft", lambda lf: train_sft(params.sft, lf.select("messages").collect().to_dicts(),
                                                       on_log=on_log("sft")))


@task(cache_policy=NO_CACHE)
def grpo_task(params: GRPOParams) -> str:
    from trainers.grpo import train_grpo

    return _train(params, "grpo", lambda lf: train_grpo(params.grpo, lf.collect().to_dicts(), on_log=on_log("grpo")))


@flow(name="sft")
def sft_flow(params: SFTParams) -> str:
    """Supervised fine-tuning on an SFT mix version; returns the run version."""
    return sft_task(params)


@flow(name="grpo")
def grpo_flow(params: GRPOParams) -> str:
    """GRPO on a prompt-set version; returns the run version."""
    return grpo_task(params)
