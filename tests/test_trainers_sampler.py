"""The GRPO sampler: shared-prefill decoding must match transformers' own generate."""

from __future__ import annotations

import torch

from datagen.tinymodel import build_model, build_tokenizer
from trainers.config import GRPOConfig
from trainers.grpo import HFSampler, _sample_token, chat_prompt


def test_shared_prefill_decoding_matches_generate_with_left_padding(tmp_path):
    tok = build_tokenizer()
    model = build_model(tok, seed=3).eval()
    prompts = [chat_prompt(tok, p, None) for p in ("1+1=", "a much longer prompt 12345=", "xy")]
    cfg = GRPOConfig(output_dir=str(tmp_path), num_generations=3, max_new_tokens=6, temperature=1e-4, top_p=1.0)
    ids, attn, comp = HFSampler(cfg, tok).sample(model, prompts)
    assert ids.shape[0] == attn.shape[0] == comp.shape[0] == 9
    assert torch.equal(ids[0], ids[2]) and not torch.equal(ids[2], ids[3])
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    ref = model.generate(**enc, do_sample=False, max_new_tokens=6, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id)[:, enc["input_ids"].shape[1]:]
    for i in range(3):
        n = comp.shape[1]
        # near-zero temperature = greedy; every one of the G samples equals generate's
        for g in range(3):
            assert comp[i * 3 + g].tolist() == ref[i, :n].tolist()


def test_top_p_keeps_the_nucleus_only():
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(2000, 1)
    drawn = _sample_token(logits, 1.0, 0.7)
    assert set(drawn.tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.7; the tail is cut
    assert set(_sample_token(logits, 1.0, 0.1).tolist()) == {0}
