"""``verify``: a generations version -> a verified version (``verdicts`` + ``accepted``).

One task per shard runs ``datagen.verify.stage.verify_shard``: each row is
checked by the verifiers that apply to its domain (``verifiers_by_domain``);
rows of a non-reasoning task by that task's verifiers (``verifiers_by_task``:
the LLM judge, whose backend is ``judge.backend``, chrF against the
reference, the self-cognition rule); ``accepted`` is True when all of them say ``correct``, False when one judged
it wrong, and None when a verifier could not judge (``error``, or its own
``timeout``) — counted and surfaced, never turned into a rejection silently.
"""

from __future__ import annotations

from functools import partial

from prefect import flow
from pydantic import Field, model_validator

from datagen.config import how, where
from datagen.verify.judge import JudgeConfig
from datagen.verify.stage import DEFAULT_VERIFIERS_BY_DOMAIN, DEFAULT_VERIFIERS_BY_TASK, verify_shard
from flows.common import ShardRunner, StageParams, map_version, open_stage, publish


class VerifyParams(StageParams):
    root: str | None = where(None)
    input: str = where("generations")
    output: str = where("verified")
    #: domain -> verifiers that must all say ``correct``. ``format`` may be added to any.
    verifiers_by_domain: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_VERIFIERS_BY_DOMAIN))
    #: non-reasoning task -> verifiers (replaces the domain's list for rows of that task)
    verifiers_by_task: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_VERIFIERS_BY_TASK))
    #: the LLM judge (backend kind hf | openai | vllm, as in generation); needed when a list names ``judge``
    judge: JudgeConfig | None = None
    #: chrF gate of translations (0-100); None = datagen.verify.chrf's defaults
    chrf_threshold: float | None = Field(None, ge=0, le=100)
    chrf_threshold_by_language: dict[str, float] | None = None
    math_timeout_s: float = 5.0
    #: parallel sandbox / math workers per shard task (None = all cores)
    workers: int | None = how(None)
    #: where the shard tasks run: threads (default), processes (every core), dask (a cluster's address)
    runner: ShardRunner = how(ShardRunner())

    @model_validator(mode="after")
    def _judge_configured(self):
        from datagen.verify.runner import VERIFIERS

        lists = {**{f"verifiers_by_domain.{k}": v for k, v in self.verifiers_by_domain.items()},
                 **{f"verifiers_by_task.{k}": v for k, v in self.verifiers_by_task.items()}}
        for key, names in lists.items():
            unknown = [n for n in names if n not in VERIFIERS]
            if unknown:
                raise ValueError(f"{key}: unknown verifier(s) {unknown}; choose from {sorted(VERIFIERS)}")
            if "judge" in names and self.judge is None:
                raise ValueError(f"{key} names 'judge' but no judge is configured: set judge.backend "
                                 "(e.g. judge: {backend: {kind: hf, model: models/judge}}) or remove 'judge'")
        return self


@flow(name="verify")
def verify_flow(params: VerifyParams) -> str:
    """Verify every shard of ``input``; returns the ``name@version`` written."""
    run = open_stage(params, "verify", [params.input])
    writer = run.writer(params.output)
    if run.done(writer):
        return writer.committed.ref
    fn = partial(verify_shard, verifiers_by_domain=params.verifiers_by_domain,
                 verifiers_by_task=params.verifiers_by_task, judge=params.judge, chrf_threshold=params.chrf_threshold,
                 chrf_threshold_by_language=params.chrf_threshold_by_language, workers=params.workers,
                 math_timeout_s=params.math_timeout_s)
    stats = map_version(run.store, run.source, writer, fn, stage="verify", runner=params.runner)
    manifest = writer.commit(stats=stats)
    publish("verify", manifest, stats)
    return manifest.ref
