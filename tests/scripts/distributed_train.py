"""Run by tests/test_trainers_distributed.py under ``torchrun --nproc_per_node 2``
(gloo on CPU): one short GRPO or SFT run; each rank prints what it saw."""

import json
import sys

import torch
import torch.distributed as dist

from trainers.toy import ToyLastDigit, toy_grpo_config, toy_model, toy_tokenizer

kind, out_dir = sys.argv[1], sys.argv[2]
torch.set_num_threads(1)
tok = toy_tokenizer()
model = toy_model(tok, seed=0)
if kind == "grpo":
    from trainers.grpo import train_grpo

    cfg = toy_grpo_config(out_dir, seed=0, max_steps=3, prompts_per_step=8, num_generations=4)
    result = train_grpo(cfg, ToyLastDigit().train_rows(), model=model, tokenizer=tok)
    seen = len(result.history[0]["rewards"])
else:
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
print("RESULT " + json.dumps({"rank": dist.get_rank(), "world": dist.get_world_size(), "seen": seen,
                              "accelerate_world": PartialState().num_processes,
                              "checksum": checksum}), flush=True)
