"""``pipeline``: ingest → generate → verify → filter → select → mix → (sft) → (grpo).

Each stage is its own flow (a subflow here) that reads the exact version the
previous stage wrote and commits a new one, so lineage is explicit. Rerunning
the pipeline with the same config resumes: every stage's output version is
keyed by its inputs and config, finished shards are skipped and committed
stages return at once.

The stage sections take the same keys as the stage flows; ``root`` and the
stage inputs are filled in by the pipeline (each stage reads what the
previous one wrote), dataset names come from each section's ``output``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field

from flows.common import publish_rollup
from flows.filter import FilterParams, filter_flow
from flows.generate import GenerateParams, generate_flow
from flows.ingest import IngestParams, ingest_flow
from flows.mix import MixParams, mix_flow
from flows.select import SelectParams, select_flow
from flows.train import GRPOParams, SFTParams, grpo_flow, sft_flow
from flows.verify import VerifyParams, verify_flow


class PipelineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str | None = None
    ingest: IngestParams
    generate: GenerateParams
    verify: VerifyParams = Field(default_factory=VerifyParams)
    filter: FilterParams = Field(default_factory=FilterParams)
    select: SelectParams = Field(default_factory=SelectParams)
    mix: MixParams = Field(default_factory=MixParams)
    #: optional training stages (GPU workers in production)
    sft: SFTParams | None = None
    grpo: GRPOParams | None = None


def _with(params: BaseModel, **update: Any):
    return params.model_copy(update=update)


@flow(name="pipeline")
def pipeline_flow(params: PipelineParams) -> dict[str, Any]:
    """Run every stage; returns ``{stage: "name@version"}`` of the versions written."""
    root = params.root
    out: dict[str, Any] = {}
    out["ingest"] = ingest_flow(_with(params.ingest, root=root))
    out["generate"] = generate_flow(_with(params.generate, root=root, input=out["ingest"]))
    out["verify"] = verify_flow(_with(params.verify, root=root, input=out["generate"]))
    out["filter"] = filter_flow(_with(params.filter, root=root, input=out["verify"]))
    selected = select_flow(_with(params.select, root=root, input=out["filter"]))
    out["select"] = selected["selected"]
    out["grpo_prompts"] = selected["grpo_prompts"]
    out["mix"] = mix_flow(_with(params.mix, root=root, reasoning=out["select"]))
    if params.sft is not None:
        out["sft"] = sft_flow(_with(params.sft, root=root, input=out["mix"]))
    if params.grpo is not None:
        out["grpo"] = grpo_flow(_with(params.grpo, root=root, input=out["grpo_prompts"]))
    publish_rollup(root, out)  # one artifact naming every version this run wrote
    return out
