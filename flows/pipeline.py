"""``pipeline``: ingest → generate → verify → filter → select → mix → (sft) → (grpo).

With a ``general`` section, the non-reasoning chain runs too (issue 16): the sources
(``flows.general``: writing, factual QA, self-cognition, translation) → generate (each row
with its task's template) → verify (the judge, chrF and the self-cognition rule, by task) →
(filter), plus chat imports; the mix takes the verified non-reasoning samples, the imports
and, with ``references: true``, the sources' own reference answers.

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

from datagen.nonreasoning import GeneralSourcesConfig
from flows.common import publish_rollup
from flows.filter import FilterParams, filter_flow
from flows.general import GeneralParams, ImportChatParams, general_flow, import_chat_flow
from flows.generate import GenerateParams, generate_flow
from flows.ingest import IngestParams, ingest_flow
from flows.mix import MixParams, mix_flow
from flows.select import SelectParams, select_flow
from flows.train import GRPOParams, SFTParams, grpo_flow, sft_flow
from flows.verify import VerifyParams, verify_flow


class GeneralChainParams(BaseModel):
    """The non-reasoning chain. Dataset names default to ``general-*`` so they never share a
    dataset with the reasoning chain's versions."""

    model_config = ConfigDict(extra="forbid")

    #: the non-reasoning problems to make (``datagen.nonreasoning.GeneralSourcesConfig``)
    sources: GeneralSourcesConfig = Field(default_factory=GeneralSourcesConfig)
    problems_output: str = "general-problems"
    #: generation of the non-reasoning samples (None: references and imports only)
    generate: GenerateParams | None = None
    verify: VerifyParams = Field(default_factory=VerifyParams)
    filter: FilterParams | None = None
    #: chat-format SFT data imported as non-reasoning versions
    imports: list[ImportChatParams] = Field(default_factory=list)
    #: also mix the sources' reference answers as responses (a written reference is a response)
    references: bool = False


class PipelineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str | None = None
    ingest: IngestParams
    generate: GenerateParams
    verify: VerifyParams = Field(default_factory=VerifyParams)
    filter: FilterParams = Field(default_factory=FilterParams)
    select: SelectParams = Field(default_factory=SelectParams)
    mix: MixParams = Field(default_factory=MixParams)
    #: the non-reasoning chain (sources, generate, verify, filter, imports) feeding the mix
    general: GeneralChainParams | None = None
    #: optional training stages (GPU workers in production)
    sft: SFTParams | None = None
    grpo: GRPOParams | None = None


def _with(params: BaseModel, **update: Any):
    return params.model_copy(update=update)


def _named(params: BaseModel, default: str, **update: Any):
    """``params`` with ``update``, and ``output`` = ``default`` unless the config set it."""
    if "output" not in params.model_fields_set:
        update["output"] = default
    return params.model_copy(update=update)


def _general_chain(general: GeneralChainParams, root: str | None, out: dict[str, Any]) -> list[str]:
    """Run the non-reasoning chain; the versions the mix takes as non-reasoning inputs."""
    inputs: list[str] = []
    out["general"] = general_flow(GeneralParams(root=root, output=general.problems_output, sources=general.sources))
    if general.generate is not None:
        out["general_generate"] = generate_flow(_named(general.generate, "general-generations", root=root,
                                                       input=out["general"]))
        out["general_verify"] = verify_flow(_named(general.verify, "general-verified", root=root,
                                                   input=out["general_generate"]))
        last = out["general_verify"]
        if general.filter is not None:
            out["general_filter"] = filter_flow(_named(general.filter, "general-filtered", root=root, input=last))
            last = out["general_filter"]
        inputs.append(last)
    for i, imp in enumerate(general.imports):
        out[f"import_chat_{i}"] = import_chat_flow(_with(imp, root=root))
        inputs.append(out[f"import_chat_{i}"])
    if general.references:
        inputs.append(out["general"])
    return inputs


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
    non_reasoning = list(params.mix.non_reasoning)
    if params.general is not None:
        non_reasoning += _general_chain(params.general, root, out)
    out["mix"] = mix_flow(_with(params.mix, root=root, reasoning=out["select"], non_reasoning=non_reasoning))
    if params.sft is not None:
        out["sft"] = sft_flow(_with(params.sft, root=root, input=out["mix"]))
    if params.grpo is not None:
        out["grpo"] = grpo_flow(_with(params.grpo, root=root, input=out["grpo_prompts"]))
    publish_rollup(root, out)  # one artifact naming every version this run wrote
    return out
