"""``answer``: an empty or missing final answer (the summary after the reasoning)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from filters.base import KEEP, Decision, RowFilter, drop


class AnswerFilter(RowFilter):
    """Reasons: ``missing_answer`` (no summary at all), ``empty_answer`` (blank summary)."""

    name = "answer"

    def check(self, record: Mapping[str, Any]) -> Decision:
        summary = record.get("summary")
        if summary is None:
            return drop("missing_answer", "no text after the reasoning")
        if not summary.strip():
            return drop("empty_answer", "the text after the reasoning is blank")
        return KEEP
