"""The one table of flows: what ``datagen run FLOW`` runs and what ``flows.deploy`` registers on demand.

Plain data (no registry magic, no Prefect import): each entry names its flow
function by entrypoint, its parameter model, and — for stage flows served on
demand — the kind of work pool it belongs on. The pipeline's nightly
deployment and the generate fan-out/shard deployments are declared in
``flows.deploy`` itself.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FlowEntry:
    entrypoint: str  # ``flows/<module>.py:<flow function>``, relative to the repository root
    params: str  # the parameter model's name in that module
    pool: str | None  # "cpu" / "gpu": an on-demand deployment on that pool; None: no on-demand deployment
    description: str

    @property
    def module(self) -> str:
        return self.entrypoint.split(":")[0].removesuffix(".py").replace("/", ".")

    def flow(self) -> Any:
        """The flow function (imports its module)."""
        return getattr(importlib.import_module(self.module), self.entrypoint.split(":")[1])

    def params_model(self) -> Any:
        """The parameter model (imports its module)."""
        return getattr(importlib.import_module(self.module), self.params)


FLOWS: dict[str, FlowEntry] = {
    "ingest": FlowEntry("flows/ingest.py:ingest_flow", "IngestParams", "cpu",
                        "Import a problem file as a problems version."),
    "generate": FlowEntry("flows/generate.py:generate_flow", "GenerateParams", "gpu",
                          "Generate on this GPU worker (fan_out: false)."),
    "verify": FlowEntry("flows/verify.py:verify_flow", "VerifyParams", "cpu", "Verify a generations version."),
    "filter": FlowEntry("flows/filter.py:filter_flow", "FilterParams", "cpu", "Filter a verified version."),
    "select": FlowEntry("flows/select.py:select_flow", "SelectParams", "cpu",
                        "Rejection sampling and the GRPO prompt set."),
    "mix": FlowEntry("flows/mix.py:mix_flow", "MixParams", "cpu",
                     "Reasoning + non-reasoning samples as chat messages."),
    # No on-demand deployment (pool None): the sft flow runs it as its first step; alone: datagen run tokenize.
    "tokenize": FlowEntry("flows/tokenize.py:tokenize_flow", "TokenizeParams", None,
                          "Chat messages -> token ids + assistant masks, cached by tokenizer and chat template."),
    "sft": FlowEntry("flows/train.py:sft_flow", "SFTParams", "gpu", "SFT on an SFT-mix version."),
    "grpo": FlowEntry("flows/train.py:grpo_flow", "GRPOParams", "gpu", "GRPO on a prompt-set version."),
    "general": FlowEntry("flows/general.py:general_flow", "GeneralParams", None,
                         "Non-reasoning problems: writing, factual QA, self-cognition, translation."),
    "import_chat": FlowEntry("flows/general.py:import_chat_flow", "ImportChatParams", None,
                             "Import chat-format SFT data as a non-reasoning version."),
    # No on-demand deployment yet (pool None): run it with ``datagen run eval``.
    "eval": FlowEntry("flows/eval.py:eval_flow", "EvalParams", None,
                      "R1's pass@1 (mean over k samples) and maj@k of a model on a problems version."),
    "pipeline": FlowEntry("flows/pipeline.py:pipeline_flow", "PipelineParams", None,
                          "The whole pipeline (scheduled nightly by flows.deploy)."),
}
