"""Run by tests/test_trainers_distributed.py and tests/test_trainers_ranks.py under ``torchrun --nproc_per_node 2``
(gloo on CPU): one short GRPO or SFT run; each rank prints what it saw."""

import json
import sys

import torch
import torch.distributed as dist

from trainers.toy import ToyLastDigit, toy_grpo_config, toy_model, toy_tokenizer

kinds, out_dir = sys.argv[1].split(","), sys.argv[2]  # e.g. "dapo,fsdp-grpo": one launch, several checks
kind = kinds[-1]
torch.set_num_threads(1)
tok = toy_tokenizer()
model = toy_model(tok, seed=0)
if "dapo" in kinds:
    # One global batch of 4 prompts x G=4, fixed (no sampling): the first half of the
    # prompts (rank 0's on 2 ranks) get long completions, the second half short ones,
    # so a per-rank token normaliser would weigh rank 1's tokens ~5x more.
    from trainers.distributed import rank, world_size
    from trainers.grpo import Rollout, _build, _passes, global_advantages
    from trainers.rewards import resolve_rewards

    cfg = toy_grpo_config(out_dir, seed=0, max_steps=1, prompts_per_step=4, num_generations=4, loss_type="dapo",
                          scale_rewards="batch", max_new_tokens=12, max_grad_norm=None, micro_batch_size=4)
    run = _build(cfg, model, tok, resolve_rewards(cfg.rewards, None, config=cfg))
    W, R, G, T = world_size(), rank(), 4, 12
    rows = ToyLastDigit().train_rows()[:4]
    gen = torch.Generator().manual_seed(7)
    comp = torch.randint(5, len(tok), (16, T), generator=gen)
    lengths = [12 if i < 8 else (2 + i % 3) for i in range(16)]
    mask = torch.zeros(16, T, dtype=torch.int64)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        comp[i, n - 1] = tok.eos_token_id
        comp[i, n:] = tok.pad_token_id
    rewards_all = torch.rand(16, generator=gen)
    mine = slice(R * 16 // W, (R + 1) * 16 // W)
    from trainers.data import chat_prompt

    tok.padding_side = "left"
    enc = tok([chat_prompt(tok, r["prompt"], None) for r in rows[R * 4 // W:(R + 1) * 4 // W]], return_tensors="pt",
              padding=True, add_special_tokens=False)
    global_rewards, adv = global_advantages(rewards_all[mine].clone(), G, cfg.scale_rewards)
    ro = Rollout(enc["input_ids"].repeat_interleave(G, 0), enc["attention_mask"].repeat_interleave(G, 0), comp[mine],
                 mask[mine], lengths[mine], [float(x) for x in rewards_all[mine]], {}, rewards_all[mine], adv, 0.0,
                 global_rewards)
    stats = _passes(run, ro, step_optimizer=False)
    grads = {n: p.grad.detach().clone() for n, p in run.accelerator.unwrap_model(run.model).named_parameters()}
    if R == 0:
        torch.save({"loss": stats["loss"], "grads": grads, "advantages": adv, "clip": stats["clip_low"],
                    "entropy": stats["entropy"]}, f"{out_dir}/dapo_world{W}.pt")
    seen = len(lengths[mine])
if kind in ("fsdp", "fsdp-grpo"):
    # The same global batch on 1 process (2 micro-batches accumulated) and on 2 FSDP
    # ranks (1 micro-batch each): SFT 2 steps, then a *resumed* run to step 3 from the
    # sharded checkpoint, on fresh weights; the test compares the final weights.
    import os

    from trainers.config import SFTConfig
    from trainers.fsdp import is_sharded
    from trainers.sft import train_sft

    W = int(os.environ.get("WORLD_SIZE", "1"))
    rows = [{"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["answer"]}]}
            for r in ToyLastDigit().train_rows()[:64]]

    def sft(steps, m):
        cfg = SFTConfig(output_dir=f"{out_dir}/sft_world{W}", max_steps=steps, per_device_batch_size=2,
                        gradient_accumulation_steps=2 // W, max_length=32, learning_rate=1e-3, lr_schedule="constant",
                        warmup_ratio=0.0, fsdp=True, resume=True)
        return train_sft(cfg, rows, model=m, tokenizer=tok)

    model = toy_model(tok, seed=0)
    if W == 1:
        result = sft(3, model)
    else:
        sft(2, model)
        result = sft(3, toy_model(tok, seed=0))
        assert result.steps == 3
    sharded = is_sharded(model)
    local = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters())
    if kind == "fsdp-grpo":  # GRPO with a sharded policy: gathered for generation, 2 steps
        from trainers.grpo import train_grpo

        gcfg = toy_grpo_config(f"{out_dir}/grpo_world{W}", seed=0, max_steps=2, prompts_per_step=4,
                               num_generations=4, max_new_tokens=3, fsdp=True)
        gres = train_grpo(gcfg, ToyLastDigit().train_rows(), model=toy_model(tok, seed=0), tokenizer=tok)
        assert gres.steps == 2
    from accelerate import PartialState

    print("RESULT " + json.dumps({"rank": dist.get_rank() if dist.is_initialized() else 0, "world": W,
                                  "sharded": sharded, "local_numel": local, "steps": result.steps}), flush=True)
    raise SystemExit(0)
elif kind == "grpo":
    from trainers.grpo import train_grpo

    cfg = toy_grpo_config(out_dir, seed=0, max_steps=3, prompts_per_step=8, num_generations=4)
    result = train_grpo(cfg, ToyLastDigit().train_rows(), model=model, tokenizer=tok)
    seen = len(result.history[0]["rewards"])
elif kind == "sft":
    from trainers.config import SFTConfig
    from trainers.sft import train_sft

    rows = [{"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["answer"]}]}
            for r in ToyLastDigit().train_rows()[:64]]
    cfg = SFTConfig(output_dir=out_dir, max_steps=3, per_device_batch_size=4, max_length=32, learning_rate=1e-3,
                    resume=False)
    result = train_sft(cfg, rows, model=model, tokenizer=tok)
    seen = result.steps
from accelerate import PartialState

checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
print("RESULT " + json.dumps({"rank": dist.get_rank() if dist.is_initialized() else 0,
                              "world": dist.get_world_size() if dist.is_initialized() else 1, "seen": seen,
                              "accelerate_world": PartialState().num_processes,
                              "checksum": checksum}), flush=True)
