"""The store: dataset versions under a root (local folder or ``s3://bucket/prefix``).

- A version is immutable and visible only once its manifest exists.
- Refs (``latest``, named tags) live at ``<root>/<dataset>/_refs/<tag>.json``
  and move by compare-and-swap, so a stale writer is refused, never silently
  overwritten. ``latest`` only moves forward (to a later-created version), so
  two writers finishing out of order still leave it on the newest.
- A run key (a hash of a stage's inputs and config) maps to a version id at
  ``<root>/<dataset>/_runs/<key>.json``, written create-only: a rerun of the
  same stage with the same inputs finds the same version and resumes it
  shard by shard, or finds it committed and does nothing.
- Readers resolve ``NAME``, ``NAME@VERSION`` or ``NAME@TAG`` to a manifest and
  read the shards it lists — no listing of the bucket.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from datagen.store.manifest import Manifest, ParentRef, check_name, new_version_id
from datagen.store.objects import AlreadyExists, Conflict, NotFound, Objects, StoreError, open_objects
from datagen.store.writer import VersionWriter

log = logging.getLogger(__name__)


class VersionNotFound(StoreError):
    """No committed version (or tag) of that name."""


def default_root() -> str:
    """``$DATAGEN_ROOT``, else ``./datasets``."""
    return os.environ.get("DATAGEN_ROOT") or "datasets"


def parse_ref(text: str) -> tuple[str, str | None]:
    """``NAME`` / ``NAME@VERSION`` / ``NAME@TAG`` -> (name, selector or None)."""
    name, sep, selector = text.partition("@")
    check_name(name)
    if sep and not selector:
        raise StoreError(f"{text!r}: nothing after '@' (use NAME, NAME@VERSION or NAME@TAG)")
    return name, (selector or None)


class Store:
    """Dataset versions under one root. Cheap to build; safe to share across threads."""

    def __init__(self, root: str | os.PathLike | None = None, *, objects: Objects | None = None):
        self.root = str(root if root is not None else default_root())
        self.objects = objects or open_objects(self.root)
        self._manifest_cache: dict[tuple[str, str], Manifest] = {}

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    # -- writing -------------------------------------------------------------

    def writer(
        self,
        dataset: str,
        *,
        stage: str,
        config: Mapping[str, Any] | None = None,
        parents: Sequence[str | ParentRef] = (),
        flow_run_id: str | None = None,
        run_key: str | None = None,
        version: str | None = None,
        **kwargs: Any,
    ) -> VersionWriter:
        """A writer for a new version of ``dataset``.

        With ``run_key`` the version id is stable across reruns of the same
        stage on the same inputs: finished shards are found (``shard_done``)
        and, if that version was already committed, ``writer.committed`` holds
        its manifest.
        """
        check_name(dataset)
        if version is None and run_key is not None:
            version = self._version_for_run(dataset, run_key)
        version = version or new_version_id()
        w = VersionWriter(
            self, dataset, stage=stage, version=version, config=config, parents=parents, flow_run_id=flow_run_id, **kwargs
        )
        if self.objects.exists(f"{dataset}/{version}/manifest.json"):
            w.committed = self.manifest(dataset, version)
            # A commit cut off after its manifest left `latest` behind: the rerun
            # that finds it committed finishes the job.
            self.move_ref(dataset, "latest", version, only_forward=True)
        return w

    def _version_for_run(self, dataset: str, run_key: str) -> str:
        check_name(run_key, "run key")
        key = f"{dataset}/_runs/{run_key}.json"
        candidate = new_version_id()
        try:
            self.objects.put_bytes(key, json.dumps({"version": candidate}).encode(), create_only=True)
            return candidate
        except AlreadyExists:
            return json.loads(self.objects.get_bytes(key))["version"]

    # -- refs ----------------------------------------------------------------

    def _ref_key(self, dataset: str, tag: str) -> str:
        return f"{dataset}/_refs/{tag}.json"

    def get_ref(self, dataset: str, tag: str) -> tuple[str | None, str | None]:
        """(version id, etag) of a ref, or (None, None) when unset."""
        try:
            data, etag = self.objects.get_with_etag(self._ref_key(dataset, tag))
        except NotFound:
            return None, None
        return json.loads(data)["version"], etag

    def move_ref(
        self, dataset: str, tag: str, version: str, *, expected_etag: str | None | bool = False, only_forward=False
    ) -> None:
        """Point ``dataset@tag`` at ``version`` by compare-and-swap.

        ``expected_etag=False`` (default) reads the current etag and retries on
        conflict (a concurrent writer moved it in between); pass an explicit
        etag (or None = must not exist) to refuse a stale move with ``Conflict``.
        ``only_forward`` keeps a ref on the newer version when writers race.
        """
        check_name(tag, "tag")
        if not self.objects.exists(f"{dataset}/{version}/manifest.json"):
            raise VersionNotFound(f"{dataset}@{version} is not a committed version")
        body = json.dumps({"version": version}).encode()
        if expected_etag is not False:
            self.objects.compare_and_swap(self._ref_key(dataset, tag), body, expected_etag)
            return
        for _ in range(20):
            current, etag = self.get_ref(dataset, tag)
            if current == version:
                return
            if only_forward and current is not None and current > version:
                return  # version ids sort by creation time
            try:
                self.objects.compare_and_swap(self._ref_key(dataset, tag), body, etag)
                return
            except Conflict:
                continue
        raise Conflict(f"could not move {dataset}@{tag}: too many concurrent updates")

    def tag(self, ref: str, tag: str) -> Manifest:
        """Point ``tag`` at the version ``ref`` resolves to."""
        manifest = self.resolve(ref)
        self.move_ref(manifest.dataset, tag, manifest.id)
        return manifest

    def tags(self, dataset: str) -> dict[str, str]:
        out = {}
        for key in self.objects.list_keys(f"{dataset}/_refs"):
            if key.endswith(".json"):
                tag = key.rsplit("/", 1)[1][: -len(".json")]
                out[tag] = self.get_ref(dataset, tag)[0]
        return out

    # -- reading -------------------------------------------------------------

    def manifest(self, dataset: str, version: str) -> Manifest:
        """The manifest of a committed version (cached: versions are immutable)."""
        cached = self._manifest_cache.get((dataset, version))
        if cached is not None:
            return cached
        try:
            data = self.objects.get_bytes(f"{dataset}/{version}/manifest.json")
        except NotFound:
            raise VersionNotFound(f"{dataset}@{version}: no such committed version in {self.root}") from None
        manifest = Manifest.from_json(data)
        self._manifest_cache[(dataset, version)] = manifest
        return manifest

    def resolve(self, ref: str) -> Manifest:
        """``NAME`` (= ``NAME@latest``), ``NAME@VERSION`` or ``NAME@TAG`` -> manifest."""
        dataset, selector = parse_ref(ref)
        selector = selector or "latest"
        if self.objects.exists(f"{dataset}/{selector}/manifest.json"):
            return self.manifest(dataset, selector)
        version, _ = self.get_ref(dataset, selector)
        if version is None and selector == "latest":
            # `latest` is moved right after the manifest; a writer cut off in
            # between leaves committed versions without it. Readers still see them.
            committed = self.versions(dataset)
            if committed:
                return committed[-1]
        if version is None:
            if selector == "latest":
                raise VersionNotFound(f"dataset {dataset!r} has no versions in {self.root}")
            raise VersionNotFound(f"{ref}: no version or tag {selector!r} in dataset {dataset!r} ({self.root})")
        return self.manifest(dataset, version)

    def parse_parent(self, ref: str) -> ParentRef:
        manifest = self.resolve(ref)
        return ParentRef(dataset=manifest.dataset, version=manifest.id)

    def datasets(self) -> list[str]:
        return [d for d in self.objects.list_dirs("") if not d.startswith((".", "_"))]

    def versions(self, dataset: str) -> list[Manifest]:
        """Committed versions of ``dataset``, oldest first (uncommitted ones are invisible)."""
        out = []
        for version in self.objects.list_dirs(dataset):
            if version.startswith(("_", ".")):
                continue
            try:
                out.append(self.manifest(dataset, version))
            except VersionNotFound:
                continue  # no manifest: not a version
        return sorted(out, key=lambda m: (m.created, m.id))

    def lineage(self, manifest: Manifest) -> list[Manifest]:
        """The chain of first parents back to the root: [manifest, parent, grandparent, …]."""
        chain = [manifest]
        seen = {manifest.ref}
        while chain[-1].parents:
            parent = chain[-1].parents[0]
            try:
                m = self.manifest(parent.dataset, parent.version)
            except VersionNotFound:
                break
            if m.ref in seen:
                break
            seen.add(m.ref)
            chain.append(m)
        return chain

    def uris(self, ref: str | Manifest) -> list[str]:
        manifest = ref if isinstance(ref, Manifest) else self.resolve(ref)
        return [self.objects.uri(s.path) for s in manifest.shards]

    def scan(self, ref: str | Manifest):
        """A lazy polars frame over the version's shards (no bucket listing)."""
        import polars as pl

        manifest = ref if isinstance(ref, Manifest) else self.resolve(ref)
        uris = self.uris(manifest)
        if not uris:
            return pl.LazyFrame(schema={f["name"]: pl.String for f in manifest.schema_})
        return _scan(uris, self.objects.storage_options())

    def data_files(self, ref: str | Manifest) -> tuple[list[str], dict[str, Any] | None]:
        """(files, storage_options) for ``datasets.load_dataset("parquet", data_files=…)``."""
        manifest = ref if isinstance(ref, Manifest) else self.resolve(ref)
        uris = self.uris(manifest)
        opts = self.objects.fsspec_options() if hasattr(self.objects, "fsspec_options") else None
        return uris, opts

    def load_hf(self, ref: str | Manifest):
        """The version as a ``datasets.Dataset`` (split ``train``)."""
        import datasets

        files, opts = self.data_files(ref)
        return datasets.load_dataset("parquet", data_files=files, storage_options=opts, split="train")

    def iter_batches(
        self, ref: str | Manifest, *, columns: list[str] | None = None, batch_size: int = 8192
    ) -> Iterator[pa.RecordBatch]:
        """Stream a version's rows as Arrow record batches, shard by shard (bounded memory)."""
        manifest = ref if isinstance(ref, Manifest) else self.resolve(ref)
        for info in manifest.shards:
            with self._open(info.path) as fh:
                pf = pq.ParquetFile(fh)
                cols = [c for c in columns if c in pf.schema_arrow.names] if columns else None
                yield from pf.iter_batches(batch_size=batch_size, columns=cols)

    def iter_rows(self, ref: str | Manifest, *, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
        for batch in self.iter_batches(ref, columns=columns):
            yield from batch.to_pylist()

    def read_rows(self, ref: str | Manifest, *, columns: list[str] | None = None) -> list[dict[str, Any]]:
        return list(self.iter_rows(ref, columns=columns))

    def read_shard_schema(self, path: str) -> pa.Schema:
        with self._open(path) as fh:
            return pq.ParquetFile(fh).schema_arrow

    def read_shard(self, path: str) -> pa.Table:
        with self._open(path) as fh:
            return pq.read_table(fh)

    def _open(self, path: str):
        if self.objects.kind == "local":
            return open(self.objects.path(path), "rb")
        import io

        return io.BytesIO(self.objects.get_bytes(path))


def _scan(uris: list[str], storage_options: dict[str, str] | None):
    import polars as pl

    kwargs: dict[str, Any] = {"missing_columns": "insert"}
    if storage_options:
        kwargs["storage_options"] = storage_options
    try:
        return pl.scan_parquet(uris, **kwargs)
    except TypeError:  # older polars without missing_columns
        kwargs.pop("missing_columns")
        return pl.scan_parquet(uris, allow_missing_columns=True, **kwargs)


def open_store(root: str | os.PathLike | None = None) -> Store:
    """The store at ``root``; ``None`` = ``$DATAGEN_ROOT``, else ``./datasets``."""
    return Store(root)
