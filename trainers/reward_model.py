"""Reward models for GRPO "in all scenarios" (DeepSeek-R1 §2.3.4), and rewards combined by domain.

R1's last RL stage rewards reasoning prompts with rules (accuracy, format, language) and
general prompts with reward models: *helpfulness* judged on the final summary only (so the
reward does not reach into the reasoning), *harmlessness* on the whole output, reasoning
included (so harm hidden in the reasoning is caught). Here:

- ``RewardModelReward``: a transformers sequence-classification model (any
  ``AutoModelForSequenceClassification`` folder) as a reward function of the project's
  shape, ``f(completions, prompt=..., **columns) -> list[float | None]``. ``input:
  summary`` scores the prompt with the summary (the completion after ``</think>``;
  a completion with no final answer scores 0.0, the floor), ``input: whole`` with the
  whole completion. Texts go through the reward model's chat template when it has one
  (user = prompt, assistant = response), else ``prompt + "\\n\\n" + response``; they are
  scored in batches, without gradients, on the trainer's device (accelerate's current
  device: each rank scores its own completions on its own GPU); the model loads on first
  use. The reward is ``sigmoid(logit[label])`` (a (0, 1) value that adds up with rule
  rewards) or the raw logit.
- ``by_domain``: one reward whose value for a row is the weighted sum of the rewards
  named for the row's ``domain`` (``GRPOConfig.rewards_by_domain``), so math rows get
  rule rewards and general rows reward models in the same run and the same groups. A
  row whose domain has no entry, or one of whose parts cannot judge, gets None.

Both are built from the GRPO config by ``configured_rewards`` and resolve by name in the
one reward table (``trainers.rewards.resolve_rewards``).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

RewardFn = Callable[..., list[float | None]]


class RewardModelConfig(BaseModel):
    """One reward model (``GRPOConfig.reward_models.<name>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str = Field(..., description="local folder of a transformers sequence-classification model")
    input: Literal["summary", "whole"] = Field(
        ..., description="summary: prompt + final answer (R1's helpfulness); whole: prompt + the whole output, "
        "reasoning included (R1's harmlessness)")
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(2048, ge=8, description="tokens per scored text (the start is cut, the response kept)")
    label: int = Field(0, ge=0, description="which logit is the reward")
    squash: Literal["sigmoid", "none"] = "sigmoid"
    device: str = Field("auto", description="auto = the trainer's device (accelerate), else e.g. cpu, cuda:0")


def _trainer_device(device: str):
    import torch

    if device != "auto":
        return torch.device(device)
    try:
        from accelerate import PartialState

        return PartialState().device
    except Exception:  # noqa: BLE001 - accelerate not initialisable here: the default device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class RewardModelReward:
    """A sequence-classification reward model as a reward function (see the module docstring)."""

    def __init__(self, config: RewardModelConfig, *, model: Any = None, tokenizer: Any = None):
        self.config = config
        self._model, self._tokenizer = model, tokenizer
        self._lock = threading.Lock()
        self.__name__ = f"reward_model[{config.input}]"

    def _load(self):
        with self._lock:
            if self._model is None:
                from transformers import AutoModelForSequenceClassification, AutoTokenizer

                from datagen.models_store import resolve_model

                path = resolve_model(self.config.model)  # NAME@VERSION: fetched once from the store
                self._tokenizer = self._tokenizer or AutoTokenizer.from_pretrained(path)
                self._model = AutoModelForSequenceClassification.from_pretrained(path)
            device = _trainer_device(self.config.device)
            self._model = self._model.to(device).eval().requires_grad_(False)
            if self._tokenizer.pad_token is None:
                self._tokenizer.pad_token = self._tokenizer.eos_token
            if getattr(self._model.config, "pad_token_id", None) is None:
                self._model.config.pad_token_id = self._tokenizer.pad_token_id
            self._tokenizer.truncation_side = "left"  # keep the response, cut the start of a long prompt
            return self._model, self._tokenizer

    def text(self, prompt: str, completion: str) -> str | None:
        """The text scored for one completion; None when ``input: summary`` finds no final answer."""
        from datagen.records import split_completion

        response = completion
        if self.config.input == "summary":
            response = split_completion(completion).summary
            if response is None or not response.strip():
                return None
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template([{"role": "user", "content": prompt},
                                            {"role": "assistant", "content": response}], tokenize=False)
        return f"{prompt}\n\n{response}"

    def __call__(self, completions: Sequence[str], prompt: Sequence[str] | None = None, **_: Any,
                 ) -> list[float | None]:
        """One reward per completion; ``prompt`` is the column of the prompts (required)."""
        import torch

        if prompt is None:
            raise ValueError("the reward model needs the 'prompt' column beside the completions")
        model, tok = self._load()
        texts = [self.text(p, c) for p, c in zip(prompt, completions)]
        out: list[float | None] = [0.0 if t is None else None for t in texts]
        todo = [i for i, t in enumerate(texts) if t is not None]
        device = next(model.parameters()).device
        for start in range(0, len(todo), self.config.batch_size):
            idx = todo[start:start + self.config.batch_size]
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                      max_length=self.config.max_length, add_special_tokens=False).to(device)
            with torch.no_grad():
                logits = model(**enc).logits[:, self.config.label].float()
            values = torch.sigmoid(logits) if self.config.squash == "sigmoid" else logits
            for i, v in zip(idx, values.tolist()):
                out[i] = v if math.isfinite(v) else None  # a NaN score is the model failing: can't judge
        return out


def by_domain(weights_by_domain: Mapping[str, Mapping[str, float]], fns: Mapping[str, RewardFn]) -> RewardFn:
    """One reward: each row's weighted sum of the rewards named for its ``domain`` (see the module docstring)."""

    def reward(completions: Sequence[str], domain: Sequence[str] | None = None, **columns: Any,
               ) -> list[float | None]:
        n = len(completions)
        if domain is None:
            raise ValueError("rewards_by_domain needs the 'domain' column beside the completions")
        out: list[float | None] = [None] * n
        for d, weights in weights_by_domain.items():
            idx = [i for i in range(n) if domain[i] == d]
            if not idx:
                continue
            sub_columns = {k: [v[i] for i in idx] for k, v in columns.items() if isinstance(v, (list, tuple))}
            totals: list[float | None] = [0.0] * len(idx)
            for name, weight in weights.items():
                values = fns[name]([completions[i] for i in idx], domain=[d] * len(idx), **sub_columns)
                totals = [None if t is None or v is None else t + weight * v for t, v in zip(totals, values)]
            for i, t in zip(idx, totals):
                out[i] = t
        missing = {domain[i] for i in range(n) if domain[i] not in weights_by_domain}
        if missing:
            log.warning("rewards_by_domain has no entry for domain(s) %s: those rows get no reward", sorted(missing))
        return out

    reward.__name__ = "by_domain"
    return reward


def configured_rewards(config: Any, table: Mapping[str, RewardFn]) -> dict[str, RewardFn]:
    """The rewards a GRPO config defines beyond the table: its ``reward_models`` by name and, with
    ``rewards_by_domain``, ``by_domain`` over them and ``table``. Raises ``ValueError`` naming an
    unknown reward."""
    models = {name: RewardModelReward(cfg) for name, cfg in (getattr(config, "reward_models", None) or {}).items()}
    out: dict[str, RewardFn] = dict(models)
    weights = getattr(config, "rewards_by_domain", None)
    if weights:
        known = {**table, **models}
        unknown = sorted({n for w in weights.values() for n in w if n not in known})
        if unknown:
            raise ValueError(f"rewards_by_domain names unknown reward(s) {unknown}; choose from {sorted(known)} "
                             "or define them under reward_models")
        out["by_domain"] = by_domain(weights, known)
    return out


__all__ = ["RewardModelConfig", "RewardModelReward", "by_domain", "configured_rewards"]
