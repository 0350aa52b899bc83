"""``verify``: a generations version -> a verified version (``verdicts`` + ``accepted``).

One task per shard runs ``datagen.verify.stage.verify_shard``: each row is
checked by the verifiers that apply to its domain (``verifiers_by_domain``);
``accepted`` is True when all of them say ``correct``, False when one judged
it wrong, and None when a verifier could not judge (``error``, or its own
``timeout``) — counted and surfaced, never turned into a rejection silently.
"""

from __future__ import annotations

from functools import partial

from prefect import flow
from pydantic import Field

from datagen.config import how, where
from datagen.verify.stage import DEFAULT_VERIFIERS_BY_DOMAIN, verify_shard
from flows.common import StageParams, map_version, open_stage, publish


class VerifyParams(StageParams):
    root: str | None = where(None)
    input: str = where("generations")
    output: str = where("verified")
    #: domain -> verifiers that must all say ``correct``. ``format`` may be added to any.
    verifiers_by_domain: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_VERIFIERS_BY_DOMAIN))
    math_timeout_s: float = 5.0
    #: parallel sandbox / math workers per shard task (None = all cores)
    workers: int | None = how(None)


@flow(name="verify")
def verify_flow(params: VerifyParams) -> str:
    """Verify every shard of ``input``; returns the ``name@version`` written."""
    run = open_stage(params, "verify", [params.input])
    writer = run.writer(params.output)
    if run.done(writer):
        return writer.committed.ref
    fn = partial(verify_shard, verifiers_by_domain=params.verifiers_by_domain, workers=params.workers,
                 math_timeout_s=params.math_timeout_s)
    stats = map_version(run.store, run.source, writer, fn, stage="verify")
    manifest = writer.commit(stats=stats)
    publish("verify", manifest, stats)
    return manifest.ref
