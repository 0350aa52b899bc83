"""Our GRPO vs TRL's GRPOTrainer, and our SFT vs TRL's SFTTrainer, on the toy
setup (same tiny model, same batch, G, mu, completion length), CPU.

    python benchmarks/grpo_vs_trl.py [--steps 20]     # needs the `bench` extra (trl)

Prints s/step (GRPO) and tokens/s (SFT) for both and the ratios; last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from trainers.toy import ToyLastDigit, toy_accuracy, toy_grpo_config, toy_model, toy_tokenizer

PROMPTS, G, MU = 16, 16, 1
NEW = 128  # generated tokens per completion (--new-tokens); R1-shaped runs need >= 128


def long_tokenizer():
    """The toy tokenizer with EOS moved to an id the model cannot emit (one past its
    vocabulary), so every completion is exactly NEW tokens for both trainers: step
    times compare at a fixed, long completion length instead of a random policy's
    early EOS."""
    tok = toy_tokenizer()
    tok.add_special_tokens({"eos_token": "<|never|>"})
    return tok


def bench_model(tok):
    # built on the plain toy tokenizer: the model's vocabulary stops before the added EOS
    from datagen.tinymodel import build_model

    assert len(tok) == len(toy_tokenizer()) + 1
    return build_model(toy_tokenizer(), hidden_size=64, num_layers=2, num_heads=4, max_position_embeddings=NEW + 64, seed=0)




def ours_grpo(steps: int, root: str) -> float:
    from trainers.grpo import train_grpo

    tok = long_tokenizer() if NEW > 1 else toy_tokenizer()
    model = bench_model(tok) if NEW > 1 else toy_model(tok, seed=0)
    cfg = toy_grpo_config(f"{root}/ours", max_steps=steps, prompts_per_step=PROMPTS, num_generations=G, mu=MU,
                          max_new_tokens=NEW)
    res = train_grpo(cfg, ToyLastDigit().train_rows(), model=model, tokenizer=tok)
    times = [h["time/step_s"] for h in res.history[2:]]  # skip warm-up steps
    return sum(times) / len(times)


class _StepTimer:
    def __init__(self):
        self.stamps = []

    def callback(self):
        from transformers import TrainerCallback

        timer = self

        class CB(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                timer.stamps.append(time.perf_counter())

        return CB()


def trl_grpo(steps: int, root: str) -> float:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    tok = long_tokenizer() if NEW > 1 else toy_tokenizer()
    model = bench_model(tok) if NEW > 1 else toy_model(tok, seed=0)
    rows = ToyLastDigit().train_rows()
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}], "answer": r["answer"]} for r in rows])

    def reward(completions, answer, **_):
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        return toy_accuracy(texts, answer)

    args = GRPOConfig(output_dir=f"{root}/trl", per_device_train_batch_size=PROMPTS * G, num_generations=G,
                      max_completion_length=NEW, num_iterations=MU, learning_rate=1e-3, beta=0.0, max_steps=steps,
                      logging_steps=1000, report_to="none", use_cpu=True, save_strategy="no", temperature=1.0,
                      top_k=0, lr_scheduler_type="constant", warmup_steps=0)
    timer = _StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=ds, processing_class=tok,
                          callbacks=[timer.callback()])
    trainer.train()
    gaps = [b - a for a, b in zip(timer.stamps[1:], timer.stamps[2:])]
    return sum(gaps) / len(gaps)


def sft_rows(n: int = 512):
    return [{"messages": [{"role": "user", "content": f"What is {i}+{i % 7}? Answer briefly."},
                          {"role": "assistant", "content": f"The sum of {i} and {i % 7} is {i + i % 7}."}]}
            for i in range(n)]


def ours_sft(steps: int, root: str) -> float:
    from datagen.tinymodel import build_model, build_tokenizer
    from trainers.config import SFTConfig
    from trainers.sft import train_sft

    tok = build_tokenizer()
    model = build_model(tok)
    res = train_sft(SFTConfig(output_dir=f"{root}/sft-ours", max_steps=steps, per_device_batch_size=8,
                              max_length=512, learning_rate=1e-3, packing=True), sft_rows(), model=model,
                    tokenizer=tok)
    return res.metrics["tokens_per_s"]


def trl_sft(steps: int, root: str) -> float:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from datagen.tinymodel import build_model, build_tokenizer

    tok = build_tokenizer()
    model = build_model(tok)
    args = SFTConfig(output_dir=f"{root}/sft-trl", max_steps=steps, per_device_train_batch_size=8, max_length=512,
                     packing=True, assistant_only_loss=False, completion_only_loss=None, learning_rate=1e-3,
                     report_to="none", use_cpu=True, save_strategy="no", logging_steps=1000)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(sft_rows()), processing_class=tok)
    t0 = time.perf_counter()
    out = trainer.train()
    secs = time.perf_counter() - t0
    # TRL's own count of the tokens it trained on (from its final log)
    n_tokens = next(float(h["num_tokens"]) for h in reversed(trainer.state.log_history) if "num_tokens" in h)
    del out
    return n_tokens / secs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--new-tokens", type=int, default=128, help="generated tokens per completion (default 128)")
    ap.add_argument("--grpo-only", action="store_true", help="skip the short-row SFT comparison "
                    "(benchmarks/sft_scale.py has the R1-shaped one)")
    args = ap.parse_args()
    global NEW
    NEW = args.new_tokens
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as root:
        # ours first: accelerate's process-wide state is then set by ours, and TRL's trainers accept it
        o = ours_grpo(args.steps, root)
        so = float("nan") if args.grpo_only else ours_sft(args.steps, root)
        t = trl_grpo(args.steps, root)
        st = float("nan") if args.grpo_only else trl_sft(args.steps, root)
    print(f"GRPO  (P={PROMPTS}, G={G}, mu={MU}, new={NEW})  ours {o:.3f} s/step   TRL {t:.3f} s/step   ratio {o / t:.2f}x")
    print(f"SFT   (packed, bs=8, 512 tok)       ours {so:,.0f} tok/s   TRL {st:,.0f} tok/s   speedup {so / st:.2f}x")
    print(json.dumps({"grpo_s_per_step": {"ours": o, "trl": t, "ratio": o / t},
                      "sft_tokens_per_s": {"ours": so, "trl": st, "ratio": so / st}}))


if __name__ == "__main__":
    main()
