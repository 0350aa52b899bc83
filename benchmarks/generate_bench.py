"""Generation throughput on the tiny local model (CPU here; bf16 on a GPU if present).

Rows: the hf backend at batch size 1 and 8 (n=4 samples per prompt), a peer
measured in the same run — a bare ``model.generate`` loop with the same
settings, no backend — and the stage overhead per shard (render + parse +
Parquet + marker) with a backend that answers instantly.
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import json
import tempfile
import time

import torch

from datagen.generate import GenerateConfig, GenOutput, GenRequest, GenResult, HFBackendConfig, SamplingConfig, generate
from datagen.generate.backends.hf import HFBackend
from datagen.tinymodel import build_model, build_tokenizer

PROMPTS, N, MAX_TOKENS = 32, 4, 64


class InstantBackend:
    """Answers every request at once with a fixed completion (isolates the stage's own cost)."""

    name = "instant"

    def generate(self, requests):
        text = "<think>2 plus 2 is 4.</think>The answer is 4."
        return [GenResult([GenOutput(text, "stop", 10, 12)] * r.n) for r in requests]


def bench_backend(batch_size: int, tokenizer, model) -> float:
    backend = HFBackend(HFBackendConfig(model="tiny", batch_size=batch_size), model=model, tokenizer=tokenizer)
    sampling = SamplingConfig(max_tokens=MAX_TOKENS, seed=0)
    requests = [GenRequest(prompt=f"What is {i} + {i}?", n=N, sampling=sampling) for i in range(PROMPTS)]
    started = time.perf_counter()
    results = backend.generate(requests)
    seconds = time.perf_counter() - started
    return sum(o.completion_tokens for r in results for o in r.outputs) / seconds


def bench_peer(tokenizer, model) -> float:
    """Bare transformers: the same prompts, batch 8, n=4, no backend around it."""
    device = next(model.parameters()).device
    tokens, started = 0, time.perf_counter()
    torch.manual_seed(0)
    for start in range(0, PROMPTS, 8):
        texts = [f"What is {i} + {i}?" for i in range(start, start + 8)]
        enc = tokenizer(texts, return_tensors="pt", padding=True).to(device)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=True, temperature=0.6, top_p=0.95, top_k=0,
                                 max_new_tokens=MAX_TOKENS, num_return_sequences=N,
                                 pad_token_id=tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        tokens += int((new != tokenizer.pad_token_id).sum())
    return tokens / (time.perf_counter() - started)


def bench_stage(problems: int = 2000, shard_size: int = 250) -> float:
    rows = [{"problem_id": f"p{i:05d}", "sample_id": f"p{i:05d}", "source": "b", "domain": "math", "language": "en",
             "prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(problems)]
    config = GenerateConfig(backend=HFBackendConfig(model="instant"), n=N, template="cold_start_fewshot.v1", k=2)
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        generate(rows, InstantBackend(), config, work_dir=work, shard_size=shard_size)
        seconds = time.perf_counter() - started
        resumed = time.perf_counter()
        generate(rows, InstantBackend(), config, work_dir=work, shard_size=shard_size)
        rerun = time.perf_counter() - resumed
    return problems * N / seconds, rerun


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, hidden_size=128, num_layers=4).to(device, dtype).eval()
    b1 = bench_backend(1, tokenizer, model)
    b8 = bench_backend(8, tokenizer, model)
    peer = bench_peer(tokenizer, model)
    stage_rows_s, rerun_s = bench_stage()
    print(f"tiny Llama (hidden 128, 4 layers) on {device} ({dtype}), {PROMPTS} prompts x n={N}, {MAX_TOKENS} tokens")
    print(f"{'measure':<44}{'value':>14}")
    print(f"{'hf backend, batch 1 (tokens/s)':<44}{b1:>14.0f}")
    print(f"{'hf backend, batch 8 (tokens/s)':<44}{b8:>14.0f}")
    print(f"{'peer: bare model.generate, batch 8 (tokens/s)':<44}{peer:>14.0f}")
    print(f"{'stage overhead, instant backend (rows/s)':<44}{stage_rows_s:>14.0f}")
    print(f"{'rerun with all shards finished (s)':<44}{rerun_s:>14.3f}")
    print(json.dumps({"device": device, "hf_batch1_tok_s": round(b1), "hf_batch8_tok_s": round(b8),
                      "peer_generate_batch8_tok_s": round(peer), "stage_rows_s": round(stage_rows_s),
                      "rerun_all_finished_s": round(rerun_s, 3)}))


if __name__ == "__main__":
    main()
