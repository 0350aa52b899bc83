"""The end-of-run summary (CLI) — the same figures the flows publish as artifacts."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def _refs(result: Any) -> list[str]:
    if isinstance(result, str) and "@" in result:
        return [result]
    if isinstance(result, Mapping):
        out = []
        for v in result.values():
            out.extend(_refs(v))
        return out
    if isinstance(result, (list, tuple)):
        return [r for v in result for r in _refs(v)]
    return []


def print_summary(result: Any, *, root: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from datagen.store import StoreError, open_store
    from datagen.store.card import format_value
    from datagen.store.manifest import flatten_stats
    from flows.common import shown

    store = open_store(root)
    console = Console()
    refs = _refs(result)
    table = Table(title="versions written")
    for col in ("stage", "version", "rows"):
        # ids and counts stay whole on one line (only the statistics column gives way)
        table.add_column(col, no_wrap=True, justify="right" if col == "rows" else "left")
    # one statistic a line; one longer than the column ends in an ellipsis, never wraps mid-word
    table.add_column("key statistics", overflow="ellipsis")
    for ref in refs:
        try:
            m = store.resolve(ref)
        except (StoreError, ValueError) as exc:  # a result value that only looks like a ref
            log.debug("summary: %s is not a version: %s", ref, exc)
            continue
        flat = flatten_stats(shown(m.stats))
        keys = "\n".join(f"{k}={format_value(v)}" for k, v in list(flat.items())[:8])
        table.add_row(m.stage, m.ref, f"{m.rows:,}", keys)
        for col, text in zip(table.columns, (m.stage, m.ref, f"{m.rows:,}")):
            col.min_width = max(col.min_width or 0, len(text))
    console.print(table)
    if isinstance(result, Mapping):
        extras = {k: v for k, v in result.items() if not _refs(v)}
        for k, v in extras.items():
            console.print(f"{k}: {v}")
