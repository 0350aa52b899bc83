"""``verify``: a generations version -> a verified version (``verdicts`` + ``accepted``).

One task per shard. Each row is checked by the verifiers that apply to its
domain (``verifiers_by_domain``); ``accepted`` is True when all of them say
``correct``, False when one judged it wrong, and None when a verifier could
not judge (``error``, or its own ``timeout``) — counted and surfaced, never
turned into a rejection silently.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field

from datagen.store import open_store
from flows.common import logger, map_version, merge_stats, publish, stage_writer

DEFAULT_VERIFIERS = {"math": ["math"], "code": ["code"], "general": []}


class VerifyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str | None = None
    input: str = "generations"
    output: str = "verified"
    #: domain -> verifiers that must all say ``correct``. ``format`` may be added to any.
    verifiers_by_domain: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_VERIFIERS))
    #: parallel sandbox / math workers per shard task (None = all cores)
    workers: int | None = None
    math_timeout_s: float = 5.0


def verify_shard(rows: list[dict[str, Any]], *, verifiers_by_domain: dict[str, list[str]], workers: int | None,
                 math_timeout_s: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Plain function: verify one shard's rows, set ``accepted``; (rows, stats)."""
    from datagen.records import decode_verdicts, encode_verdicts
    from datagen.select import accept
    from datagen.verify.runner import verify_rows

    for row in rows:
        row["verdicts"] = decode_verdicts(row.get("verdicts"))
    stats: dict[str, Any] = {}
    needed = sorted({v for vs in verifiers_by_domain.values() for v in vs})
    for verifier in needed:
        domains = {d for d, vs in verifiers_by_domain.items() if verifier in vs}
        subset = [r for r in rows if r.get("domain") in domains]
        if not subset:
            continue
        opts = {"timeout_s": math_timeout_s} if verifier == "math" else {}
        _, vstats = verify_rows(subset, verifier, workers=workers, **opts)
        stats = merge_stats([stats, vstats])
    for row in rows:
        row["verdicts"] = encode_verdicts(row["verdicts"])
    decided = accept(rows, verifiers_by_domain)
    stats["acceptance"] = decided.stats
    return decided.rows.to_dicts(), stats


@flow(name="verify")
def verify_flow(params: VerifyParams) -> str:
    """Verify every shard of ``input``; returns the ``name@version`` written."""
    store = open_store(params.root)
    source = store.resolve(params.input)
    config = params.model_dump(exclude={"root", "input", "output"})
    writer = stage_writer(store, params.output, stage="verify", parents=[source], config=config)
    if writer.committed is not None:
        logger().info("verify: %s already committed; nothing to do", writer.committed.ref)
        return writer.committed.ref
    fn = partial(verify_shard, verifiers_by_domain=params.verifiers_by_domain, workers=params.workers,
                 math_timeout_s=params.math_timeout_s)
    stats = map_version(store, source, writer, fn, stage="verify")
    for counts in stats.get("acceptance", {}).get("by_domain", {}).values():
        decided = counts.get("accepted", 0) + counts.get("rejected", 0)
        counts["acceptance_rate"] = round(counts.get("accepted", 0) / decided, 4) if decided else None
    manifest = writer.commit(stats=stats)
    publish("verify", manifest, stats)
    return manifest.ref
