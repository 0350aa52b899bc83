"""Typed configuration of the filters: one pydantic model per filter.

Every threshold can be turned off with ``null`` (``None``); a whole filter is
turned off with ``enabled: false``. Unknown keys fail, so a typo in a YAML file
is an error, not a silently ignored setting. Example (``configs/filters.yaml``)::

    language: {max_foreign_words: 5}
    length: {tokenizer: /models/qwen-7b, max_reasoning_tokens: 32768}
    decontam: {benchmarks: {aime_2024: data/aime24.jsonl}, ngram: 8}
    dedup: {near_threshold: null}        # exact dedup only
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True


class LanguageConfig(_Strict):
    """``LanguageMixFilter`` thresholds (see ``filters.language``)."""

    #: The reasoning is "in the wrong language" when its consistency (share of
    #: target-language words) is below this.
    min_consistency: float | None = Field(0.5, ge=0, le=1)
    #: Mixed when the reasoning's mixing (share of its judged words not in the
    #: target language; names, technical terms, loanwords, LaTeX and code are
    #: not judged, see ``datagen.language``) exceeds this ...
    max_foreign_share: float | None = Field(0.01, ge=0, le=1)
    #: ... and its foreign words exceed this count. Both None: no mixed check.
    max_foreign_words: int | None = Field(2, ge=0)
    #: The answer (summary) is in the wrong language when its mixing exceeds this.
    max_answer_foreign_share: float | None = Field(0.1, ge=0, le=1)
    #: Check the summary (the answer) too.
    check_summary: bool = True
    #: Default target language when a record has none.
    default_language: str = "en"


class LengthConfig(_Strict):
    """``LengthFilter`` thresholds, in tokens."""

    #: A local tokenizer directory (transformers). ``None``: a fast
    #: approximation (chars/4, one token per CJK character), labelled "approx".
    tokenizer: str | None = None
    min_reasoning_tokens: int | None = Field(None, ge=0)
    max_reasoning_tokens: int | None = Field(32768, ge=1)
    min_answer_tokens: int | None = Field(None, ge=0)
    max_answer_tokens: int | None = Field(4096, ge=1)
    drop_truncated: bool = True

    @model_validator(mode="after")
    def _ranges(self) -> LengthConfig:
        for part in ("reasoning", "answer"):
            lo, hi = getattr(self, f"min_{part}_tokens"), getattr(self, f"max_{part}_tokens")
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"length: min_{part}_tokens ({lo}) > max_{part}_tokens ({hi}); lower the minimum")
        return self


class ParagraphConfig(_Strict):
    max_words: int | None = Field(400, ge=1)
    max_chars: int | None = Field(3000, ge=1)


class CodeBlockConfig(_Strict):
    #: Domains where code blocks in the reasoning are expected.
    allowed_domains: list[str] = ["code"]


class RepetitionConfig(_Strict):
    #: Share of characters in lines that repeat an earlier line (Gopher-style).
    max_duplicate_line_share: float | None = Field(0.3, ge=0, le=1)
    #: Share of characters in paragraphs that repeat an earlier paragraph.
    max_duplicate_paragraph_share: float | None = Field(0.3, ge=0, le=1)
    #: Share of words covered by the most frequent word n-gram.
    top_ngram: int = Field(4, ge=2)
    max_top_ngram_share: float | None = Field(0.15, ge=0, le=1)
    #: A looping tail: the last ``tail_unit_chars`` characters occur at least
    #: ``min_tail_repeats`` times within the last ``tail_window_chars``.
    min_tail_repeats: int | None = Field(4, ge=2)
    tail_unit_chars: int = Field(64, ge=8)
    tail_window_chars: int = Field(4000, ge=64)


class AnswerConfig(_Strict):
    pass


class DedupConfig(_Strict):
    exact: bool = True
    #: Estimated Jaccard similarity of word-shingle sets at or above which a
    #: problem is a near duplicate; ``None`` turns near dedup off.
    near_threshold: float | None = Field(0.8, gt=0, le=1)
    shingle_words: int = Field(3, ge=1)
    num_perm: int = Field(128, ge=16)


class DecontamConfig(_Strict):
    #: Benchmark files (JSONL/Parquet of problems): a list of paths (name =
    #: file stem) or a map name -> path.
    benchmarks: list[str] | dict[str, str] = []
    ngram: int = Field(8, ge=1)


class FiltersConfig(BaseModel):
    """Configuration of the whole chain; each field configures one filter."""

    model_config = ConfigDict(extra="forbid")

    decontam: DecontamConfig = DecontamConfig()
    dedup: DedupConfig = DedupConfig()
    length: LengthConfig = LengthConfig()
    answer: AnswerConfig = AnswerConfig()
    code_block: CodeBlockConfig = CodeBlockConfig()
    paragraph: ParagraphConfig = ParagraphConfig()
    repetition: RepetitionConfig = RepetitionConfig()
    language: LanguageConfig = LanguageConfig()

    @classmethod
    def from_yaml(cls, path: str | Path | None, sets: list[str] | tuple[str, ...] = ()) -> FiltersConfig:
        """Load from a YAML file plus dotted ``--set`` overrides (``datagen.config``, the one loader);
        no file gives the defaults. A file may nest the settings under a top-level ``filters:`` key.
        Raises ``datagen.config.ConfigError`` naming the bad key and where it came from."""
        from datagen.config import build, deep_merge, load_yaml, parse_set, source_keys

        data: Any = load_yaml(path) if path else {}
        if set(data) == {"filters"}:
            data = data["filters"] or {}
        overrides = parse_set(sets)
        return build(cls, deep_merge(data, overrides), source=str(path) if path else "config",
                     set_keys=source_keys(overrides), help_hint="every key: see filters/config.py")


__all__ = [
    "AnswerConfig",
    "CodeBlockConfig",
    "DecontamConfig",
    "DedupConfig",
    "FiltersConfig",
    "LanguageConfig",
    "LengthConfig",
    "ParagraphConfig",
    "RepetitionConfig",
]
