"""Offline vLLM backend for GPU workers.

Thin by design: it uses vLLM's documented offline API only (``vllm.LLM``,
``SamplingParams``, ``LLM.generate``, ``LLM.get_tokenizer``). vLLM is
CUDA-only and pins its own torch, so it is an optional extra (``.[gpu]``)
imported here, inside the class, never at module import.

``SamplingParams(n=...)`` makes the n samples of a prompt share one prefill.
Chat messages are rendered with the model's own chat template via the
tokenizer, so raw prompts and chats go to one ``generate`` call and vLLM can
batch them all continuously.
"""

from __future__ import annotations

from datagen.generate.backends.base import (
    GenOutput,
    GenRequest,
    GenResult,
    ends_in_open_think,
    isolate_failures,
)
from datagen.generate.config import VLLMBackendConfig


class VLLMBackend:
    """Generate with ``vllm.LLM`` (tensor parallel across the worker's GPUs)."""

    def __init__(self, config: VLLMBackendConfig):
        from vllm import LLM  # optional extra: only GPU workers have it

        self.config = config
        self.name = config.model
        kwargs = dict(
            model=config.model,
            tensor_parallel_size=config.tensor_parallel_size,
            dtype=config.dtype,
            gpu_memory_utilization=config.gpu_memory_utilization,
            seed=config.seed,
            trust_remote_code=config.trust_remote_code,
        )
        if config.max_model_len is not None:
            kwargs["max_model_len"] = config.max_model_len
        self.llm = LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def render(self, request: GenRequest) -> str:
        """The exact text the model continues (chat template applied for messages)."""
        if request.messages is not None:
            return self.tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        return request.prompt  # type: ignore[return-value]

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Sample each request n times in one engine call; results in request order."""
        return isolate_failures(self._run_batch, requests)

    def _run_batch(self, requests: list[GenRequest]) -> list[GenResult]:
        from vllm import SamplingParams

        texts = [self.render(r) for r in requests]
        params = [
            SamplingParams(
                n=r.n,
                temperature=r.sampling.temperature,
                top_p=r.sampling.top_p,
                max_tokens=r.sampling.max_tokens,
                stop=list(r.sampling.stop) or None,
                seed=r.sampling.seed,
                # Keep <think> and friends in the text: split_completion needs them.
                skip_special_tokens=False,
            )
            for r in requests
        ]
        outputs = self.llm.generate(texts, params, use_tqdm=False)
        results = []
        for text, out in zip(texts, outputs):
            prompt_tokens = len(out.prompt_token_ids) if out.prompt_token_ids is not None else None
            samples = []
            for completion in out.outputs:
                reason = completion.finish_reason
                finish = reason if reason in ("stop", "length") else "error"
                samples.append(
                    GenOutput(
                        completion.text,
                        finish,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=len(completion.token_ids),
                        error=None if finish != "error" else f"finish_reason {reason!r}",
                    )
                )
            results.append(GenResult(samples, think_prefilled=ends_in_open_think(text)))
        return results
