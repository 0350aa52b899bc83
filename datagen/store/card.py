"""The dataset card (``README.md`` beside each manifest): what a person browsing
the bucket needs — rows, schema, lineage, the stage's config, its stats and
its plots — under YAML front matter that ``datasets.load_dataset(<version
folder>)`` and the Hub's viewer read.

Without front matter ``datasets`` infers the builder from the files it finds in
the folder, meets ``manifest.json`` and ``markers/*.json`` first, picks the
JSON builder and fails. The front matter's ``configs`` names the version's
Parquet shards (relative to the version folder, so shards reused from a parent
version are found too), which makes the Parquet builder the only candidate.
"""

from __future__ import annotations

import json
import logging
import posixpath
from typing import TYPE_CHECKING

import yaml

from datagen.store.manifest import Manifest, flatten_stats

if TYPE_CHECKING:
    from datagen.plots import Plot
    from datagen.store.versions import Store

log = logging.getLogger(__name__)

#: The Hub's size buckets (``size_categories`` in a dataset card).
_SIZE_BUCKETS = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` bucket for ``rows``."""
    for limit, name in _SIZE_BUCKETS:
        if rows < limit:
            return name
    return "1B<n<10B"


def front_matter(manifest: Manifest) -> dict:
    """The card's YAML metadata: one ``default`` config whose ``train`` split is
    exactly the manifest's shards, tags, a license placeholder, size category."""
    here = f"{manifest.dataset}/{manifest.id}"
    files = [posixpath.relpath(s.path, here) for s in manifest.shards]
    return {
        "pretty_name": f"{manifest.dataset}@{manifest.id}",
        # Placeholder: the license follows the source data; set it before publishing.
        "license": "other",
        "tags": ["datagen", f"stage-{manifest.stage}", "synthetic", "reasoning"],
        "size_categories": [size_category(manifest.rows)],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": files}]}],
    }


def render_card(manifest: Manifest, lineage: list[Manifest], plots: list[Plot] | tuple = ()) -> str:
    """The card's Markdown, front matter first. ``plots`` are linked as
    ``plots/<name>.png`` (the caller writes them beside the card)."""
    meta = yaml.safe_dump(front_matter(manifest), sort_keys=False, allow_unicode=True)
    lines = [
        "---",
        meta.rstrip("\n"),
        "---",
        "",
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
    if plots:
        lines += ["", "## Plots", ""]
        for p in plots:
            lines += [f"### {p.title}", "", f"![{p.title}](plots/{p.name}.png)", ""]
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
        lines += [f"| {k} | {format_value(v)} |" for k, v in flat]
    if manifest.config:
        lines += ["", "## Stage config", "", "```json", json.dumps(manifest.config, indent=2, default=str), "```"]
    lines += [
        "",
        "## Load",
        "",
        "```python",
        "from datagen.store import open_store",
        f'df = open_store(ROOT).scan("{manifest.dataset}@{manifest.id}").collect()',
        "# or, with the version folder itself (its front matter names the shards):",
        'ds = datasets.load_dataset("<root>/' + f'{manifest.dataset}/{manifest.id}", split="train")',
        "```",
        "",
    ]
    return "\n".join(lines)


def format_value(v) -> str:
    """A statistic for people: integers with separators, floats to 4 significant digits."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3g}"
    return str(v)


def write_card(store: Store, manifest: Manifest, lineage: list[Manifest]) -> list[Plot]:
    """Make the version's plots, write them to ``plots/`` and the card beside
    the manifest. A plot that fails is logged and left out; the card is always
    written (the version is already committed)."""
    prefix = f"{manifest.dataset}/{manifest.id}"
    plots: list[Plot] = []
    try:
        from datagen.plots import version_plots

        plots = version_plots(store, manifest)
        for p in plots:
            store.objects.put_bytes(f"{prefix}/plots/{p.name}.png", p.png)
    except Exception as exc:  # noqa: BLE001 - plots are an extra, never a reason to lose the card
        log.warning("plots of %s failed: %s", manifest.ref, exc)
        plots = []
    store.objects.put_bytes(f"{prefix}/README.md", render_card(manifest, lineage, plots).encode())
    return plots


# ----------------------------------------------------------------------------- run artifacts


def version_markdown(manifest: Manifest, uri: str, *, viewer_url: str | None = None,
                     plots: list[tuple[str, str]] = ()) -> str:
    """Markdown that names a version for a run page (a Prefect artifact): its full
    location, a viewer link when a viewer is configured, parents, rows, and its
    plots (``(title, image src)`` pairs: a viewer URL or a ``data:`` URI)."""
    lines = [f"### `{manifest.ref}`", ""]
    lines.append(f"- location: `{uri}`")
    if viewer_url:
        lines.append(f"- viewer: [{manifest.ref}]({viewer_link(viewer_url, manifest.ref)})")
    lines.append(f"- stage `{manifest.stage}`, {manifest.rows:,} rows in {len(manifest.shards)} shards "
                 f"({sum(s.bytes for s in manifest.shards):,} bytes)")
    lines.append("- parents: " + (", ".join(f"`{p}`" for p in manifest.parents) or "none"))
    for title, src in plots:
        lines += ["", f"**{title}**", "", f"![{title}]({src})"]
    return "\n".join(lines) + "\n"


def rollup_markdown(rows: list[tuple[str, Manifest, str]], *, viewer_url: str | None = None) -> str:
    """One table of every version a pipeline run wrote: ``(stage, manifest, uri)`` rows."""
    head = "| stage | version | rows | location |" + (" viewer |" if viewer_url else "")
    sep = "| --- | --- | ---: | --- |" + (" --- |" if viewer_url else "")
    lines = [head, sep]
    for stage, m, uri in rows:
        line = f"| {stage} | `{m.ref}` | {m.rows:,} | `{uri}` |"
        if viewer_url:
            line += f" [open]({viewer_link(viewer_url, m.ref)}) |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def viewer_link(viewer_url: str, ref: str) -> str:
    """The viewer page of ``ref`` under ``viewer_url`` (``datagen datasets serve``)."""
    return f"{viewer_url.rstrip('/')}/v/{ref}/"
