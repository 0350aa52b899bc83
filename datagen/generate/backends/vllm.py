"""Offline vLLM backend for GPU workers.

Thin by design: it uses vLLM's documented offline API only (``vllm.LLM``,
``SamplingParams``, ``LLM.generate`` with token-id prompts,
``LLM.get_tokenizer``). vLLM is CUDA-only and pins its own torch, so it is an
optional extra (``.[gpu]``) imported here, inside the class, never at module
import. For production the recommended path is ``vllm serve`` + the openai
backend (README, "Generation"); this one is for a worker that owns its GPU.

Three things this module gets right, each a known trap:

- **One BOS.** Chat prompts are rendered with the model's own chat template
  (which writes the BOS itself for Llama- and R1-Distill-style templates) and
  tokenized here *without* special tokens, and the engine gets token ids
  (``{"prompt_token_ids": …}``). Passing the rendered text instead makes
  ``LLM.generate`` tokenize it with special tokens again: two BOS tokens.
  A raw text prompt is tokenized the way vLLM would (with special tokens).
- **One engine per process, one caller at a time.** ``vllm.LLM`` is not
  thread-safe, and the generate flow runs shard tasks on several threads:
  the engine is built once per process (a second backend config in the same
  process is refused: two engines would share one GPU's memory budget) and
  every ``generate`` call holds a lock.
- **Per-sample seeds.** Each of a request's n samples is its own
  ``SamplingParams(n=1, seed=…)`` with the sample's seed; vLLM's prefix
  cache shares their prompt's prefill.
"""

from __future__ import annotations

import threading
from typing import Any

from datagen.generate.backends.base import (
    GenOutput,
    GenRequest,
    GenResult,
    ends_in_open_think,
    isolate_failures,
    render_chat,
)
from datagen.generate.config import VLLMBackendConfig

#: The process's one engine: (config it was built with, vllm.LLM).
_ENGINE: tuple[VLLMBackendConfig, Any] | None = None
_ENGINE_BUILD_LOCK = threading.Lock()
#: Held around every call into the engine (vllm.LLM is not thread-safe).
ENGINE_LOCK = threading.Lock()


def _engine(config: VLLMBackendConfig):
    """The process's ``vllm.LLM`` for ``config``, built on first use."""
    global _ENGINE
    with _ENGINE_BUILD_LOCK:
        if _ENGINE is not None:
            built, llm = _ENGINE
            if built != config:
                raise RuntimeError(
                    f"this process already runs a vLLM engine for {built.model!r}; one engine per process "
                    f"(start another worker for {config.model!r})")
            return llm
        from vllm import LLM  # optional extra: only GPU workers have it

        from datagen.models_store import resolve_model

        kwargs: dict[str, Any] = {
            "model": resolve_model(config.model),  # NAME@VERSION: fetched once from the store
            "tensor_parallel_size": config.tensor_parallel_size,
            "dtype": config.dtype,
            "gpu_memory_utilization": config.gpu_memory_utilization,
            "seed": config.seed,
            "trust_remote_code": config.trust_remote_code,
        }
        if config.max_model_len is not None:
            kwargs["max_model_len"] = config.max_model_len
        llm = LLM(**kwargs)
        _ENGINE = (config, llm)
        return llm


class VLLMBackend:
    """Generate with the process's ``vllm.LLM`` (tensor parallel across the worker's GPUs)."""

    def __init__(self, config: VLLMBackendConfig):
        self.config = config
        self.name = config.model
        self.endpoint = f"vllm:{config.model}"
        self.llm = _engine(config)
        self.tokenizer = self.llm.get_tokenizer()

    def render(self, request: GenRequest) -> str:
        """The exact text the model continues (chat template applied for messages)."""
        if request.messages is not None:
            return render_chat(self.tokenizer, request.messages)
        return request.prompt  # type: ignore[return-value]

    def prompt_token_ids(self, request: GenRequest) -> list[int]:
        """The token ids the engine gets: the chat template's own BOS only, or vLLM's default for raw text."""
        text = self.render(request)
        return self.tokenizer.encode(text, add_special_tokens=request.messages is None)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Sample each request n times in one engine call; results in request order.

        Holds ``ENGINE_LOCK`` throughout (the tokenizer is the engine's too, and a
        fast tokenizer used from two threads at once can fail with "Already borrowed").
        """
        with ENGINE_LOCK:
            return isolate_failures(self._run_batch, requests)

    def _run_batch(self, requests: list[GenRequest]) -> list[GenResult]:
        from vllm import SamplingParams

        prompts, params, owner = [], [], []
        for i, r in enumerate(requests):
            ids = self.prompt_token_ids(r)
            for seed in r.sample_seeds():
                prompts.append({"prompt_token_ids": ids})
                params.append(SamplingParams(
                    n=1,
                    temperature=r.sampling.temperature,
                    top_p=r.sampling.top_p,
                    max_tokens=r.sampling.max_tokens,
                    stop=list(r.sampling.stop) or None,
                    seed=seed,
                    # Keep <think> and friends in the text: split_completion needs them.
                    skip_special_tokens=False,
                ))
                owner.append(i)
        outputs = self.llm.generate(prompts, params, use_tqdm=False)  # under ENGINE_LOCK (generate)
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        samples: list[list[GenOutput]] = [[] for _ in requests]
        for i, out in zip(owner, outputs):
            prompt_tokens = len(out.prompt_token_ids) if out.prompt_token_ids is not None else None
            completion = out.outputs[0]
            reason = completion.finish_reason
            finish = reason if reason in ("stop", "length") else "error"
            samples[i].append(GenOutput(
                completion.text,
                finish,
                prompt_tokens=prompt_tokens,
                completion_tokens=len(completion.token_ids),
                error=None if finish != "error" else f"finish_reason {reason!r}",
            ))
        return [GenResult(s, think_prefilled=ends_in_open_think(self.render(r))) for s, r in zip(samples, requests)]
