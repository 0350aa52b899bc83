"""``code_block``: a fenced code block inside the reasoning of a non-code problem.

DeepSeek-R1 dropped CoTs with code blocks for non-code tasks: a math
derivation that switches to writing a program is a different (tool-using)
behaviour than the one the data should teach.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from filters.base import KEEP, Decision, RowFilter, drop, reasoning_of
from filters.config import CodeBlockConfig

#: An opening fence at the start of a line (``` or ~~~, optional language tag).
_FENCE = re.compile(r"^[ \t]*(```|~~~)", re.MULTILINE)


class CodeBlockFilter(RowFilter):
    """Reason: ``code_in_reasoning``."""

    name = "code_block"

    def __init__(self, config: CodeBlockConfig | None = None):
        """Allowed domains from ``config`` (default: ``filters.config.CodeBlockConfig``)."""
        self.allowed_domains = frozenset((config or CodeBlockConfig()).allowed_domains)

    def check(self, record: Mapping[str, Any]) -> Decision:
        if record.get("domain") in self.allowed_domains:
            return KEEP
        text = reasoning_of(record)
        if "```" not in text and "~~~" not in text:
            return KEEP
        match = _FENCE.search(text)
        if match:
            line = text.count("\n", 0, match.start()) + 1
            return drop("code_in_reasoning", f"fenced code block at reasoning line {line} (domain {record.get('domain')!r})")
        return KEEP
