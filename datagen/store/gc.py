"""Garbage collection and removal of dataset versions.

What a store accumulates without it: a writer killed mid-run leaves a version
folder without a manifest (shards, markers, per-shard stats, temp files) —
invisible to readers, but paid for; a committed version can hold objects its
manifest does not list (a shard re-uploaded by a retried task, a temp file).

``collect_garbage`` removes, once older than a grace period:

- abandoned run folders: a version folder with no manifest, none of whose
  objects changed within the grace period (a running writer keeps touching
  its folder), and the run key (``_runs/<key>.json``) that points to it;
- orphans inside committed versions: objects under ``data/`` that the manifest
  does not list, markers and stats of such shards, and temp files.

It never removes an object that a committed manifest lists (its own shards,
or a parent's shards it reuses by reference), a manifest, a card or its
plots, or a ref. ``remove_version`` deletes one committed version on request:
the manifest first (so the version disappears from readers atomically), then
its refs and objects; it refuses while another version reuses its shards.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from datagen.store.manifest import Manifest
from datagen.store.objects import StoreError
from datagen.store.versions import Store

log = logging.getLogger(__name__)

DEFAULT_GRACE = dt.timedelta(hours=24)
#: Objects of a committed version that are its own, besides the shards it lists.
_VERSION_FILES = ("manifest.json", "README.md")
_VERSION_DIRS = ("plots/",)


@dataclass
class GcReport:
    """What a gc removed (or would remove, on a dry run), with the bytes freed."""

    removed: list[str] = field(default_factory=list)
    bytes: int = 0
    kept_young: list[str] = field(default_factory=list)  # would go, but younger than the grace period
    dry_run: bool = False


def _listing(store: Store, prefix: str) -> list[tuple[str, int, dt.datetime]]:
    """(key, size, modified) of every object under ``prefix``, temp files included."""
    objects = store.objects
    if objects.kind == "local":
        base = objects.path(prefix)
        if not base.is_dir():
            return []
        out = []
        for p in base.rglob("*"):
            if p.is_file() and not p.name.endswith(".lock"):
                st = p.stat()
                out.append((str(p.relative_to(objects.root)), st.st_size,
                            dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)))
        return sorted(out)
    full = objects._key(prefix).rstrip("/") + "/"
    strip = len(objects.prefix) + 1 if objects.prefix else 0
    out = []
    for page in objects.client.get_paginator("list_objects_v2").paginate(Bucket=objects.bucket, Prefix=full):
        for obj in page.get("Contents", []):
            out.append((obj["Key"][strip:], int(obj["Size"]), obj["LastModified"]))
    return sorted(out)


def _committed(store: Store) -> dict[tuple[str, str], Manifest]:
    out = {}
    for name in store.datasets():
        for m in store.versions(name):
            out[(m.dataset, m.id)] = m
    return out


def _protected(committed: dict[tuple[str, str], Manifest]) -> set[str]:
    keys: set[str] = set()
    for m in committed.values():
        keys.update(s.path for s in m.shards)
        keys.update(s.path for s in m.rejected)
    return keys


def collect_garbage(
    store: Store, *, grace: dt.timedelta = DEFAULT_GRACE, dry_run: bool = False, now: dt.datetime | None = None
) -> GcReport:
    """Remove orphaned shards, markers and abandoned run folders older than
    ``grace`` (see the module docstring for exactly what). ``dry_run`` lists
    what would go and removes nothing."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - grace
    committed = _committed(store)
    protected = _protected(committed)
    report = GcReport(dry_run=dry_run)
    doomed: list[tuple[str, int]] = []

    for name in store.datasets():
        run_keys = {}
        for key, _, _ in _listing(store, f"{name}/_runs"):
            try:
                run_keys[key] = json.loads(store.objects.get_bytes(key)).get("version")
            except Exception:  # noqa: BLE001 - an unreadable run key is left for a person to look at
                log.warning("gc: cannot read run key %s; left alone", key)
        for version in store.objects.list_dirs(name):
            if version.startswith(("_", ".")):
                continue
            listing = _listing(store, f"{name}/{version}")
            if not listing:
                continue
            if (name, version) in committed:
                manifest = committed[(name, version)]
                listed = {Path(s.path).stem for s in manifest.shards}
                for key, size, modified in listing:
                    if key in protected or _is_version_file(key, name, version):
                        continue
                    if not _orphan_in_committed(key, name, version, listed):
                        continue
                    if modified > cutoff:
                        report.kept_young.append(key)
                    else:
                        doomed.append((key, size))
            else:
                newest = max(modified for _, _, modified in listing)
                keys = [(k, s) for k, s, _ in listing if k not in protected]
                if newest > cutoff:
                    report.kept_young.extend(k for k, _ in keys)
                    continue
                doomed.extend(keys)
                doomed.extend((k, 0) for k, v in run_keys.items() if v == version)

    for key, size in doomed:
        report.removed.append(key)
        report.bytes += size
        if not dry_run:
            store.objects.delete(key)
    log.info("gc %s: %s %d objects (%d bytes)", store.root, "would remove" if dry_run else "removed",
             len(report.removed), report.bytes)
    return report


def _is_version_file(key: str, name: str, version: str) -> bool:
    rel = key[len(f"{name}/{version}/"):]
    return rel in _VERSION_FILES or rel.startswith(_VERSION_DIRS)


def _orphan_in_committed(key: str, name: str, version: str, listed_stems: set[str]) -> bool:
    """In a committed version: a data object it does not list, a marker or stats
    file of such a shard, or a temp file. Anything else (unknown folders) stays."""
    rel = key[len(f"{name}/{version}/"):]
    leaf = rel.rsplit("/", 1)[-1]
    if ".tmp-" in leaf and leaf.startswith("."):
        return True  # a writer's temp file (local backend): never the final name
    folder = rel.split("/", 1)[0]
    if folder == "data":
        return True  # not in the manifest (listed shards are protected above)
    if folder in ("markers", "stats"):
        return Path(leaf).stem not in listed_stems
    return False


class VersionInUse(StoreError):
    """The version's shards are reused by other versions: removing it would break them."""


@dataclass
class RemoveReport:
    ref: str
    removed: list[str]
    bytes: int
    refs_moved: dict[str, str | None]


def remove_version(store: Store, ref: str) -> RemoveReport:
    """Delete one committed version: manifest first (readers stop seeing it at
    once), then tags pointing at it (``latest`` moves back to the newest
    remaining version), then its objects. Refuses while another committed
    version reuses its shards by reference."""
    m = store.resolve(ref)
    committed = _committed(store)
    own = f"{m.dataset}/{m.id}/"
    dependents = sorted(
        other.ref for key, other in committed.items()
        if key != (m.dataset, m.id) and any(s.path.startswith(own) for s in other.shards)
    )
    if dependents:
        raise VersionInUse(
            f"{m.ref} cannot be removed: {', '.join(dependents)} reuse(s) its shards; remove those first"
        )
    listing = _listing(store, f"{m.dataset}/{m.id}")
    store.objects.delete(f"{m.dataset}/{m.id}/manifest.json")
    store._manifest_cache.pop((m.dataset, m.id), None)
    moved: dict[str, str | None] = {}
    remaining = [v for v in store.versions(m.dataset) if v.id != m.id]
    for tag, version in store.tags(m.dataset).items():
        if version != m.id:
            continue
        if tag == "latest" and remaining:
            store.move_ref(m.dataset, "latest", remaining[-1].id)
            moved[tag] = remaining[-1].id
        else:
            store.objects.delete(f"{m.dataset}/_refs/{tag}.json")
            moved[tag] = None
    removed, size = [], 0
    for key, nbytes, _ in listing:
        if key.endswith("/manifest.json"):
            removed.append(key)
            size += nbytes
            continue
        store.objects.delete(key)
        removed.append(key)
        size += nbytes
    return RemoveReport(ref=m.ref, removed=removed, bytes=size, refs_moved=moved)


__all__ = ["DEFAULT_GRACE", "GcReport", "RemoveReport", "VersionInUse", "collect_garbage", "remove_version"]
