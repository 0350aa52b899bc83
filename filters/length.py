"""``length``: token counts of reasoning and answer; truncated generations.

Tokens are counted with the target model's tokenizer when a local tokenizer
directory is configured (transformers, batched). Without one the filter uses
a fast approximation — one token per CJK character, one per four other
characters — and says so: ``counter == "approx"`` and every drop detail
carries "(approx)", so nobody mistakes it for real token counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from datagen.records import split_completion
from filters.base import KEEP, Decision, RowFilter, drop
from filters.config import LengthConfig

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def approx_tokens(text: str) -> int:
    """Cheap token estimate: CJK characters count one each, the rest ~4 chars per token."""
    if not text:
        return 0
    if text.isascii():
        return (len(text) + 3) // 4
    cjk = len(_CJK.findall(text))
    return cjk + (len(text) - cjk + 3) // 4


def is_truncated(record: Mapping[str, Any]) -> bool:
    """The generation was cut: ``finish_reason == "length"`` or an unclosed think block."""
    if record.get("finish_reason") == "length":
        return True
    completion = record.get("completion")
    if completion:
        split = split_completion(completion)
        return split.reasoning is not None and not split.closed
    return False


class LengthFilter(RowFilter):
    """Drops truncated generations and reasoning/answers outside token bounds.

    Reasons: ``truncated``, ``reasoning_too_short``, ``reasoning_too_long``,
    ``answer_too_short``, ``answer_too_long``.
    """

    name = "length"

    def __init__(self, config: LengthConfig | None = None):
        """Thresholds from ``config`` (its defaults are the filter's: ``filters.config.LengthConfig``)."""
        config = config or LengthConfig()
        tokenizer = config.tokenizer
        self.min_reasoning_tokens = config.min_reasoning_tokens
        self.max_reasoning_tokens = config.max_reasoning_tokens
        self.min_answer_tokens = config.min_answer_tokens
        self.max_answer_tokens = config.max_answer_tokens
        self.drop_truncated = config.drop_truncated
        self.counter = "approx"
        self._tokenizer = None
        if tokenizer is not None:
            from transformers import AutoTokenizer  # heavy: only when configured

            self._tokenizer = AutoTokenizer.from_pretrained(tokenizer)
            self.counter = f"tokenizer:{tokenizer}"

    def count(self, texts: Sequence[str]) -> list[int]:
        """Token counts of ``texts`` with the configured counter."""
        if self._tokenizer is None:
            return [approx_tokens(t) for t in texts]
        if not texts:
            return []
        ids = self._tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(x) for x in ids]

    def check(self, record: Mapping[str, Any]) -> Decision:
        return self.check_batch([record])[0]

    def check_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Decision]:
        reasoning = self.count([r.get("reasoning") or "" for r in records])
        answer = self.count([r.get("summary") or "" for r in records])
        unit = "tokens" if self._tokenizer is not None else "tokens (approx)"
        out = []
        for record, n_r, n_a in zip(records, reasoning, answer):
            if self.drop_truncated and is_truncated(record):
                out.append(drop("truncated", f"finish_reason={record.get('finish_reason')!r}, think block closed: no"
                                if record.get("finish_reason") != "length" else "finish_reason='length'"))
            elif self.min_reasoning_tokens is not None and n_r < self.min_reasoning_tokens:
                out.append(drop("reasoning_too_short", f"reasoning {n_r} {unit} < {self.min_reasoning_tokens}"))
            elif self.max_reasoning_tokens is not None and n_r > self.max_reasoning_tokens:
                out.append(drop("reasoning_too_long", f"reasoning {n_r} {unit} > {self.max_reasoning_tokens}"))
            elif self.min_answer_tokens is not None and n_a < self.min_answer_tokens:
                out.append(drop("answer_too_short", f"answer {n_a} {unit} < {self.min_answer_tokens}"))
            elif self.max_answer_tokens is not None and n_a > self.max_answer_tokens:
                out.append(drop("answer_too_long", f"answer {n_a} {unit} > {self.max_answer_tokens}"))
            else:
                out.append(KEEP)
        return out
