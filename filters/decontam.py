"""``decontam``: drop problems that share a word n-gram with a benchmark.

A problem is contaminated when its prompt shares one word n-gram (default
8) with any problem of a benchmark file (AIME, MATH-500, GPQA,
LiveCodeBench… as JSONL/Parquet of problems). Both sides are normalized the
same way — NFKC, case-folded, punctuation and whitespace dropped (only
``\\w+`` runs are words) — so a reformatted copy is still caught. A benchmark
problem shorter than n words is matched as a whole word sequence instead.

The reason names the benchmark: ``decontam:<benchmark>`` (the file stem as a
slug, or the name given in the config). Loading the files is done once by
``load_benchmarks``; the filter itself does no I/O.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from filters.base import KEEP, DatasetFilter, Decision, drop, slug
from filters.config import DecontamConfig

_WORD = re.compile(r"\w+")
_PROMPT_FIELDS = ("prompt", "problem", "question", "instruction")


def words_of(text: str) -> list[str]:
    """Normalized words: NFKC, case-folded, punctuation dropped."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def load_benchmarks(spec: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike]) -> dict[str, list[str]]:
    """Read benchmark files -> ``{name: [problem text, ...]}``.

    ``spec`` is a list of paths (name = file stem) or a map name -> path.
    A row's problem text is its first field among prompt/problem/question/instruction.
    """
    from datagen.files import read_records

    items = spec.items() if isinstance(spec, Mapping) else ((Path(p).stem, p) for p in spec)
    out: dict[str, list[str]] = {}
    for name, path in items:
        texts = []
        for i, row in enumerate(read_records(path)):
            text = next((row[f] for f in _PROMPT_FIELDS if isinstance(row.get(f), str)), None)
            if text is None:
                raise ValueError(f"{path}: row {i} has none of the fields {', '.join(_PROMPT_FIELDS)}")
            texts.append(text)
        out.setdefault(str(name), []).extend(texts)
    return out


class DecontamFilter(DatasetFilter):
    """Reason: the benchmark's name as a slug (e.g. ``decontam:aime_2024``)."""

    name = "decontam"

    def __init__(self, benchmarks: Mapping[str, Sequence[str]], config: DecontamConfig | None = None):
        """``benchmarks``: name -> texts (``load_benchmarks``); n-gram size from ``config``."""
        self.ngram = ngram = (config or DecontamConfig()).ngram
        self._grams: dict[tuple[str, ...], str] = {}
        self._short: list[tuple[str, str]] = []  # (" w1 w2 … ", benchmark) for items shorter than n
        for name, texts in benchmarks.items():
            reason = slug(name)
            for text in texts:
                words = words_of(text)
                if not words:
                    continue
                if len(words) < ngram:
                    self._short.append((" " + " ".join(words) + " ", reason))
                    continue
                for i in range(len(words) - ngram + 1):
                    self._grams.setdefault(tuple(words[i:i + ngram]), reason)

    def check_all(self, records: Sequence[Mapping[str, Any]]) -> list[Decision]:
        cache: dict[str, Decision] = {}  # the n samples of a problem share one prompt
        out = []
        for record in records:
            prompt = record.get("prompt") or ""
            if prompt not in cache:
                cache[prompt] = self.check_prompt(prompt)
            out.append(cache[prompt])
        return out

    def check_prompt(self, prompt: str) -> Decision:
        """Decision for one prompt against the benchmark index."""
        words = words_of(prompt)
        n = self.ngram
        grams = self._grams
        for i in range(len(words) - n + 1):
            hit = grams.get(tuple(words[i:i + n]))
            if hit is not None:
                return drop(hit, f"shares the {n}-gram {' '.join(words[i:i + n])!r} with benchmark {hit}")
        if self._short:
            joined = " " + " ".join(words) + " "
            for seq, name in self._short:
                if seq in joined:
                    return drop(name, f"contains the whole benchmark problem {seq.strip()!r} ({name})")
        return KEEP
