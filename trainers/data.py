"""SFT data: chat ``messages`` -> token ids with an assistant-only loss mask,
and packing of short samples into fixed-budget rows without cross-talk.

The mask is found by rendering the chat template incrementally: for the i-th
assistant message, the tokens between "everything before it + generation
prompt" and "everything up to and including it" are its content plus the
template's end-of-turn token (``<|end|>``, ``<|im_end|>``): so the model is
trained to stop. Prompt, system and user tokens are never in the loss.

Packing concatenates samples into rows of at most ``max_length`` tokens; each
sample keeps its own position ids (restarting at 0) and its length
(``seq_lens``), and attends only to itself (``trainers.packing``: varlen
attention, never an ``L x L`` mask), so a packed row trains exactly like the
samples one by one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

IGNORE = -100


@dataclass
class Sample:
    input_ids: list[int]
    labels: list[int]  # the token id where it is trained, IGNORE elsewhere


@dataclass
class PackedRow:
    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)
    seq_lens: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)


def parse_messages(value: Any) -> list[dict[str, str]]:
    """A row's ``messages``: a list of {role, content} or its JSON string."""
    if isinstance(value, str):
        value = json.loads(value)
    msgs = [{"role": m["role"], "content": m["content"]} for m in value]
    if not any(m["role"] == "assistant" for m in msgs):
        raise ValueError("a chat sample has no assistant message: nothing to train on")
    return msgs


def tokenize_chat(tokenizer, messages: list[dict[str, str]]) -> Sample:
    """Token ids of the whole chat and labels on assistant tokens only (EOS included)."""
    def ids(msgs, gen):
        return tokenizer.apply_chat_template(msgs, add_generation_prompt=gen, tokenize=True, return_dict=False)

    full = list(ids(messages, False))
    labels = [IGNORE] * len(full)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(ids(messages[:i], True)) if i else len(ids([], True))
        # the last message's prefix is the whole chat: one render fewer (most SFT rows are one turn)
        upto = full if i == len(messages) - 1 else list(ids(messages[: i + 1], False))
        if full[: len(upto)] != upto:
            raise ValueError("the chat template does not render a prefix of the chat as a token prefix; "
                             "assistant masking needs a prefix-stable template")
        labels[start: len(upto)] = upto[start:]
    if tokenizer.eos_token_id is not None and full and full[-1] != tokenizer.eos_token_id \
            and messages[-1]["role"] == "assistant" and tokenizer.eos_token_id not in full[-3:]:
        # templates that don't close the turn with EOS: add it so the model learns to stop
        full.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
    return Sample(full, labels)


def pack(samples: Iterable[Sample], max_length: int) -> list[PackedRow]:
    """Greedy in-order packing: append a sample to the current row while it fits."""
    rows: list[PackedRow] = []
    cur = PackedRow()
    for s in samples:
        n = len(s.input_ids)
        if n > max_length:
            raise ValueError(f"a sample of {n} tokens exceeds max_length={max_length}; drop or truncate it first")
        if len(cur) + n > max_length and len(cur):
            rows.append(cur)
            cur = PackedRow()
        cur.input_ids += s.input_ids
        # a sample's first token is never a target across the boundary
        cur.labels += [IGNORE] + s.labels[1:]
        cur.position_ids += list(range(n))
        cur.seq_lens.append(n)
    if len(cur):
        rows.append(cur)
    return rows


def unpacked(samples: Iterable[Sample]) -> list[PackedRow]:
    return [PackedRow(list(s.input_ids), [IGNORE] + s.labels[1:], list(range(len(s.input_ids))), [len(s.input_ids)])
            for s in samples]


def collate(rows: list[PackedRow], pad_id: int | None = None):
    """Packed rows as one flat padding-free row ``[1, N]``: ``input_ids``, ``labels``,
    ``position_ids`` (restarting at 0 per sample) and ``seq_lens`` (every sample's
    length, in order). No attention mask: ``trainers.packing`` attends each sample
    on its own (varlen flash attention on GPU, per-sample SDPA on CPU), so memory
    is linear in N. ``pad_id`` is unused (nothing is padded); kept for callers."""
    import numpy as np
    import torch

    n = sum(len(r) for r in rows)
    input_ids = np.empty(n, dtype=np.int64)
    labels = np.empty(n, dtype=np.int64)
    position_ids = np.empty(n, dtype=np.int64)
    seq_lens: list[int] = []
    at = 0
    for r in rows:
        k = len(r)
        input_ids[at: at + k] = r.input_ids
        labels[at: at + k] = r.labels
        position_ids[at: at + k] = r.position_ids
        seq_lens += r.seq_lens
        at += k
    return {"input_ids": torch.from_numpy(input_ids)[None], "labels": torch.from_numpy(labels)[None],
            "position_ids": torch.from_numpy(position_ids)[None], "seq_lens": seq_lens}


def chat_prompt(tokenizer, prompt: str, system_prompt: str | None) -> str:
    """``prompt`` (and ``system_prompt``) rendered with the tokenizer's chat template, ready to generate."""
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": prompt}
    ]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
