"""transformers ``generate`` backend: small models on CPU, or one GPU in bf16.

Prompts are batched with left padding (a decoder-only model continues from the
last position, so padding must sit on the left) and each prompt is sampled n
times with ``num_return_sequences``. Decoding keeps special tokens: ``<think>``
is a special token in many tokenizers, and dropping it would hide the
reasoning boundary from ``split_completion``. Only end-of-sequence and padding
are cut, by token id.
"""

from __future__ import annotations

import logging
from itertools import groupby
from typing import Any

from datagen.generate.backends.base import (
    GenOutput,
    GenRequest,
    GenResult,
    ends_in_open_think,
    isolate_failures,
    sampling_key,
)
from datagen.generate.config import HFBackendConfig

log = logging.getLogger(__name__)


class HFBackend:
    """Generate with a local transformers causal LM.

    ``model``/``tokenizer`` may be passed already built (tests, benchmarks);
    otherwise both load from ``config.model`` (a local path or hub id).
    """

    def __init__(self, config: HFBackendConfig, *, model: Any = None, tokenizer: Any = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.name = config.model
        device = config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype_name = config.dtype
        if dtype_name == "auto":
            dtype_name = "bfloat16" if device.startswith("cuda") else "float32"
        dtype = getattr(torch, dtype_name)
        self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(config.model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(config.model, dtype=dtype)
        else:
            model = model.to(dtype)
        self.model = model.to(device).eval()
        self.device = device
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self._eos_ids = eos_ids

    # ------------------------------------------------------------------ public

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Sample each request n times; results in request order."""
        results: list[GenResult | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: sampling_key(requests[i].sampling, requests[i].n))
        for _, group in groupby(order, key=lambda i: sampling_key(requests[i].sampling, requests[i].n)):
            indices = list(group)
            for start in range(0, len(indices), self.config.batch_size):
                chunk = indices[start : start + self.config.batch_size]
                chunk_results = isolate_failures(self._run_batch, [requests[i] for i in chunk])
                for i, result in zip(chunk, chunk_results):
                    results[i] = result
        return results  # type: ignore[return-value]

    def render(self, request: GenRequest) -> str:
        """The exact text the model continues (chat template applied for messages)."""
        if request.messages is not None:
            return self.tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        return request.prompt  # type: ignore[return-value]

    # ------------------------------------------------------------------ internals

    def _run_batch(self, requests: list[GenRequest]) -> list[GenResult]:
        import torch
        from transformers import GenerationConfig

        sampling, n = requests[0].sampling, requests[0].n
        texts = [self.render(r) for r in requests]
        # A chat template already wrote any BOS; a raw prompt gets the tokenizer's default.
        add_special = requests[0].messages is None
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=add_special).to(self.device)
        context = getattr(self.model.config, "max_position_embeddings", None)
        if context is not None and enc["input_ids"].shape[1] > context:
            # Like vLLM's max_model_len check: a prompt past the context is a bad
            # request, not something to generate garbage from.
            raise ValueError(f"prompt is {enc['input_ids'].shape[1]} tokens, longer than the model's context {context}")
        do_sample = sampling.temperature > 0
        gen_config = GenerationConfig(
            do_sample=do_sample,
            temperature=sampling.temperature if do_sample else None,
            top_p=sampling.top_p if do_sample else None,
            top_k=0 if do_sample else None,  # transformers' default top_k=50 would be a hidden extra filter
            max_new_tokens=sampling.max_tokens,
            # Greedy decoding gives the same sequence n times: decode once, repeat.
            num_return_sequences=n if do_sample else 1,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self._eos_ids) or None,
            stop_strings=list(sampling.stop) or None,
        )
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        with torch.inference_mode():
            sequences = self.model.generate(
                **enc, generation_config=gen_config, tokenizer=self.tokenizer if sampling.stop else None
            )
        prompt_len = enc["input_ids"].shape[1]
        prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
        new_tokens = sequences[:, prompt_len:].tolist()
        per_prompt = n if do_sample else 1
        results = []
        for i, request in enumerate(requests):
            rows = new_tokens[i * per_prompt : (i + 1) * per_prompt]
            outputs = [self._decode(ids, int(prompt_tokens[i]), sampling) for ids in rows]
            if not do_sample:
                outputs = outputs * n
            results.append(GenResult(outputs, think_prefilled=ends_in_open_think(texts[i])))
        return results

    def _decode(self, ids: list[int], prompt_tokens: int, sampling) -> GenOutput:
        pad = self.tokenizer.pad_token_id
        cut = next((j for j, t in enumerate(ids) if t in self._eos_ids), None)
        if cut is not None:
            body, finish, count = ids[:cut], "stop", cut + 1  # the EOS token counts, as in vLLM/OpenAI usage
        else:
            body = ids
            while body and body[-1] == pad:  # rows that stopped early (stop string) are right-padded
                body = body[:-1]
            finish, count = ("length" if len(body) >= sampling.max_tokens else "stop"), len(body)
        text = self.tokenizer.decode(body, skip_special_tokens=False)
        for stop in sampling.stop:
            at = text.find(stop)
            if at >= 0:  # the OpenAI/vLLM convention: the stop string is not part of the output
                text, finish = text[:at], "stop"
        return GenOutput(text, finish, prompt_tokens=prompt_tokens, completion_tokens=count)
