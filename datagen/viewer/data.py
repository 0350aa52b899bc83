"""What the viewer shows, apart from how it shows it: the read-only queries over
a store (pages of rows, one sample, filter choices, lineage, diffs).

Nothing here loads a version into memory. Rows come from a lazy polars scan of
the version's shards (the manifest lists them: no bucket listing): a count
reads only the filter columns, a page is a filtered slice that the streaming
engine stops reading once it has its rows, and filter choices are one
``group_by`` on a single column. Versions are immutable, so what is derived
from one (choices, children) is cached for the life of the process.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from datagen.records import OUTCOMES, decode_verdicts
from datagen.store import Manifest, Store, VersionNotFound
from datagen.store.manifest import flatten_stats

log = logging.getLogger(__name__)

#: Filters a rows page takes, by query parameter name.
FILTER_KEYS = ("outcome", "drop", "accepted", "domain", "language", "column", "value", "q")
#: Columns whose distinct values are offered as filter choices.
CHOICE_COLUMNS = ("drop", "domain", "language")
#: Columns a rows page shows first, when the version has them.
PREFERRED_COLUMNS = ("sample_id", "domain", "language", "prompt", "completion", "accepted", "drop", "verdicts",
                     "completion_tokens", "kind", "messages", "step", "loss", "reward")
MAX_LIMIT = 200
#: Column text is cut to this many characters in a rows table (the sample page shows it whole).
CELL_CHARS = 160


class BadFilter(ValueError):
    """A filter the version cannot take (unknown column, bad value); the message says what to change."""


@dataclass(frozen=True)
class Filters:
    """A rows query. Empty strings mean "no filter"."""

    outcome: str = ""  # OUTCOME (any verifier) or VERIFIER:OUTCOME
    drop: str = ""  # a drop reason ("filter:reason"), "kept" (no drop) or "dropped" (any drop)
    accepted: str = ""  # "true" | "false" | "null"
    domain: str = ""
    language: str = ""
    column: str = ""  # with value: rows whose column equals value
    value: str = ""
    q: str = ""  # text search in prompt / completion / messages

    @classmethod
    def parse(cls, items: Mapping[str, str] | list[str]) -> Filters:
        """From query parameters, or from the API's ``filter=KEY=VALUE`` strings."""
        if isinstance(items, list):
            pairs: dict[str, str] = {}
            for item in items:
                key, sep, value = item.partition("=")
                if not sep:
                    raise BadFilter(f"filter {item!r}: write it as KEY=VALUE with KEY one of {', '.join(FILTER_KEYS)}")
                pairs[key.strip()] = value
            items = pairs
        unknown = [k for k in items if k not in FILTER_KEYS]
        if unknown:
            raise BadFilter(f"unknown filter(s) {', '.join(unknown)}: use {', '.join(FILTER_KEYS)}")
        return cls(**{k: str(v or "").strip() for k, v in items.items()})

    def active(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass
class Page:
    """One page of rows: ``rows`` as dicts, ``total`` rows matching the filters."""

    rows: list[dict[str, Any]]
    offset: int
    limit: int
    total: int
    columns: list[str] = field(default_factory=list)


class Browser:
    """Read-only queries over one store, cached per immutable version."""

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._choices: dict[tuple[str, str], dict[str, list[tuple[str, int]]]] = {}
        self._verifiers: dict[str, list[str]] = {}

    # -- versions ------------------------------------------------------------

    def datasets(self) -> list[dict[str, Any]]:
        """Every dataset with its committed versions (newest first) and tags."""
        out = []
        for name in self.store.datasets():
            versions = self.store.versions(name)
            if not versions:
                continue
            tags = self.store.tags(name)
            by_version: dict[str, list[str]] = {}
            for tag, version in tags.items():
                by_version.setdefault(version, []).append(tag)
            out.append({
                "name": name,
                "versions": [version_summary(m, sorted(by_version.get(m.id, []))) for m in reversed(versions)],
                "tags": tags,
            })
        return out

    def versions(self, dataset: str) -> list[dict[str, Any]]:
        versions = self.store.versions(dataset)
        if not versions:
            raise VersionNotFound(f"dataset {dataset!r} has no versions in {self.store.root}")
        by_version: dict[str, list[str]] = {}
        for tag, version in self.store.tags(dataset).items():
            by_version.setdefault(version, []).append(tag)
        return [version_summary(m, sorted(by_version.get(m.id, []))) for m in reversed(versions)]

    def resolve(self, ref: str) -> Manifest:
        return self.store.resolve(ref)

    def plots(self, manifest: Manifest) -> list[str]:
        """Names of the plots kept beside the version's card (``plots/<name>.png``)."""
        keys = self.store.objects.list_keys(f"{manifest.dataset}/{manifest.id}/plots")
        return [k.rsplit("/", 1)[1][: -len(".png")] for k in keys if k.endswith(".png")]

    def plot_png(self, manifest: Manifest, name: str) -> bytes:
        return self.store.objects.get_bytes(f"{manifest.dataset}/{manifest.id}/plots/{name}.png")

    def card(self, manifest: Manifest) -> str:
        from datagen.store import NotFound

        try:
            return self.store.objects.get_bytes(f"{manifest.dataset}/{manifest.id}/README.md").decode()
        except NotFound:
            return ""

    def lineage(self, manifest: Manifest) -> dict[str, list[list[Manifest]]]:
        """Ancestors (by generation: parents, grandparents, …) and children, for the graph."""
        ancestors: list[list[Manifest]] = []
        seen = {manifest.ref}
        frontier = [manifest]
        while frontier and len(ancestors) < 12:
            nxt = []
            for m in frontier:
                for p in m.parents:
                    try:
                        pm = self.store.manifest(p.dataset, p.version)
                    except VersionNotFound:  # a parent removed from the store (rm): show what is left
                        log.info("lineage of %s: parent %s is gone", manifest.ref, p)
                        continue
                    if pm.ref not in seen:
                        seen.add(pm.ref)
                        nxt.append(pm)
            if nxt:
                ancestors.append(nxt)
            frontier = nxt
        children = [m for name in self.store.datasets() for m in self.store.versions(name)
                    if any(str(p) == manifest.ref for p in m.parents)]
        return {"ancestors": ancestors, "children": children}

    # -- rows ----------------------------------------------------------------

    def columns(self, manifest: Manifest) -> list[str]:
        return [f["name"] for f in manifest.schema_] or self.store.scan(manifest).collect_schema().names()

    def choices(self, manifest: Manifest) -> dict[str, list[tuple[str, int]]]:
        """Distinct values (with counts) of the choice columns, and verifier outcomes."""
        key = (manifest.dataset, manifest.id)
        with self._lock:
            if key in self._choices:
                return self._choices[key]
        lf = self.store.scan(manifest)
        names = set(self.columns(manifest))
        out: dict[str, list[tuple[str, int]]] = {}
        for col in CHOICE_COLUMNS:
            if col in names:
                df = lf.group_by(col).len().sort("len", descending=True).collect()
                out[col] = [("" if v is None else str(v), n) for v, n in df.iter_rows()][:100]
        outcomes = flatten_stats({"o": _find_outcomes(manifest.stats)})
        out["outcome"] = sorted(((k[2:].replace("/", ":"), int(v)) for k, v in outcomes.items()
                                 if isinstance(v, (int, float))), key=lambda kv: -kv[1])
        with self._lock:
            self._choices[key] = out
        return out

    def rows(self, manifest: Manifest, filters: Filters, *, offset: int = 0, limit: int = 25,
             columns: list[str] | None = None) -> Page:
        """A page of rows matching ``filters`` (``offset`` counts matching rows)."""
        if offset < 0 or limit < 1:
            raise BadFilter("offset must be >= 0 and limit >= 1")
        limit = min(limit, MAX_LIMIT)
        names = self.columns(manifest)
        expr = self._predicate(filters, names)
        lf = self.store.scan(manifest)
        cols = [c for c in (columns or names) if c in names]
        if not cols:
            raise BadFilter(f"none of the columns {columns} are in {manifest.ref}")
        if expr is None:
            total = manifest.rows
            page = lf.select(cols).slice(offset, limit).collect()
        else:
            total = lf.filter(expr).select(pl.len()).collect().item()
            page = lf.filter(expr).select(cols).slice(offset, limit).collect(engine="streaming")
        return Page(rows=page.to_dicts(), offset=offset, limit=limit, total=total, columns=cols)

    def sample(self, manifest: Manifest, sample_id: str) -> dict[str, Any] | None:
        """One row by its ``sample_id`` (or, for rows without one, ``#<row index>``)."""
        lf = self.store.scan(manifest)
        names = self.columns(manifest)
        if sample_id.startswith("#") and sample_id[1:].isdigit():
            df = lf.slice(int(sample_id[1:]), 1).collect()
        elif "sample_id" in names:
            df = lf.filter(pl.col("sample_id") == sample_id).head(1).collect(engine="streaming")
        else:
            return None
        return df.to_dicts()[0] if df.height else None

    def _predicate(self, f: Filters, names: list[str]) -> pl.Expr | None:
        exprs: list[pl.Expr] = []

        def need(col: str, why: str) -> None:
            if col not in names:
                raise BadFilter(f"{why}: this version has no column {col!r}")

        if f.outcome:
            need("verdicts", "outcome filter")
            verifier, _, outcome = f.outcome.rpartition(":")
            if outcome not in OUTCOMES:
                raise BadFilter(f"outcome {outcome!r}: use one of {', '.join(OUTCOMES)} (optionally VERIFIER:OUTCOME)")
            if verifier:
                exprs.append(pl.col("verdicts").str.json_path_match(f"$.{_json_key(verifier)}.outcome") == outcome)
            else:
                exprs.append(pl.col("verdicts").str.contains(f'"outcome":\\s*"{outcome}"'))
        if f.drop:
            need("drop", "drop filter")
            if f.drop == "kept":
                exprs.append(pl.col("drop").is_null())
            elif f.drop == "dropped":
                exprs.append(pl.col("drop").is_not_null())
            else:
                exprs.append(pl.col("drop") == f.drop)
        if f.accepted:
            need("accepted", "accepted filter")
            if f.accepted not in ("true", "false", "null"):
                raise BadFilter(f"accepted={f.accepted!r}: use true, false or null")
            exprs.append(pl.col("accepted").is_null() if f.accepted == "null"
                         else pl.col("accepted") == (f.accepted == "true"))
        for col in ("domain", "language"):
            value = getattr(f, col)
            if value:
                need(col, f"{col} filter")
                exprs.append(pl.col(col) == value)
        if f.column or f.value:
            if not f.column:
                raise BadFilter("a value filter needs column=NAME too")
            need(f.column, "column filter")
            exprs.append(pl.col(f.column).cast(pl.String) == f.value)
        if f.q:
            text_cols = [c for c in ("prompt", "completion", "answer", "messages") if c in names]
            if not text_cols:
                raise BadFilter("text search: this version has no prompt, completion, answer or messages column")
            pattern = re.escape(f.q)
            hits = [pl.col(c).cast(pl.String).str.contains(f"(?i){pattern}") if c != "messages"
                    else pl.col(c).cast(pl.List(pl.Struct({"role": pl.String, "content": pl.String})))
                    .list.eval(pl.element().struct.field("content").str.contains(f"(?i){pattern}")).list.any()
                    for c in text_cols]
            exprs.append(pl.any_horizontal([h.fill_null(False) for h in hits]))
        if not exprs:
            return None
        return pl.all_horizontal([e.fill_null(False) for e in exprs])

    # -- diff ----------------------------------------------------------------

    def diff(self, a: Manifest, b: Manifest, *, key: str = "sample_id", sample: int = 20) -> dict[str, Any]:
        """Rows added and removed by ``key`` (counts and the first ``sample`` keys),
        statistics side by side. Reads only the key column of each version."""
        out: dict[str, Any] = {"a": a.ref, "b": b.ref, "key": key,
                               "rows": {"a": a.rows, "b": b.rows, "delta": b.rows - a.rows}}
        if key in self.columns(a) and key in self.columns(b):
            ka = self.store.scan(a).select(pl.col(key).cast(pl.String)).unique()
            kb = self.store.scan(b).select(pl.col(key).cast(pl.String)).unique()
            added = kb.join(ka, on=key, how="anti")
            removed = ka.join(kb, on=key, how="anti")
            out["added"] = {"count": added.select(pl.len()).collect().item(),
                            "keys": added.sort(key).head(sample).collect()[key].to_list()}
            out["removed"] = {"count": removed.select(pl.len()).collect().item(),
                              "keys": removed.sort(key).head(sample).collect()[key].to_list()}
        fa, fb = flatten_stats(a.stats), flatten_stats(b.stats)
        out["stats"] = [{"statistic": k, "a": fa.get(k), "b": fb.get(k)} for k in sorted(set(fa) | set(fb))]
        sa = {f["name"]: f["type"] for f in a.schema_}
        sb = {f["name"]: f["type"] for f in b.schema_}
        out["schema"] = {"added": sorted(set(sb) - set(sa)), "removed": sorted(set(sa) - set(sb)),
                         "changed": sorted(k for k in set(sa) & set(sb) if sa[k] != sb[k])}
        return out


def version_summary(m: Manifest, tags: list[str] | None = None) -> dict[str, Any]:
    """The JSON a version listing shows."""
    return {"dataset": m.dataset, "version": m.id, "ref": m.ref, "rows": m.rows, "created": m.created,
            "stage": m.stage, "tags": tags or [], "parents": [str(p) for p in m.parents]}


def manifest_json(m: Manifest) -> dict[str, Any]:
    return json.loads(m.to_json())


def verdict_list(value: Any) -> list[dict[str, Any]]:
    """A row's verdicts as a list of ``{verifier, outcome, score, detail}`` (malformed JSON shown as-is)."""
    try:
        verdicts = decode_verdicts(value)
    except (ValueError, TypeError):
        return [{"verifier": "?", "outcome": "unreadable", "score": None, "detail": str(value)}]
    return [{"verifier": k, "outcome": (v or {}).get("outcome"), "score": (v or {}).get("score"),
             "detail": (v or {}).get("detail")} for k, v in sorted(verdicts.items())]


def _find_outcomes(stats: Any) -> dict:
    from datagen.plots import find_stat

    found = find_stat(stats, "outcomes")
    return found if isinstance(found, dict) else {}


def _json_key(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise BadFilter(f"verifier name {name!r}: letters, digits, '_' and '-' only")
    return name
