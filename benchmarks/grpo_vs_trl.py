"""Our GRPO vs TRL's GRPOTrainer, and our SFT vs TRL's SFTTrainer, on the toy
setup (same tiny model, same batch, G, mu, completion length), CPU.

    python benchmarks/grpo_vs_trl.py [--steps 12] [--rounds 4] [--new-tokens 128] [--grpo-only]
                                     [--ours-precision fastest|fp32|bf16] [--trl-kept-memory] [--few-shot K]
    # needs the `bench` extra (trl)

GRPO prompts start with 8 solved examples by default (65 tokens, as few-shot and R1-template
prompts are long; ``--few-shot 0`` gives the bare 9-token toy prompts), and each trainer runs
at its fastest setting for the CPU (``--ours-precision``, ``--trl-kept-memory``: see main).
GRPO: ``--rounds`` runs of each trainer alternate (ours, TRL, TRL, ours, ours, TRL, ...),
each in a fresh process of its own, so that load on a shared machine falls on both and
neither trainer inherits the other's process state (allocator, accelerate, threads);
each run's first two steps are warm-up, and each process first makes an untimed short run
of the same trainer (TRL's first run in a process was ~15% slower than its second). A
round's ratio compares its two adjacent runs; the figure is the median over rounds (a
paired measure: a slow spell on the machine moves both runs of a round). Both must generate exactly ``--new-tokens`` per completion
(checked from each trainer's own length metric). Prints s/step (GRPO) and tokens/s
(SFT) for both and the ratios; last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from trainers.toy import ToyLastDigit, toy_accuracy, toy_grpo_config, toy_model, toy_tokenizer

PROMPTS, G, MU = 16, 16, 1
WARMUP_STEPS = 4  # a worker's untimed first run (see main)
NEW = 128  # generated tokens per completion (--new-tokens); R1-shaped runs need >= 128
# TRL's GRPOConfig defaults to bf16 autocast and gradient checkpointing; on this CPU both
# only slow it down (bf16 matmuls are slow here, and a tiny model needs no activation
# memory savings), and ours runs fp32 without checkpointing. Its best CPU settings are
# the fair peer; --trl-defaults measures its defaults instead.
TRL_PRECISION = {"bf16": False, "gradient_checkpointing": False}
# Each trainer at its fastest setting for the hardware: ours in bf16 on a CPU with native bf16
# (bf16 matmuls, fp32 attention: trainers.grpo._cpu_fp32_attention), else fp32; TRL in fp32
# (under bf16 autocast it is slower here: 2.47 vs 1.96 s/step). --ours-precision fp32 gives
# the like-for-like fp32 figure.
OURS_PRECISION = "fp32"
FEW_SHOT = 8  # --few-shot: worked examples before every prompt (the same text for both trainers)


def bench_rows() -> list[dict]:
    """The toy task's rows; with ``--few-shot K`` each prompt starts with the same K solved
    examples (~7 tokens each), as a few-shot prompt does: prompts of ~9 tokens become ~9 + 7K."""
    rows = ToyLastDigit().train_rows()
    if not FEW_SHOT:
        return rows
    shots = "".join(r["prompt"] + r["answer"] for r in ToyLastDigit().eval_rows()[:FEW_SHOT])
    return [{**r, "prompt": shots + r["prompt"]} for r in rows]


def long_tokenizer():
    """The toy tokenizer with EOS moved to an id the model cannot emit (one past its
    vocabulary), so every completion is exactly NEW tokens for both trainers: step
    times compare at a fixed, long completion length instead of a random policy's
    early EOS."""
    tok = toy_tokenizer()
    tok.add_special_tokens({"eos_token": "<|never|>"})
    return tok


def bench_model(tok):
    """The tiny model, built on the plain toy tokenizer (its vocabulary stops before the
    added EOS), with its config's and generation config's EOS set to ``tok``'s. TRL stops
    generating at *every* EOS id it finds (the tokenizer's and the model's generation
    config's): left at the toy model's own ``<|end|>``, TRL's completions averaged ~18
    tokens while ours ran all NEW."""
    from datagen.tinymodel import build_model

    assert len(tok) == len(toy_tokenizer()) + 1
    model = build_model(toy_tokenizer(), hidden_size=64, num_layers=2, num_heads=4, max_position_embeddings=NEW + 64 + 8 * FEW_SHOT,
                        seed=0)
    if NEW > 1:
        model.config.eos_token_id = model.generation_config.eos_token_id = tok.eos_token_id
    return model


def ours_grpo(steps: int, root: str) -> float:
    from trainers.grpo import train_grpo

    tok = long_tokenizer() if NEW > 1 else toy_tokenizer()
    model = bench_model(tok) if NEW > 1 else toy_model(tok, seed=0)
    cfg = toy_grpo_config(f"{root}/ours", max_steps=steps, prompts_per_step=PROMPTS, num_generations=G, mu=MU,
                          max_new_tokens=NEW, precision=OURS_PRECISION)
    res = train_grpo(cfg, bench_rows(), model=model, tokenizer=tok)
    times = [h["time/step_s"] for h in res.history[2:]]  # skip warm-up steps
    _check_length("ours", [h["completion_length/mean"] for h in res.history])
    return sum(times) / len(times)


def _check_length(who: str, means: list[float]) -> None:
    """Both trainers must generate exactly NEW tokens per completion, or the step times
    compare different work."""
    if NEW > 1 and any(abs(m - NEW) > 1e-6 for m in means):
        raise SystemExit(f"{who}: mean completion length {means} != --new-tokens {NEW}; the comparison is void")


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
    rows = bench_rows()
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}], "answer": r["answer"]} for r in rows])

    def reward(completions, answer, **_):
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        return toy_accuracy(texts, answer)

    args = GRPOConfig(output_dir=f"{root}/trl", per_device_train_batch_size=PROMPTS * G, num_generations=G,
                      max_completion_length=NEW, num_iterations=MU, learning_rate=1e-3, beta=0.0, max_steps=steps,
                      logging_steps=1000, report_to="none", use_cpu=True, save_strategy="no", temperature=1.0,
                      top_k=0, lr_scheduler_type="constant", warmup_steps=0, **TRL_PRECISION)
    timer = _StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=ds, processing_class=tok,
                          callbacks=[timer.callback()])
    trainer.train()
    gaps = [b - a for a, b in zip(timer.stamps[1:], timer.stamps[2:])]
    _check_length("TRL", [h["completions/mean_length"] for h in trainer.state.log_history
                          if "completions/mean_length" in h])
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


def _reset_accelerate() -> None:
    """Forget accelerate's process-wide state, so each trainer sets its own precision
    (accelerate refuses a second Accelerator with a different mixed_precision)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


TRL_ENV: dict[str, str] = {}  # --trl-kept-memory: trainers.runtime.kept_cpu_memory_env()


def _run_one(who: str, steps: int) -> float:
    """One GRPO run of ``who`` (ours/trl) in a fresh process: its mean s/step."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", who, "--steps", str(steps),
           "--new-tokens", str(NEW), "--ours-precision", OURS_PRECISION, "--few-shot", str(FEW_SHOT)] + (
               ["--trl-defaults"] if TRL_PRECISION == {} else [])
    env = {**os.environ, **(TRL_ENV if who == "trl" else {})}
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{who} run failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--new-tokens", type=int, default=128, help="generated tokens per completion (default 128)")
    ap.add_argument("--grpo-only", action="store_true", help="skip the short-row SFT comparison "
                    "(benchmarks/sft_scale.py has the R1-shaped one)")
    ap.add_argument("--trl-defaults", action="store_true", help="run TRL with its GRPOConfig defaults (bf16 "
                    "autocast, gradient checkpointing) instead of its fastest CPU settings")
    ap.add_argument("--ours-precision", choices=["fastest", "fp32", "bf16"], default="fastest",
                    help="our trainer's precision: fastest (default) = bf16 (bf16 matmuls, fp32 attention) on a CPU "
                    "with native bf16, else fp32; fp32 = like for like with TRL's fp32")
    ap.add_argument("--few-shot", type=int, default=8, help="start every prompt with this many solved examples "
                    "(~7 tokens each; default 8: 65-token prompts, as a few-shot or R1-template prompt is long; "
                    "0: the bare ~9-token toy prompts)")
    ap.add_argument("--trl-kept-memory", action="store_true", help="give TRL's process the glibc malloc settings "
                    "our trainer sets for itself on CPU (trainers.runtime.keep_cpu_memory), so the comparison "
                    "is of the trainers' code alone")
    ap.add_argument("--rounds", type=int, default=4, help="rounds of one run per trainer, alternating which goes "
                    "first, each run in a fresh process (default 4)")
    ap.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)  # one run, in this process
    args = ap.parse_args()
    global NEW, TRL_PRECISION, OURS_PRECISION, FEW_SHOT
    NEW = args.new_tokens
    FEW_SHOT = args.few_shot
    if args.ours_precision == "fastest":
        from trainers.runtime import cpu_has_native_bf16

        OURS_PRECISION = "bf16" if cpu_has_native_bf16() else "fp32"
    else:
        OURS_PRECISION = args.ours_precision
    if args.trl_kept_memory:  # what keep_cpu_memory sets in our trainer's process, as glibc's variables
        from trainers.runtime import kept_cpu_memory_env

        TRL_ENV.update(kept_cpu_memory_env())
    if args.trl_defaults:
        TRL_PRECISION = {}
    torch.set_num_threads(1)
    if args.worker:
        run = ours_grpo if args.worker == "ours" else trl_grpo
        with tempfile.TemporaryDirectory() as root:
            # A short run first, in the same process: TRL's first run in a process was ~15%
            # slower than its second (2.43-2.68 vs 2.08-2.32 s/step, even past its warm-up
            # steps; ours 1.45 both times), so each trainer is timed on its second run.
            run(WARMUP_STEPS, f"{root}/warmup")
            _reset_accelerate()
            print(run(args.steps, f"{root}/timed"))
        return
    rounds = []
    for r in range(args.rounds):
        order = ("ours", "trl") if r % 2 == 0 else ("trl", "ours")
        got = {who: _run_one(who, args.steps) for who in order}
        o, t = got["ours"], got["trl"]
        rounds.append((o, t))
        print(f"round {r}: ours {o:.3f} s/step  TRL {t:.3f} s/step  ratio {o / t:.2f}x  "
              f"(load {os.getloadavg()[0]:.2f})", flush=True)
    with tempfile.TemporaryDirectory() as root:
        _reset_accelerate()
        so = float("nan") if args.grpo_only else ours_sft(args.steps, root)
        _reset_accelerate()
        st = float("nan") if args.grpo_only else trl_sft(args.steps, root)
    o = sum(x for x, _ in rounds) / len(rounds)
    t = sum(y for _, y in rounds) / len(rounds)
    ratios = [x / y for x, y in rounds]
    med = statistics.median(ratios)
    peer = "TRL with our allocator settings" if args.trl_kept_memory else "TRL with glibc's defaults"
    trl_prec = "TRL defaults" if args.trl_defaults else "TRL fp32"
    print(f"GRPO  (P={PROMPTS}, G={G}, mu={MU}, new={NEW}, few-shot={FEW_SHOT}; ours {OURS_PRECISION}, {trl_prec}; {peer})  ours {o:.3f} s/step   TRL {t:.3f} s/step   "
          f"ratio of means {o / t:.2f}x   median round ratio {med:.2f}x (range {min(ratios):.2f}-{max(ratios):.2f})")
    print(f"SFT   (packed, bs=8, 512 tok)       ours {so:,.0f} tok/s   TRL {st:,.0f} tok/s   speedup {so / st:.2f}x")
    print(json.dumps({"grpo_s_per_step": {"ours": o, "trl": t, "ratio": med, "ratio_of_means": o / t,
                                          "round_ratios": ratios, "rounds": rounds,
                                          "trl_kept_memory": args.trl_kept_memory,
                                          "ours_precision": OURS_PRECISION, "trl_defaults": args.trl_defaults,
                                          "few_shot": FEW_SHOT},
                      "sft_tokens_per_s": {"ours": so, "trl": st, "ratio": so / st}}))


if __name__ == "__main__":
    main()
