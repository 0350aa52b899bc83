"""The GRPO update's shared prompt prefix (trainers/grpo.py, ``_shared_prefix_logits``): each
group's prompt computed once must give the log-probs and gradients of a pass over every
full row, on the families it serves, and be refused where it would not."""

from __future__ import annotations

import pytest
import torch

from tests.test_trainers_sampler import MODELS, TOY_PROMPTS
from trainers.config import GRPOConfig
from trainers.grpo import _prefix_shareable, chat_prompt, completion_mask, policy_logprobs

G = 4


def _batch(tok, seed=0, T=10):
    """3 prompts of different lengths (left padding), G completions each with EOS at varied
    places (padding after it): the update's input, as the sampler returns it."""
    tok.padding_side = "left"
    enc = tok([chat_prompt(tok, p, None) for p in TOY_PROMPTS], return_tensors="pt", padding=True,
              add_special_tokens=False)
    gen = torch.Generator().manual_seed(seed)
    n = len(TOY_PROMPTS) * G
    comp = torch.randint(3, len(tok), (n, T), generator=gen)
    comp[comp == tok.eos_token_id] = 3
    for i in range(n):
        end = int(torch.randint(2, T + 2, (1,), generator=gen))  # > T: no EOS in this row
        if end <= T:
            comp[i, end - 1] = tok.eos_token_id
            comp[i, end:] = tok.pad_token_id
    mask = completion_mask(comp, tok.eos_token_id)
    ids = torch.cat([enc["input_ids"].repeat_interleave(G, 0), comp], dim=1)
    attn = torch.cat([enc["attention_mask"].repeat_interleave(G, 0), mask], dim=1)
    assert (enc["attention_mask"] == 0).any()  # some prompts are left-padded
    return ids, attn, mask, T


def _logp_and_grads(model, ids, attn, mask, T, group):
    model.zero_grad(set_to_none=True)
    logp, ent = policy_logprobs(model, ids, attn, T, 0.7, with_entropy=True, group=group)
    weights = torch.linspace(-1, 1, logp.numel()).view_as(logp)  # a loss that weighs every token differently
    (logp * weights * mask).sum().backward()
    return logp.detach(), ent, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", list(MODELS))
def test_shared_prompt_gives_the_full_rows_logprobs_and_gradients(family):
    from trainers.toy import toy_tokenizer

    tok = toy_tokenizer()
    model = MODELS[family](tok).train()
    ids, attn, mask, T = _batch(tok)
    logp, ent, grads = _logp_and_grads(model, ids, attn, mask, T, group=None)
    logp_s, ent_s, grads_s = _logp_and_grads(model, ids, attn, mask, T, group=G)
    m = mask.bool()
    assert torch.allclose(logp_s[m], logp[m], atol=1e-5), (logp_s - logp)[m].abs().max()
    assert torch.allclose(ent_s[m], ent[m], atol=1e-5)
    assert grads.keys() == grads_s.keys() and len(grads) == len(list(model.parameters()))
    for name, g in grads.items():
        # float32 sums in another order: equal to ~1e-6 of the gradient's scale
        assert (grads_s[name] - g).abs().max() <= 1e-5 * g.abs().max() + 1e-8, (name, (grads_s[name] - g).abs().max())
    # the comparison can fail: the prompt of another group in place of this one changes the result
    swapped = ids.clone()
    swapped[:G, : ids.shape[1] - T] = ids[G:2 * G, : ids.shape[1] - T]
    other, _, _ = _logp_and_grads(model, swapped, attn, mask, T, group=G)
    assert not torch.allclose(other[:G][m[:G]], logp[:G][m[:G]], atol=1e-3)


def test_shared_prompt_is_used_only_where_it_is_exact(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    from trainers.toy import toy_tokenizer

    tok = toy_tokenizer()
    llama = MODELS["llama"](tok)
    cfg = GRPOConfig(output_dir=str(tmp_path), prompts_per_step=4, num_generations=4)
    assert _prefix_shareable(llama, cfg, micro=8)
    assert not _prefix_shareable(llama, cfg, micro=6)  # a micro-batch that splits a group
    assert not _prefix_shareable(llama, cfg.model_copy(update={"share_prompt_prefix": False}), micro=8)
    assert not _prefix_shareable(llama, cfg.model_copy(update={"gradient_checkpointing": True}), micro=8)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2))
    assert not _prefix_shareable(gpt2, cfg, micro=8)  # a family it does not know
    sliding = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                           num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                           use_sliding_window=True, sliding_window=8, max_window_layers=0))
    assert not _prefix_shareable(sliding, cfg, micro=8)  # sliding-window layers keep their own cache


def test_update_with_shared_prompts_equals_the_full_rows_update(tmp_path):
    """One accumulating pass of the GRPO update (``_passes``), shared prompts on and off: the
    same loss and gradients."""
    from trainers.grpo import Rollout, _build, _passes, global_advantages
    from trainers.rewards import resolve_rewards
    from trainers.toy import toy_grpo_config, toy_model, toy_tokenizer

    tok = toy_tokenizer()
    ids, attn, mask, T = _batch(tok, seed=1)
    Lp = ids.shape[1] - T
    rewards = torch.linspace(0, 1, ids.shape[0])
    out = {}
    for share in (True, False):
        cfg = toy_grpo_config(str(tmp_path / str(share)), prompts_per_step=3, num_generations=G, max_new_tokens=T,
                              share_prompt_prefix=share)
        run = _build(cfg, toy_model(tok, seed=0), tok, resolve_rewards(cfg.rewards, None, config=cfg))
        assert run.share_prefix is share
        global_rewards, adv = global_advantages(rewards.clone(), G, cfg.scale_rewards)
        ro = Rollout(ids[:, :Lp], attn[:, :Lp], ids[:, Lp:], mask, mask.sum(1).tolist(), rewards.tolist(), {},
                     rewards, adv, 0.0, global_rewards)
        stats = _passes(run, ro, step_optimizer=False)
        out[share] = stats, {n: p.grad.clone() for n, p in run.model.named_parameters()}
    (s1, g1), (s0, g0) = out[True], out[False]
    assert s1["loss"] == pytest.approx(s0["loss"], abs=1e-6)
    assert s1["entropy"] == pytest.approx(s0["entropy"], abs=1e-6)
    for name in g0:
        assert (g1[name] - g0[name]).abs().max() <= 1e-5 * g0[name].abs().max() + 1e-8, name
