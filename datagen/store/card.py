"""The dataset card (``README.md`` beside each manifest): what a person browsing
the bucket needs — rows, schema, lineage, the stage's config and its stats."""

from __future__ import annotations

import json

from datagen.store.manifest import Manifest, flatten_stats


def render_card(manifest: Manifest, lineage: list[Manifest]) -> str:
    lines = [
        f"# {manifest.dataset}@{manifest.id}",
        "",
        f"- stage: `{manifest.stage}`",
        f"- rows: {manifest.rows:,}",
        f"- shards: {len(manifest.shards)} ({sum(s.bytes for s in manifest.shards):,} bytes)",
        f"- created: {manifest.created}",
        f"- code revision: `{manifest.code_revision}`",
    ]
    if manifest.flow_run_id:
        lines.append(f"- Prefect flow run: `{manifest.flow_run_id}`")
    if manifest.rejected:
        lines.append(f"- rejected (quarantined) rows: {sum(s.rows for s in manifest.rejected):,}")
    lines += ["", "## Lineage", ""]
    for depth, m in enumerate(lineage):
        lines.append(f"{'  ' * depth}- `{m.dataset}@{m.id}` ({m.stage}, {m.rows:,} rows)")
    if len(manifest.parents) > 1:
        lines.append("")
        lines.append("Other parents: " + ", ".join(f"`{p}`" for p in manifest.parents[1:]))
    lines += ["", "## Schema", "", "| column | type |", "| --- | --- |"]
    lines += [f"| {f['name']} | {f['type']} |" for f in manifest.schema_]
    flat = list(flatten_stats(manifest.stats).items())
    if flat:
        lines += ["", "## Statistics", "", "| statistic | value |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in flat]
    if manifest.config:
        lines += ["", "## Stage config", "", "```json", json.dumps(manifest.config, indent=2, default=str), "```"]
    lines += [
        "",
        "## Load",
        "",
        "```python",
        "from datagen.store import open_store",
        f'df = open_store(ROOT).scan("{manifest.dataset}@{manifest.id}").collect()',
        "```",
        "",
    ]
    return "\n".join(lines)
