"""Toy verifiable tasks small enough to learn with RL on a CPU in a minute.

``ToyLastDigit`` (the "GRPO learns" task): ``n+1=`` with ``n`` a 3-digit
number (``000``..``999``); the answer is the last digit of ``n + 1``. The
prompt matters: the answer is uniform over ``0``..``9`` so any policy that
ignores the prompt scores exactly 0.1 in expectation. Held-out numbers are
never trained on, so held-out accuracy measures a learned rule, not recall.
One-token answers keep the output space small and the reward dense (a random
policy over the 24-token vocabulary is right ~4% of the time, so most groups
of 16 contain a success).

Used by the "GRPO learns" test, ``benchmarks/grpo_toy.py`` and
``benchmarks/grpo_vs_trl.py``:

- ``ToyLastDigit``: the problem generator (prompt rows in the project's record
  shape: ``prompt``, ``answer``, ``domain``, ``language``) with a train pool and
  a disjoint held-out pool;
- ``toy_accuracy`` / ``toy_format``: rewards in the project's reward shape,
  registered by name in ``trainers.rewards.REWARDS``;
- ``toy_tokenizer`` / ``toy_model``: a 24-token char tokenizer and a tiny Qwen2;
- ``greedy_accuracy``: held-out greedy accuracy of a model;
- ``toy_grpo_config``: the recipe known to learn the task quickly.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

TOY_CHARSET = "0123456789+="

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def extract_answer(completion: str) -> str:
    """The text inside ``<answer>…</answer>`` if present, else the whole completion, stripped."""
    m = _ANSWER_TAG.search(completion)
    return (m.group(1) if m else completion).strip()


def toy_accuracy(completions: list[str], answer: list[str], **_: Any) -> list[float | None]:
    """1.0 when the extracted answer equals the gold digits exactly, else 0.0;
    None when there is no gold answer (can't judge)."""
    return [
        None if gold is None else float(extract_answer(c) == str(gold).strip())
        for c, gold in zip(completions, answer)
    ]


def toy_format(completions: list[str], **_: Any) -> list[float | None]:
    """1.0 when the completion is one or two digits (a well-formed answer), else 0.0."""
    return [float(bool(re.fullmatch(r"\d{1,2}", extract_answer(c)))) for c in completions]


@dataclass(frozen=True)
class ToyLastDigit:
    """``NNN+k=`` -> last digit of ``NNN + k``; ``eval_size`` numbers held out."""

    k: int = 1
    eval_size: int = 200
    split_seed: int = 1

    def _numbers(self) -> tuple[list[int], list[int]]:
        nums = list(range(1000))
        random.Random(self.split_seed).shuffle(nums)
        return nums[self.eval_size:], nums[: self.eval_size]

    def row(self, n: int) -> dict[str, Any]:
        return {"prompt": f"{n:03d}+{self.k}=", "answer": str((n + self.k) % 10), "domain": "math", "language": "en"}

    def train_rows(self) -> list[dict[str, Any]]:
        return [self.row(n) for n in self._numbers()[0]]

    def eval_rows(self) -> list[dict[str, Any]]:
        return [self.row(n) for n in self._numbers()[1]]


def toy_grpo_config(output_dir: str, *, seed: int = 0, shuffle_rewards: bool = False, **overrides):
    """The recipe that learns ``ToyLastDigit`` from random weights in ~150 steps
    (held-out greedy accuracy ~0.6-0.9): one-token answers, G=16, lr 1e-3.
    Pair it with ``toy_model(toy_tokenizer(), seed=seed)`` and evaluate with
    ``greedy_accuracy(..., max_new_tokens=1)``."""
    from trainers.config import GRPOConfig

    base = {"output_dir": output_dir, "seed": seed, "rewards": {"toy_accuracy": 1.0}, "learning_rate": 1e-3,
                "max_steps": 150, "prompts_per_step": 16, "num_generations": 16, "max_new_tokens": 1, "lr_schedule": "constant",
                "shuffle_rewards": shuffle_rewards, "resume": False, "log_every": 10}
    base.update(overrides)
    return GRPOConfig(**base)


def toy_tokenizer(*, prefill_think: bool = False):
    """The char tokenizer restricted to digits, '+' and '=' (24 tokens with the specials)."""
    from datagen.tinymodel import build_tokenizer

    return build_tokenizer(TOY_CHARSET, prefill_think=prefill_think)


def toy_model(tokenizer, *, seed: int = 0, hidden_size: int = 64, num_layers: int = 2):
    from datagen.tinymodel import build_model

    return build_model(tokenizer, hidden_size=hidden_size, num_layers=num_layers, num_heads=4,
                       max_position_embeddings=64, seed=seed)


def greedy_completions(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 4,
                       system_prompt: str | None = None) -> list[str]:
    """Greedy completions (decoded up to EOS, special tokens kept)."""
    import torch

    from trainers.data import chat_prompt

    tokenizer.padding_side = "left"
    texts = [chat_prompt(tokenizer, p, system_prompt) for p in prompts]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model.train(was_training)
    comp = out[:, enc["input_ids"].shape[1]:].tolist()
    result = []
    for c in comp:
        if tokenizer.eos_token_id in c:
            c = c[: c.index(tokenizer.eos_token_id)]
        result.append(tokenizer.decode(c, skip_special_tokens=False).replace(tokenizer.pad_token, ""))
    return result


def greedy_accuracy(model, tokenizer, rows: list[dict[str, Any]], *, max_new_tokens: int = 4,
                    system_prompt: str | None = None) -> float:
    """Share of ``rows`` whose greedy completion's answer equals ``answer``."""
    comps = greedy_completions(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=max_new_tokens,
                               system_prompt=system_prompt)
    scores = toy_accuracy(comps, [r["answer"] for r in rows])
    return sum(s or 0.0 for s in scores) / len(rows)
