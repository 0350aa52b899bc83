"""The filter interface (STYLE.md, habit 1).

A filter is a small class: thresholds in its constructor (each can be turned
off with ``None``), one decision method ``check(record) -> Decision``. It does
no I/O and no per-record logging; the runner (``filters.runner``) counts
drops by reason, writes the ``drop`` column and keeps the stats.

Two kinds:

- ``RowFilter``: judges one record at a time. ``check_batch`` exists so a
  filter whose work vectorises (a tokenizer, batched language ID) can take a
  whole shard at once; its default just loops over ``check``.
- ``DatasetFilter``: judges a record against the whole dataset (dedup,
  decontamination against a fixed index). It only has ``check_all``, which
  sees every surviving row of the dataset in one call, never one shard.

Reasons are stable ``snake_case`` slugs: they are metric keys
(``dropped/<filter>/<reason>``) and end up in the ``drop`` column as
``<filter>:<reason>``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

_SLUG = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")


@dataclasses.dataclass(frozen=True)
class Decision:
    """Keep (``reason is None``) or drop with a ``snake_case`` reason.

    ``detail`` is a short human-readable explanation (the measured value and
    the threshold); it is not a metric key.
    """

    reason: str | None = None
    detail: str = ""

    @property
    def keep(self) -> bool:
        return self.reason is None


KEEP = Decision()


def drop(reason: str, detail: str = "") -> Decision:
    """A drop decision; ``reason`` must be a stable ``snake_case`` slug."""
    if not _SLUG.match(reason):
        raise ValueError(f"drop reason {reason!r} is not snake_case")
    return Decision(reason, detail)


def slug(text: str) -> str:
    """``text`` as a ``snake_case`` slug (e.g. a benchmark file stem ``MATH-500`` -> ``math_500``)."""
    out = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return out or "unnamed"


class RowFilter:
    """Judges one record at a time. Subclasses set ``name`` and implement ``check``."""

    name: ClassVar[str]

    def check(self, record: Mapping[str, Any]) -> Decision:
        raise NotImplementedError

    def check_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Decision]:
        """Decisions for many records; override where the work vectorises."""
        return [self.check(r) for r in records]


class DatasetFilter:
    """Judges records against the whole dataset (all shards at once)."""

    name: ClassVar[str]

    def check_all(self, records: Sequence[Mapping[str, Any]]) -> list[Decision]:
        raise NotImplementedError


def reasoning_of(record: Mapping[str, Any]) -> str:
    """The record's reasoning text ('' when absent)."""
    return record.get("reasoning") or ""


__all__ = ["KEEP", "DatasetFilter", "Decision", "RowFilter", "drop", "reasoning_of", "slug"]
