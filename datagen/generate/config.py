"""Typed configuration of the generation stage (pydantic; unknown keys fail).

These models are also the Prefect flow's parameters: YAML sets values, the
command line overrides them, and a bad combination fails at construction with
a message that says what to change.

- ``SamplingConfig``: the sampling parameters recorded on every output row.
  Defaults follow the consensus for R1-style data (DeepSeek-R1 report:
  temperature 0.6, top-p 0.95) with a long budget for long CoT (32k tokens).
- ``HFBackendConfig`` / ``OpenAIBackendConfig`` / ``VLLMBackendConfig``: one
  per backend, told apart by ``kind``.
- ``GenerateConfig``: what to generate (template, exemplars, n per problem).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingConfig(_Strict):
    """Sampling parameters of one request (``n`` is per request, not here)."""

    temperature: float = Field(0.6, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(32768, ge=1)
    stop: tuple[str, ...] = ()
    #: Base of the per-sample seeds (``datagen.generate.stage.sample_seed``:
    #: a hash of (seed, problem_id, k)). None = ``GenerateConfig.seed``.
    #: Sampling is always seeded, so the same config reproduces its samples.
    seed: int | None = None


class HFBackendConfig(_Strict):
    """transformers ``generate`` on CPU or GPU (small models, tests)."""

    kind: Literal["hf"] = "hf"
    model: str
    #: "auto" = cuda when available, else cpu.
    device: str = "auto"
    #: "auto" = bfloat16 on GPU, float32 on CPU.
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    #: Prompts per ``generate`` call (each expands to n sequences).
    batch_size: int = Field(8, ge=1)


class OpenAIBackendConfig(_Strict):
    """Any OpenAI-compatible server (``vllm serve``, SGLang, a hosted API)."""

    kind: Literal["openai"] = "openai"
    model: str
    base_url: str = "http://127.0.0.1:8000/v1"
    #: Name of the environment variable holding the API key (unset = no auth header).
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(64, ge=1)
    timeout_s: float = Field(600.0, gt=0)
    #: Retries of one request on 429, 5xx, connection errors and timeouts.
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    max_backoff_s: float = Field(60.0, ge=0)
    #: A local tokenizer (folder or hub id) whose chat template renders chat
    #: prompts here; they then go to ``/v1/completions`` as text, so the exact
    #: prompt is known (pre-filled ``<think>``, one BOS) and an assistant
    #: pre-fill is possible. None = the server's ``/v1/chat/completions``.
    tokenizer: str | None = None
    #: Extra fields merged into every request body, for what a server adds to
    #: the API, e.g. ``{skip_special_tokens: false}`` for ``vllm serve`` so
    #: special think tokens survive decoding. (``transformers serve`` refuses
    #: unknown fields.)
    extra_body: dict[str, Any] = Field(default_factory=dict)


class VLLMBackendConfig(_Strict):
    """Offline ``vllm.LLM`` on a GPU worker."""

    kind: Literal["vllm"] = "vllm"
    model: str
    tensor_parallel_size: int = Field(1, ge=1)
    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    seed: int = 0
    trust_remote_code: bool = False


BackendConfig = Annotated[
    HFBackendConfig | OpenAIBackendConfig | VLLMBackendConfig, Field(discriminator="kind")
]


class GenerateConfig(_Strict):
    """One generation run: which prompt, how many samples, how to sample.

    ``template`` names a file ``prompts/<template>.txt``; ``exemplars`` names
    ``prompts/exemplars/<exemplars>.jsonl`` and is required when the template
    has an ``{{exemplars}}`` slot (checked when the template is loaded).
    """

    backend: BackendConfig
    sampling: SamplingConfig = SamplingConfig()
    n: int = Field(4, ge=1)
    template: str = "cold_start_fewshot.v1"
    exemplars: str | None = "long_cot_math.v1"
    #: Few-shot exemplars per problem, drawn seeded by (seed, problem_id).
    k: int = Field(2, ge=0)
    seed: int = 0
    #: Whether completions start inside a pre-filled ``<think>``. None = ask
    #: the backend (hf/vllm see the rendered prompt; the openai chat endpoint
    #: does not, so set it for models whose template pre-fills).
    think_prefilled: bool | None = None
    #: Requests per backend call within a shard (None = the whole shard at once,
    #: which lets vLLM batch continuously).
    request_batch_size: int | None = Field(None, ge=1)
    #: Override of the prompts folder (default: the repository's ``prompts/``).
    prompts_dir: str | None = None
    #: A shard whose share of failed samples (``finish_reason == "error"``)
    #: is above this fails (and is retried as a task); a shard of nothing but
    #: errors always fails, so a dead server never becomes a committed version.
    max_error_share: float = Field(0.02, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> GenerateConfig:
        if self.k > 0 and self.exemplars is None:
            raise ValueError("k > 0 needs an exemplar file: set exemplars=<name> or k=0")
        return self

    def fingerprint(self) -> str:
        """Hash of everything that changes the outputs (not throughput knobs).

        Shard names include it, so a rerun with the same config finds its
        finished shards and a changed config never reuses stale ones.
        """
        payload = {
            "model": self.backend.model,
            "sampling": self.sampling.model_dump(mode="json"),
            "n": self.n,
            "template": self.template,
            "exemplars": self.exemplars,
            "k": self.k,
            "seed": self.seed,
            "think_prefilled": self.think_prefilled,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
