"""GRPO learns the toy task (trainers/toy.py::ToyLastDigit) from random weights:
held-out greedy accuracy before/after for 5 seeds, and the shuffled-reward control.

    python benchmarks/grpo_toy.py [--steps 100] [--seeds 0 1 2 3 4]

Last line: {"seeds": [{"seed": s, "before": acc, "after": acc}, ...], "control_after": acc}
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from trainers.grpo import train_grpo
from trainers.toy import ToyLastDigit, greedy_accuracy, toy_grpo_config, toy_model, toy_tokenizer


def run(seed: int, steps: int, shuffle: bool, root: str) -> tuple[float, float, float]:
    task = ToyLastDigit()
    tok = toy_tokenizer()
    model = toy_model(tok, seed=seed)
    before = greedy_accuracy(model, tok, task.eval_rows(), max_new_tokens=1)
    t0 = time.perf_counter()
    train_grpo(toy_grpo_config(f"{root}/s{seed}-{shuffle}", seed=seed, shuffle_rewards=shuffle, max_steps=steps),
               task.train_rows(), model=model, tokenizer=tok)
    return before, greedy_accuracy(model, tok, task.eval_rows(), max_new_tokens=1), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = []
    with tempfile.TemporaryDirectory() as root:
        print(f"{'seed':>4} {'before':>7} {'after':>7} {'train s':>8}")
        for s in args.seeds:
            before, after, secs = run(s, args.steps, False, root)
            out.append({"seed": s, "before": before, "after": after})
            print(f"{s:>4} {before:>7.3f} {after:>7.3f} {secs:>8.1f}")
        _, control, secs = run(args.seeds[0], args.steps, True, root)
        print(f"control (seed {args.seeds[0]}, shuffled rewards): after={control:.3f} ({secs:.1f}s)")
    print(json.dumps({"seeds": out, "control_after": control}))


if __name__ == "__main__":
    main()
