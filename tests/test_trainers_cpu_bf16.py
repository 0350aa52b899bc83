"""GRPO with ``precision: bf16`` on a CPU: linear layers in bf16 autocast, attention in fp32
(``trainers.grpo._cpu_fp32_attention``; PyTorch's CPU flash attention is several times slower in bf16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.test_trainers_prefix import G, _batch
from tests.test_trainers_sampler import MODELS
from trainers.grpo import _CPU_FP32_ATTENTION, _cpu_fp32_attention, policy_logprobs


@pytest.mark.parametrize("family", list(MODELS))
@pytest.mark.parametrize("group", [None, G])
def test_fp32_attention_is_the_models_own_sdpa_with_its_masks(family, group):
    """Outside autocast the switched model computes exactly what it computed on ``sdpa``:
    the same function and the same causal + left-padding masks, on full rows and on the
    shared-prompt path (whose queries start after the cached prompt)."""
    from trainers.toy import toy_tokenizer

    tok = toy_tokenizer()
    model = MODELS[family](tok)
    ids, attn, _mask, T = _batch(tok, seed=2)
    with torch.no_grad():
        ref, _ = policy_logprobs(model, ids, attn, T, 1.0, group=group)
        assert _cpu_fp32_attention(model) and model.config._attn_implementation == _CPU_FP32_ATTENTION
        got, _ = policy_logprobs(model, ids, attn, T, 1.0, group=group)
    assert torch.equal(got, ref)


def test_bf16_autocast_runs_attention_in_fp32(monkeypatch):
    from transformers.integrations import sdpa_attention

    from trainers.toy import toy_tokenizer

    tok = toy_tokenizer()
    model = MODELS["qwen2-gqa"](tok)
    ids, attn, mask, T = _batch(tok, seed=3)
    with torch.no_grad():
        ref, _ = policy_logprobs(model, ids, attn, T, 1.0)
    seen = []
    real = sdpa_attention.sdpa_attention_forward

    def spy(module, query, key, value, *args, **kwargs):
        seen.append((query.dtype, key.dtype, value.dtype, torch.is_autocast_enabled("cpu")))
        return real(module, query, key, value, *args, **kwargs)

    monkeypatch.setattr(sdpa_attention, "sdpa_attention_forward", spy)
    _cpu_fp32_attention(model)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = policy_logprobs(model, ids, attn, T, 1.0, group=G)
    assert seen and all(s == (torch.float32, torch.float32, torch.float32, False) for s in seen)
    m = mask.bool()
    err = (got.float() - ref)[m].abs()
    assert err.max() < 0.1 and err.mean() < 0.02, (err.max(), err.mean())  # bf16 matmuls, not garbage


SCRIPT = """
import json, sys, torch
from trainers.grpo import train_grpo
from trainers.toy import ToyLastDigit, toy_grpo_config, toy_model, toy_tokenizer
tok = toy_tokenizer()
model = toy_model(tok, seed=0)
cfg = toy_grpo_config(sys.argv[1], max_steps=2, prompts_per_step=4, num_generations=4, max_new_tokens=4,
                      precision="bf16")
res = train_grpo(cfg, ToyLastDigit().train_rows(), model=model, tokenizer=tok)
print(json.dumps({"steps": res.steps, "loss": [h["loss"] for h in res.history],
                  "attn": model.config._attn_implementation}))
"""


def test_grpo_trains_in_bf16_on_cpu_and_gives_the_model_back(tmp_path):
    """A run in its own process (accelerate fixes one precision per process)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run")], capture_output=True, text=True, check=False,
                         cwd=root, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["steps"] == 2 and all(abs(x) < 100 for x in got["loss"])
    assert got["attn"] == "sdpa"  # the caller's model is given its own attention back
    assert _CPU_FP32_ATTENTION not in (tmp_path / "run" / "final" / "config.json").read_text()
