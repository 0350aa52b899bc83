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


def test_sampling_draws_the_softmax_distribution():
    """The Gumbel-max draw is softmax(logits / T): frequencies within 4 sigma of the probabilities,
    at T=1 and T=0.5, with and without a nucleus (renormalised inside it)."""
    torch.manual_seed(1)
    p = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03])
    n = 40_000
    for T, top_p in ((1.0, 1.0), (0.5, 1.0), (1.0, 0.85)):
        want = torch.softmax(p.log() / T, dim=0)
        if top_p < 1.0:
            want = torch.where(want.cumsum(0) - want > top_p, torch.zeros_like(want), want)
            want = want / want.sum()
        drawn = _sample_token(p.log().repeat(n, 1), T, top_p)
        got = torch.bincount(drawn, minlength=len(p)).double() / n
        sigma = (want.double() * (1 - want.double()) / n).sqrt()
        assert ((got - want.double()).abs() <= 4 * sigma + 1e-12).all(), (T, top_p, got, want)


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


def _qwen3(tok, seed=0):
    """A tiny Qwen3: per-head q/k RMSNorm before RoPE, grouped-query attention."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                      tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():  # q/k norm weights away from 1, so that applying them is visible
        for layer in model.model.layers:
            layer.self_attn.q_norm.weight.uniform_(0.5, 1.5)
            layer.self_attn.k_norm.weight.uniform_(0.5, 1.5)
    return model


MODELS = {"llama": lambda tok: build_model(tok, seed=3).eval(), "qwen2-gqa": _qwen2_gqa, "qwen3": _qwen3}
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
    assert fast.last["split_kv"] and fast.last["lean"] and not plain.last["split_kv"]
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


@pytest.mark.parametrize("family", list(MODELS))
def test_lean_decode_step_gives_the_models_own_logits(family):
    """The lean step (trainers.grpo._lean_decode_step) against the model's forward, token by
    token over a prefilled cache with left padding: the same next-token logits."""
    from transformers.cache_utils import DynamicCache

    from trainers.grpo import _lean_decode_step, _SplitKV
    from trainers.toy import toy_tokenizer

    tok = toy_tokenizer()
    model = MODELS[family](tok)
    tok.padding_side = "left"
    enc = tok([chat_prompt(tok, p, None) for p in TOY_PROMPTS], return_tensors="pt", padding=True,
              add_special_tokens=False)
    attn = enc["attention_mask"]
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        ref_cache, lean_cache = DynamicCache(config=model.config), DynamicCache(config=model.config)
        model(input_ids=enc["input_ids"], attention_mask=attn, position_ids=pos, past_key_values=ref_cache,
              use_cache=True)
        model(input_ids=enc["input_ids"], attention_mask=attn, position_ids=pos, past_key_values=lean_cache,
              use_cache=True)
        split = _SplitKV.install(model, lean_cache, attn, chunk=4)  # chunk 4: the tail moves into main twice
        assert split.lean
        try:
            next_pos, ref_attn = attn.sum(-1, keepdim=True), attn
            gen = torch.Generator().manual_seed(0)
            for _ in range(10):
                nxt = torch.randint(3, len(tok) - 1, (attn.shape[0],), generator=gen)
                lean = _lean_decode_step(model, split, nxt, next_pos)
                ref_attn = torch.cat([ref_attn, torch.ones_like(ref_attn[:, :1])], dim=1)
                split.uninstall()  # the reference: the model's own attention over its own cache
                ref = model(input_ids=nxt[:, None], attention_mask=ref_attn, position_ids=next_pos,
                            past_key_values=ref_cache, use_cache=True).logits[:, -1]
                _reinstall(split, model)
                torch.testing.assert_close(lean, ref, rtol=1e-5, atol=1e-5)
                next_pos = next_pos + 1
        finally:
            split.uninstall()


def _reinstall(split, model):
    """Route the model's attention to ``split`` again (its cache layers stay as they are)."""
    from transformers import AttentionInterface

    from trainers.grpo import _ACTIVE_SPLIT, _SPLIT_KV_ATTENTION

    assert _SPLIT_KV_ATTENTION in AttentionInterface._global_mapping
    split.token = _ACTIVE_SPLIT.set(split)
    model.set_attn_implementation(_SPLIT_KV_ATTENTION)
    return split


def test_lean_decode_is_refused_for_hooked_models():
    """A model whose modules carry hooks (FSDP, accelerate dispatch) computes what the hooks
    make of it: the lean step must not stand in for it."""
    from trainers.grpo import _lean_decodable
    from trainers.toy import toy_tokenizer

    model = build_model(toy_tokenizer(), seed=0)
    assert _lean_decodable(model)
    handle = model.model.layers[0].mlp.register_forward_pre_hook(lambda m, a: None)
    assert not _lean_decodable(model)
    handle.remove()
    assert _lean_decodable(model)


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
    assert _default_micro_batch(256, 128, torch.device("cpu"), bf16=True) == 64  # bf16 matmuls: 8192 tokens
    assert _default_micro_batch(256, 128, torch.device("cuda"), bf16=True) == 256
