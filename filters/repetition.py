"""``repetition``: repeated lines/paragraphs, a dominant n-gram, a looping tail.

The classic failure of long chain-of-thought is a generation that falls into
a loop and repeats the same sentence until it hits the token limit. Three
signals, cheapest first:

- ``looping_tail``: the last ``tail_unit_chars`` characters occur at least
  ``min_tail_repeats`` times in the last ``tail_window_chars`` — an exact loop
  at the end of the text. (``str.count`` in C; natural text does not end
  with the same 64 characters four times in a row. A short period such as
  "1 1 1 …" still counts: non-overlapping copies of the unit tile the loop.)
- ``duplicate_lines`` / ``duplicate_paragraphs``: share of characters in
  lines (paragraphs) that repeat an earlier one (Gopher, Rae et al. 2021,
  "repetition removal"), with blank lines ignored.
- ``top_ngram``: share of words covered by the most frequent word n-gram
  (Gopher's top-n-gram coverage, by words rather than characters).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from filters.base import KEEP, Decision, RowFilter, drop, reasoning_of
from filters.config import RepetitionConfig

_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def duplicate_share(parts: list[str]) -> float:
    """Share of characters in ``parts`` that repeat an earlier part (empty parts ignored)."""
    seen: set[str] = set()
    total = dup = 0
    for part in parts:
        part = part.strip()
        if not part:
            continue
        total += len(part)
        if part in seen:
            dup += len(part)
        else:
            seen.add(part)
    return dup / total if total else 0.0


#: Odd 64-bit multipliers, one per n-gram position, so order matters in the hash.
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5,
                 0x85EBCA77C2B2AE63, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB], dtype=np.uint64)


def top_ngram_share(words: list[str], n: int) -> float:
    """Share of words covered by the most frequent word n-gram (count × n / words, capped at 1).

    Vectorised: words are hashed once, n-gram hashes are combined in numpy
    and counted with ``np.unique`` (3x faster than a Counter of tuples). A
    64-bit hash collision could only overstate a count, and is negligible.
    """
    if len(words) < 2 * n:
        return 0.0
    if n > len(_MIX):
        grams = Counter(zip(*(words[i:] for i in range(n))))
        count = grams.most_common(1)[0][1]
    else:
        w = np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)
        m = len(w) - n + 1
        h = w[:m] * _MIX[0]
        for i in range(1, n):
            h ^= w[i:i + m] * _MIX[i]
        count = int(np.unique(h, return_counts=True)[1].max())
    if count < 2:
        return 0.0
    return min(1.0, count * n / len(words))


class RepetitionFilter(RowFilter):
    """Reasons: ``looping_tail``, ``duplicate_lines``, ``duplicate_paragraphs``, ``top_ngram``."""

    name = "repetition"

    def __init__(self, config: RepetitionConfig | None = None):
        """Thresholds from ``config`` (its defaults are the filter's: ``filters.config.RepetitionConfig``)."""
        config = config or RepetitionConfig()
        self.max_duplicate_line_share = config.max_duplicate_line_share
        self.max_duplicate_paragraph_share = config.max_duplicate_paragraph_share
        self.top_ngram = config.top_ngram
        self.max_top_ngram_share = config.max_top_ngram_share
        self.min_tail_repeats = config.min_tail_repeats
        self.tail_unit_chars = config.tail_unit_chars
        self.tail_window_chars = config.tail_window_chars

    def check(self, record: Mapping[str, Any]) -> Decision:
        text = reasoning_of(record).rstrip()
        if not text:
            return KEEP
        if self.min_tail_repeats is not None and len(text) >= self.tail_unit_chars * self.min_tail_repeats:
            unit = text[-self.tail_unit_chars:]
            repeats = text[-self.tail_window_chars:].count(unit)
            if repeats >= self.min_tail_repeats:
                return drop("looping_tail", f"last {self.tail_unit_chars} chars repeat {repeats}x in the last {self.tail_window_chars}")
        if self.max_duplicate_line_share is not None:
            share = duplicate_share(text.split("\n"))
            if share > self.max_duplicate_line_share:
                return drop("duplicate_lines", f"{share:.2f} of line chars repeat > {self.max_duplicate_line_share}")
        if self.max_duplicate_paragraph_share is not None:
            share = duplicate_share(_BLANK_LINE.split(text))
            if share > self.max_duplicate_paragraph_share:
                return drop("duplicate_paragraphs", f"{share:.2f} of paragraph chars repeat > {self.max_duplicate_paragraph_share}")
        if self.max_top_ngram_share is not None:
            share = top_ngram_share(text.split(), self.top_ngram)
            if share > self.max_top_ngram_share:
                return drop("top_ngram", f"top {self.top_ngram}-gram covers {share:.2f} of words > {self.max_top_ngram_share}")
        return KEEP
