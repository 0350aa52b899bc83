"""The GRPO sampler: shared-prefill decoding must match transformers' own generate."""

from __future__ import annotations

import pytest
import torch

from datagen.tinymodel import build_model, build_tokenizer
from trainers.config import GRPOConfig
from trainers.grpo import HFSampler, _default_micro_batch, _sample_token, chat_prompt, completion_mask


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


# ---------------------------------------------------------------- the split cache
# HFSampler decodes the model families it knows through its own split KV cache and
# one-token attention (trainers/grpo.py, _SplitKV); these tests hold it to the model's
# own attention and cache on the same seeds: left padding, grouped-query attention,
# finished rows leaving the batch.


def _qwen2_gqa(tok, seed=0):
    """A tiny Qwen2 with 4 query heads over 2 key/value heads (grouped-query attention)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return Qwen2ForCausalLM(cfg).eval()


MODELS = {"llama": lambda tok: build_model(tok, seed=3).eval(), "qwen2-gqa": _qwen2_gqa}
# prompts of 3 lengths: left padding on two of them
TOY_PROMPTS = ("1+1=", "123+456=78", "7")


def _draw(sampler, model, prompts, seed):
    torch.manual_seed(seed)
    return sampler.sample(model, prompts)


@pytest.mark.parametrize("family", list(MODELS))
def test_split_cache_draws_what_the_models_own_attention_draws(tmp_path, family):
    from trainers.toy import toy_tokenizer

    tok = toy_tokenizer()  # 24 tokens: a random model ends ~1 completion in 24 per token
    model = MODELS[family](tok)
    prompts = [chat_prompt(tok, p, None) for p in TOY_PROMPTS]
    cfg = GRPOConfig(output_dir=str(tmp_path), num_generations=8, max_new_tokens=40, temperature=1.0, top_p=1.0)
    fast, plain = HFSampler(cfg, tok), HFSampler(cfg, tok)
    plain.split_kv = False
    ids, attn, comp = _draw(fast, model, prompts, seed=5)
    ids2, attn2, comp2 = _draw(plain, model, prompts, seed=5)
    assert fast.last["split_kv"] and not plain.last["split_kv"]
    # finished rows left the batch in both (the same rule, so the same random draws)
    assert fast.last["compactions"] >= 1 and fast.last["compactions"] == plain.last["compactions"]
    assert torch.equal(ids, ids2) and torch.equal(attn, attn2)
    assert comp.shape == comp2.shape and torch.equal(comp, comp2)
    lengths = completion_mask(comp, tok.eos_token_id).sum(dim=1)
    assert lengths.min() < 40 and lengths.max() == comp.shape[1]  # some ended early; width = the longest
    assert model.config._attn_implementation == "sdpa"  # given back after decoding
    # and not the same draws as another seed (the comparison above can fail)
    _, _, comp3 = _draw(fast, model, prompts, seed=6)
    assert not (comp3.shape == comp.shape and torch.equal(comp3, comp))


def test_split_cache_greedy_equals_generate_with_gqa_and_left_padding(tmp_path):
    tok = build_tokenizer()
    model = _qwen2_gqa(tok, seed=1)
    prompts = [chat_prompt(tok, p, None) for p in ("1+1=", "a much longer prompt 12345=", "xy")]
    cfg = GRPOConfig(output_dir=str(tmp_path), num_generations=2, max_new_tokens=40, temperature=1e-4, top_p=1.0)
    sampler = HFSampler(cfg, tok)
    sampler.chunk = 8  # several moves of the tail into main within 40 tokens
    _, _, comp = _draw(sampler, model, prompts, seed=0)
    assert sampler.last["split_kv"]
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    ref = model.generate(**enc, do_sample=False, max_new_tokens=40, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id)[:, enc["input_ids"].shape[1]:]
    n = comp.shape[1]
    for i in range(3):
        for g in range(2):
            assert comp[i * 2 + g].tolist() == ref[i, :n].tolist()


def test_sparse_done_checks_keep_completions_whole(tmp_path):
    """On a GPU the "all done?" check (a host sync) runs every 8 tokens: rows keep their
    tokens up to EOS, padding after it, and the width is still the longest completion."""
    from trainers.toy import toy_tokenizer

    tok = toy_tokenizer()
    model = build_model(tok, seed=3).eval()
    cfg = GRPOConfig(output_dir=str(tmp_path), num_generations=8, max_new_tokens=40, temperature=1.0, top_p=1.0)
    sampler = HFSampler(cfg, tok)
    sampler.sync_every = 8
    _, _, comp = _draw(sampler, model, [chat_prompt(tok, p, None) for p in TOY_PROMPTS], seed=5)
    mask = completion_mask(comp, tok.eos_token_id)
    assert int(mask.sum(dim=1).max()) == comp.shape[1]
    assert bool((comp[mask == 0] == tok.pad_token_id).all())
    ended = mask.sum(dim=1) < comp.shape[1]
    assert ended.any() and sampler.last["compactions"] >= 1


def test_cpu_micro_batches_default_to_a_few_thousand_tokens():
    assert _default_micro_batch(256, 128, torch.device("cpu")) == 32  # 4096 tokens
    assert _default_micro_batch(256, 1, torch.device("cpu")) == 256  # short completions: one pass
    assert _default_micro_batch(48, 1000, torch.device("cpu")) == 4  # the largest divisor under the budget
    assert _default_micro_batch(7, 4096, torch.device("cpu")) == 1
    assert _default_micro_batch(256, 128, torch.device("cuda")) == 256  # GPU: all in one pass
