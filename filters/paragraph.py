"""``paragraph``: a paragraph of the reasoning over N words or N characters.

DeepSeek-R1 dropped CoTs with long paragraphs: a wall of text is hard to read
and usually a sign of a rambling generation. Paragraphs are separated by a
blank line; a CJK character counts as a word (CJK text has no spaces).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from filters.base import KEEP, Decision, RowFilter, drop, reasoning_of
from filters.config import ParagraphConfig

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_WORDS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]|[^\s\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]+")


class ParagraphFilter(RowFilter):
    """Reason: ``long_paragraph``."""

    name = "paragraph"

    def __init__(self, config: ParagraphConfig | None = None):
        """Bounds from ``config`` (its defaults are the filter's: ``filters.config.ParagraphConfig``)."""
        config = config or ParagraphConfig()
        self.max_words = config.max_words
        self.max_chars = config.max_chars

    def check(self, record: Mapping[str, Any]) -> Decision:
        text = reasoning_of(record)
        for i, para in enumerate(_BLANK_LINE.split(text)):
            if self.max_chars is not None and len(para) > self.max_chars:
                return drop("long_paragraph", f"paragraph {i}: {len(para)} chars > {self.max_chars}")
            # A word takes at least two characters with its separator, except a
            # CJK character; only count when the bound could be exceeded.
            if self.max_words is not None and len(para) > self.max_words:
                words = len(para.split()) if para.isascii() else len(_WORDS.findall(para))
                if words > self.max_words:
                    return drop("long_paragraph", f"paragraph {i}: {words} words > {self.max_words}")
        return KEEP
