"""``sft`` and ``grpo``: training on GPU workers, from dataset versions.

A training run reads one version (SFT: chat ``messages``; GRPO: prompts with
gold answers) and commits a *run* version whose rows are the logged metrics
(one per logged step) and whose manifest carries the trained model's
location, the training config and the final metrics — so a model is always
traceable to the exact data version it was trained on.

SFT trains from a tokenised version (``flows/tokenize.py``): when its input
holds chat messages, the ``sft`` flow runs the ``tokenize`` stage first (a
cache hit when this data was tokenised with this template before), and each
process decodes that version once into a memory-mapped local set
(``trainers.tokenize.materialize_version``). No process ever holds the rows:
memory grows with the micro-batch, not with the dataset.

Both take a slot of the global concurrency limit ``gpu``. ``launch`` (a ``how``
parameter) trains in this process or in ``torchrun`` ranks over the worker's GPUs
(and over several nodes), each rank reading the input version itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Literal

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, model_validator

from datagen.config import how, where
from flows.common import StageParams, gpu_slot, logger, open_stage, publish
from trainers.config import GRPOConfig, SFTConfig


class LaunchConfig(BaseModel):
    """How many training processes a run uses (a ``how`` parameter: the trainers make the result
    independent of it — the global batch is split over ranks, losses reduced globally).

    ``processes`` per node: 1 trains in the flow's own process; N > 1, or ``gpus`` (one per GPU
    of this worker), launches ``torchrun`` with that many ranks (NCCL on GPUs, gloo on CPU), each
    reading the input version itself. ``nodes`` > 1 spreads them over machines: run the same
    flow on each node with its ``node_rank`` and the rank-0 node's ``main_address``/``main_port``;
    the node with rank 0 commits the run version, the others return None."""

    model_config = ConfigDict(extra="forbid")

    processes: int | Literal["gpus"] = Field(1, description="ranks on this node: a count, or 'gpus' (one per GPU)")
    nodes: int = Field(1, ge=1)
    node_rank: int = Field(0, ge=0)
    main_address: str = Field("127.0.0.1", description="the rank-0 node's address (rendezvous)")
    main_port: int | None = Field(None, ge=1, le=65535, description="rendezvous port; None = a free one (1 node)")
    timeout_s: float | None = Field(None, gt=0, description="kill the launched run after this long")

    @model_validator(mode="after")
    def _multi_node(self) -> LaunchConfig:
        if isinstance(self.processes, int) and self.processes < 1:
            raise ValueError(f"launch.processes must be >= 1 or 'gpus' (got {self.processes})")
        if self.node_rank >= self.nodes:
            raise ValueError(f"launch.node_rank {self.node_rank} must be below launch.nodes {self.nodes}")
        if self.nodes > 1 and (self.main_port is None or self.main_address in ("127.0.0.1", "localhost")):
            raise ValueError("launch over several nodes needs main_address (the rank-0 node's reachable address) "
                             "and main_port set, the same on every node")
        return self

    def per_node(self) -> int:
        """Processes on this node (``gpus``: this worker's CUDA device count, at least 1)."""
        if self.processes == "gpus":
            import torch

            return max(torch.cuda.device_count(), 1)
        return self.processes

    def distributed(self) -> bool:
        return self.nodes > 1 or self.per_node() > 1


class SFTParams(StageParams):
    root: str | None = where(None)
    input: str = where("sft-mix", description="an SFT version of chat messages (tokenised first) or a tokenize "
                       "stage's version")
    output: str = where("sft-runs")
    tokenized: str | None = where(None, description="dataset the tokenize step writes; None = '<input>-tokens'")
    sft: SFTConfig
    gpu_limit: bool = how(True)
    launch: LaunchConfig = how(LaunchConfig())


class GRPOParams(StageParams):
    root: str | None = where(None)
    input: str = where("grpo-prompts")
    output: str = where("grpo-runs")
    grpo: GRPOConfig
    gpu_limit: bool = how(True)
    launch: LaunchConfig = how(LaunchConfig())


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


def _train(params: SFTParams | GRPOParams, stage: str, train: Callable[[Any, Any], Any]) -> str | None:
    """Resolve the input version, train on it (holding a ``gpu`` slot) in this process or in
    launched ranks (``params.launch``), commit the run version."""
    run = open_stage(params, stage, [params.input])
    writer = run.writer(params.output)
    if run.done(writer):
        return writer.committed.ref
    with gpu_slot(params.gpu_limit):
        if params.launch.distributed():
            result = _launch(params, stage, run.source.ref)
        else:
            result = train(run.store, run.source)
    if result is None:  # a node other than rank 0's: that node commits
        return None
    return _commit_run(writer, result, stage)


def _run_stage(stage: str, params: SFTParams | GRPOParams, store, source, log_step: Callable[[dict[str, Any]], None]):
    """The trainer call of a stage on its input version: the same in the flow's process and in each rank.

    SFT: the tokenised version decoded once per machine into a local set (ranks of a node share
    it under a lock) and read memory-mapped by ``train_sft``, each rank only its rows."""
    if stage == "sft":
        from trainers.sft import train_sft
        from trainers.tokenize import materialize_version

        cfg = params.sft
        data = materialize_version(store, source, cfg.token_cache or Path(cfg.output_dir) / "tokenized")
        return train_sft(cfg.model_copy(update={"data": str(data)}), on_log=log_step)
    from trainers.grpo import train_grpo

    return train_grpo(params.grpo, store.scan(source).collect().to_dicts(), on_log=log_step)


#: A rank's line that carries one logged step (relayed to the flow's log) or the final result.
_STEP, _RESULT = "DATAGEN-STEP ", "DATAGEN-RESULT "


def _launch(params: SFTParams | GRPOParams, stage: str, source_ref: str):
    """Train in ``torchrun`` ranks (this module's ``__main__`` in each); rank 0's result, None on other nodes.

    Each rank opens the store and reads the exact input version itself; rank 0's logged steps
    are relayed to the flow's log as they come; a failed rank fails the task with its output's tail."""
    import os
    import socket
    import subprocess
    import sys
    import tempfile
    import types

    launch = params.launch
    port = launch.main_port
    if port is None:
        with socket.socket() as sock:  # torchrun's port 0 hangs its static rendezvous: ask the OS for one
            sock.bind((launch.main_address, 0))
            port = sock.getsockname()[1]
    run_logger = logger()
    with tempfile.TemporaryDirectory(prefix=f"datagen-{stage}-launch-") as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({"stage": stage, "source": source_ref, "params": params.model_dump(mode="json")}))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(launch.per_node()),
               "--nnodes", str(launch.nodes), "--node_rank", str(launch.node_rank),
               "--master_addr", launch.main_address, "--master_port", str(port), "-m", "flows.train", str(spec)]
        repo = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
        run_logger.info("%s: launching %d process(es) x %d node(s): %s", stage, launch.per_node(), launch.nodes,
                        " ".join(cmd))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        result, tail = None, []
        try:
            for line in proc.stdout:
                if _STEP in line:
                    run_logger.info("%s %s", stage, line.split(_STEP, 1)[1].rstrip())
                elif _RESULT in line:
                    result = json.loads(line.split(_RESULT, 1)[1])
                else:
                    tail = (tail + [line.rstrip()])[-40:]
            code = proc.wait(timeout=launch.timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise RuntimeError(f"{stage}: the launched run outlived launch.timeout_s={launch.timeout_s}") from None
        if code != 0:
            raise RuntimeError(f"{stage}: the launched run failed (exit {code}); its last lines:\n" + "\n".join(tail))
    if launch.node_rank != 0:
        return None
    if result is None:
        raise RuntimeError(f"{stage}: the launched run ended without rank 0's result; its last lines:\n"
                           + "\n".join(tail))
    return types.SimpleNamespace(**result)


def _rank_main(spec_path: str) -> None:
    """One launched rank: read the spec, train, and (rank 0) print the logged steps and the result."""
    import os

    from datagen.store import open_store

    spec = json.loads(Path(spec_path).read_text())
    stage = spec["stage"]
    params = (SFTParams if stage == "sft" else GRPOParams).model_validate(spec["params"])
    rank0 = int(os.environ.get("RANK", "0")) == 0

    def log_step(metrics: dict[str, Any]) -> None:
        if rank0:
            print(_STEP + json.dumps(_jsonable(metrics), default=str), flush=True)

    store = open_store(params.root)
    result = _run_stage(stage, params, store, store.resolve(spec["source"]), log_step)
    if rank0:
        summary = asdict(result) if is_dataclass(result) else dict(vars(result))
        summary["world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
        print(_RESULT + json.dumps(_jsonable(summary), default=str), flush=True)


@task(cache_policy=NO_CACHE)
def sft_task(params: SFTParams) -> str | None:
    return _train(params, "sft", lambda store, src: _run_stage("sft", params, store, src, on_log("sft")))


@task(cache_policy=NO_CACHE)
def grpo_task(params: GRPOParams) -> str | None:
    return _train(params, "grpo", lambda store, src: _run_stage("grpo", params, store, src, on_log("grpo")))


def tokenized_input(params: SFTParams) -> SFTParams:
    """``params`` reading a tokenised version: the input itself when it is one, else the ``tokenize``
    stage's version of it for ``sft.model``'s tokenizer and ``sft.max_length`` (run now, or found)."""
    from datagen.store import open_store
    from flows.tokenize import TokenizeParams, tokenize_flow
    from trainers.tokenize import is_tokenized

    source = open_store(params.root).resolve(params.input)
    if is_tokenized(source):
        return params
    if params.sft.model is None:
        raise ValueError("sft.model is not set: the sft flow needs a model (a dir, hub id or NAME@VERSION)")
    ref = tokenize_flow(TokenizeParams(root=params.root, input=source.ref, output=params.tokenized,
                                       tokenizer=params.sft.model, model_store=params.sft.model_store,
                                       max_length=params.sft.max_length, truncate=params.sft.truncate))
    return params.model_copy(update={"input": ref})


@flow(name="sft")
def sft_flow(params: SFTParams) -> str:
    """Supervised fine-tuning on an SFT mix version (tokenised first, ``tokenized_input``) or on a
    tokenised version; returns the run version."""
    return sft_task(tokenized_input(params))


@flow(name="grpo")
def grpo_flow(params: GRPOParams) -> str:
    """GRPO on a prompt-set version; returns the run version."""
    return grpo_task(params)


if __name__ == "__main__":  # a rank launched by ``_launch`` (torchrun -m flows.train SPEC)
    import sys

    _rank_main(sys.argv[1])
