"""``language``: drop chains of thought that mix languages (DeepSeek-R1's filter).

The measure is ``datagen.language`` (shared with the GRPO reward
``language_consistency``): the share of a text's words that are not in the
record's ``language``, after removing LaTeX, code, identifiers, numbers,
units and URLs, and with names, technical terms and loanwords neutral.

Reasons (``drop_detail`` carries the measured share and the threshold):

- ``wrong_language``: the reasoning is mostly not in the target language
  (consistency below ``min_consistency``);
- ``mixed_language``: the reasoning's mixing is above ``max_foreign_share``
  and it has more than ``max_foreign_words`` foreign words (a floor, so that
  one stray word in a short text is not "mixing");
- ``wrong_answer_language``: the final answer (the summary after the think
  tags, or a plain text's final-answer paragraph, ``datagen.language.split_answer``)
  has mixing above ``max_answer_foreign_share``, whatever the reasoning does.

Defaults, in R1's spirit ("CoTs with mixed languages" dropped): 1% of the
words — one foreign sentence per ~1,500 words, i.e. more than one sentence in a
typical 10 KB chain of thought — and the answer wholly in the target language
(up to 10%, one stray word in a short summary). Every bound can be turned off
with ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from datagen.language import (
    ANSWER_ANALYZER,
    DEFAULT_ANALYZER,
    LanguageAnalyzer,
    LanguageReport,
    fasttext_model,
    split_answer,
)
from filters.base import KEEP, Decision, RowFilter, drop


class LanguageMixFilter(RowFilter):
    """Reasons: ``wrong_language``, ``mixed_language``, ``wrong_answer_language``."""

    name = "language"

    def __init__(
        self,
        *,
        min_consistency: float | None = 0.5,
        max_foreign_share: float | None = 0.01,
        max_foreign_words: int | None = 2,
        max_answer_foreign_share: float | None = 0.1,
        check_summary: bool = True,
        default_language: str = "en",
        analyzer: LanguageAnalyzer | None = None,
    ):
        self.min_consistency = min_consistency
        self.max_foreign_share = max_foreign_share
        self.max_foreign_words = max_foreign_words
        self.max_answer_foreign_share = max_answer_foreign_share
        self.check_summary = check_summary
        self.default_language = default_language
        self.analyzer = analyzer or DEFAULT_ANALYZER
        self.answer_analyzer = ANSWER_ANALYZER if analyzer is None else analyzer

    def judge_reasoning(self, report: LanguageReport) -> str | None:
        """``None`` (keep), ``"wrong_language"`` or ``"mixed_language"`` for a reasoning's report."""
        if self.min_consistency is not None and report.consistency < self.min_consistency:
            return "wrong_language"
        if (self.max_foreign_share, self.max_foreign_words) == (None, None):
            return None
        if ((self.max_foreign_share is None or report.mixing > self.max_foreign_share)
                and (self.max_foreign_words is None or report.foreign_words > self.max_foreign_words)):
            return "mixed_language"
        return None

    def judge_answer(self, report: LanguageReport) -> str | None:
        """``None`` (keep) or ``"wrong_answer_language"`` for an answer's report."""
        limit = self.max_answer_foreign_share
        return "wrong_answer_language" if limit is not None and report.mixing > limit else None

    def judge_text(self, text: str, language: str) -> tuple[str | None, str]:
        """Judge one plain text (reasoning, maybe ending in an answer paragraph): ``(reason or None, detail)``."""
        reasoning, answer = split_answer(text)
        return self._judge(reasoning, answer, language)

    def judge(self, text: str, language: str) -> str | None:
        """The reason ``judge_text`` gives, or ``None`` to keep."""
        return self.judge_text(text, language)[0]

    def _judge(self, reasoning: str, answer: str, language: str) -> tuple[str | None, str]:
        report = self.analyzer.analyze(reasoning, language)
        reason = self.judge_reasoning(report)
        if reason:
            return reason, (f"reasoning: {report.describe()} > {self.max_foreign_share} share and "
                            f"{self.max_foreign_words} words; min consistency {self.min_consistency}")
        if self.check_summary and answer:
            report = self.answer_analyzer.analyze(answer, language)
            reason = self.judge_answer(report)
            if reason:
                return reason, f"answer: {report.describe()} > {self.max_answer_foreign_share}"
        return None, ""

    def check(self, record: Mapping[str, Any]) -> Decision:
        language = record.get("language") or self.default_language
        reasoning, summary = record.get("reasoning") or "", record.get("summary") or ""
        if not summary and reasoning:
            reasoning, summary = split_answer(reasoning)
        reason, detail = self._judge(reasoning, summary, language)
        return drop(reason, detail) if reason else KEEP

    def check_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Decision]:
        fasttext_model()  # load once before the loop
        return [self.check(r) for r in records]
