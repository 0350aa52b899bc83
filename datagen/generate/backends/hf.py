"""transformers ``generate`` backend: small models on CPU, or one GPU in bf16.

Prompts are batched with left padding (a decoder-only model continues from the
last position, so padding must sit on the left) and each prompt is repeated n
times, each row sampled with its own ``torch.Generator`` seeded by the sample's
seed (never the process-wide ``torch.manual_seed``), so sample k of a problem
does not depend on the other shards running on other threads. Decoding keeps special tokens: ``<think>``
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
    render_chat,
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
        from datagen.models_store import resolve_model

        path = resolve_model(config.model)  # NAME@VERSION: a model in the store, fetched once into a local cache
        self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        else:
            model = model.to(dtype)
        self.model = model.to(device).eval()
        self.device = device
        eos = self.model.generation_config.eos_token_id
        # Every sampling parameter is set per call from the request; the model
        # folder's own defaults (do_sample, temperature, top_k…) must not leak
        # into a call through generate()'s merge of unset values.
        from transformers import GenerationConfig

        self.model.generation_config = GenerationConfig(
            bos_token_id=self.model.generation_config.bos_token_id, eos_token_id=eos,
            pad_token_id=self.model.generation_config.pad_token_id,
        )
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
            return render_chat(self.tokenizer, request.messages)
        return request.prompt  # type: ignore[return-value]

    # ------------------------------------------------------------------ internals

    def _run_batch(self, requests: list[GenRequest]) -> list[GenResult]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

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
        per_prompt = n if do_sample else 1
        processors = LogitsProcessorList()
        if do_sample:
            # Each of the n rows of a prompt gets its own torch.Generator seeded by
            # its sample seed, and the sampling happens in a logits processor that
            # leaves only the drawn token; generate() then runs "greedy" on that.
            # Why: generate()'s own sampling draws every row from the one global
            # RNG, so a sample would depend on the batch, on the other shards'
            # threads (torch.manual_seed is process-wide) and on their timing.
            seeds = [s for r in requests for s in r.sample_seeds()]
            processors.append(_SeededSampler(seeds, sampling.temperature, sampling.top_p, self.device))
            enc = {k: v.repeat_interleave(n, dim=0) for k, v in enc.items()}
        gen_config = GenerationConfig(
            do_sample=False,
            max_new_tokens=sampling.max_tokens,
            num_return_sequences=1,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self._eos_ids) or None,
            stop_strings=list(sampling.stop) or None,
        )
        with torch.inference_mode():
            sequences = self.model.generate(
                **enc, generation_config=gen_config, logits_processor=processors,
                tokenizer=self.tokenizer if sampling.stop else None,
            )
        prompt_len = enc["input_ids"].shape[1]
        prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
        new_tokens = sequences[:, prompt_len:].tolist()
        results = []
        for i, request in enumerate(requests):
            rows = new_tokens[i * per_prompt : (i + 1) * per_prompt]
            outputs = [self._decode(ids, int(prompt_tokens[i * per_prompt]), sampling) for ids in rows]
            if not do_sample:
                # Greedy decoding gives the same sequence n times: decode once, repeat.
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


class _SeededSampler:
    """A logits processor that samples each row with its own seeded generator.

    Temperature, then nucleus (top-p) filtering, as vLLM and the OpenAI API
    define them (no hidden top-k); returns scores that keep only the drawn
    token, so generate()'s greedy step picks it. A row with seed None draws
    from a generator seeded from the OS.
    """

    def __init__(self, seeds: list[int | None], temperature: float, top_p: float, device: str):
        import torch

        self.temperature, self.top_p = temperature, top_p
        self.generators = []
        for seed in seeds:
            g = torch.Generator(device=device)
            if seed is None:
                g.seed()
            else:
                g.manual_seed(seed)
            self.generators.append(g)

    def __call__(self, input_ids, scores):
        import torch

        if scores.shape[0] != len(self.generators):
            raise RuntimeError(f"{scores.shape[0]} rows for {len(self.generators)} seeded generators")
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            # Keep the smallest prefix whose mass reaches top_p (the top token always).
            drop = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= self.top_p
            sorted_probs = sorted_probs.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        drawn = torch.stack([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self.generators)])
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, drawn, 0.0)
