"""``eval``: a model on a version of problems -> an eval version (R1's pass@1 and maj@k).

One task per shard of problems runs ``datagen.evaluate.evaluate_shard``: k
samples per problem with the configured backend, template and sampling
(R1's: temperature 0.6, top-p 0.95), graded by the rule verifier of each
problem's domain. The version's rows are the per-problem results (k, correct,
pass@1, the majority answer and whether it is right, each sample's answer and
outcome); its stats hold the summary (``eval``: pass@1, maj@k, k, problems)
and the summed counts it comes from. The model is part of the run key, so a
new model (or a new k, sampling, template) is a new version.

    datagen run eval --set input=heldout --set eval.backend.model=models/tiny --set eval.k=8
"""

from __future__ import annotations

from prefect import flow

from datagen.config import how, where
from datagen.evaluate import EvalConfig
from flows.common import StageParams, gpu_slot, map_version, open_stage, publish


class EvalParams(StageParams):
    root: str | None = where(None)
    input: str = where("problems")
    output: str = where("evals")
    eval: EvalConfig
    gpu_limit: bool = how(True)


_BACKENDS: dict[str, object] = {}


def _backend(config: EvalConfig):
    """One backend (a loaded model) per process and backend config, shared by the shard tasks."""
    from datagen.generate.backends import make_backend

    key = config.backend.model_dump_json()
    if key not in _BACKENDS:
        _BACKENDS[key] = make_backend(config.backend)
    return _BACKENDS[key]


def _shard(rows, *, config: EvalConfig):
    from datagen.evaluate import evaluate_shard, score_samples

    if config.backend is None:  # the input holds the samples already
        return score_samples(rows, k=config.k, math_timeout_s=config.math_timeout_s)
    return evaluate_shard(rows, _backend(config), config)


@flow(name="eval")
def eval_flow(params: EvalParams) -> str:
    """Evaluate ``eval.backend``'s model on the problems of ``input``; returns the ``name@version`` written."""
    from functools import partial

    from datagen.evaluate import summary_from_counts

    run = open_stage(params, "eval", [params.input])
    writer = run.writer(params.output)
    if run.done(writer):
        return writer.committed.ref
    with gpu_slot(params.gpu_limit):
        counts = map_version(run.store, run.source, writer, partial(_shard, config=params.eval), stage="eval")
    counts["k"] = params.eval.k  # a constant, not a sum over shards
    stats = {"eval": summary_from_counts(counts), "counts": counts}
    manifest = writer.commit(stats=stats)
    publish("eval", manifest, stats)
    _BACKENDS.clear()  # free the model: a flow run owns it only while it runs
    return manifest.ref
