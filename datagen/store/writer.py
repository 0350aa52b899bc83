"""Writing a dataset version: streaming shards, resumable named shards, the commit.

Layout (shared/DESIGN.md)::

    <root>/<dataset>/<version>/data/part-00000.parquet …
    <root>/<dataset>/<version>/markers/part-00000.json   # shard done: rows, sha256
    <root>/<dataset>/<version>/manifest.json              # written last = the commit
    <root>/<dataset>/<version>/README.md                  # dataset card

Memory stays bounded whatever the dataset size: rows are buffered a batch at
a time, each batch goes straight to a Parquet writer on a local spool file,
and a shard is closed and uploaded once it reaches ``shard_bytes``.

A shard is done when its marker exists (the marker is written after the data
object), so a writer killed at any moment leaves only unreferenced objects
and no manifest: nothing becomes visible, and a resumed writer (same
``version``) redoes only the shards without a marker.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from datagen.files import sha256_file
from datagen.records import to_arrow
from datagen.store.manifest import Manifest, ParentRef, ShardInfo, check_name, code_revision, schema_to_list
from datagen.store.objects import AlreadyExists

if TYPE_CHECKING:
    from datagen.store.versions import Store

log = logging.getLogger(__name__)

DEFAULT_SHARD_BYTES = 256 * 1024 * 1024
DEFAULT_BATCH_ROWS = 8192
#: Buffered rows are converted when they hold this much text: 8192 R1-shaped rows (8-30 KB
#: each) held ~190 MB of dicts, as much again in Arrow and in the strings' UTF-8 copies.
DEFAULT_BATCH_BYTES = 32 * 1024 * 1024


def _as_table(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    try:
        import polars as pl

        if isinstance(data, pl.DataFrame):
            return data.to_arrow()
    except ImportError:  # pragma: no cover
        pass
    return to_arrow(data)


#: Types of the optional columns stages add (datagen/records.py lists the core
#: ones). A shard in which such a column is null in every row is still written
#: with this type: an Arrow ``null`` column in the first shard makes polars,
#: ``datasets`` and duckdb fail on the whole version (issue 19).
EXTRA_COLUMN_TYPES: dict[str, pa.DataType] = {
    "prompt_tokens": pa.int64(),
    "generation_error": pa.string(),
    "sampling": pa.string(),
    "prompt_template": pa.string(),
    "prompt_hash": pa.string(),
    "pass_rate": pa.float64(),
    "n_samples": pa.int64(),
    "n_judged": pa.int64(),
    "n_accepted": pa.int64(),
    "kind": pa.string(),
    # non-reasoning rows (datagen/nonreasoning.py)
    "task": pa.string(),
    "cot": pa.string(),
    "identity": pa.string(),
    "source_language": pa.string(),
    "reason": pa.string(),
    "detail": pa.string(),
}


class SchemaMismatch(ValueError):
    """Shards of one version disagree on a column's type: the commit is refused."""


def _one_type(t: pa.DataType) -> pa.DataType:
    """One string type and one list type for every shard: ``large_string`` (polars'
    choice) becomes ``string`` (pyarrow's), recursively through lists and structs."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.list_(_one_type(t.value_type))
    if pa.types.is_list(t):
        return pa.list_(_one_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _one_type(f.type), f.nullable) for f in t])
    if pa.types.is_map(t):
        return pa.map_(_one_type(t.key_type), _one_type(t.item_type))
    return t


def normalize_table(table: pa.Table, declared: pa.Schema | None = None) -> pa.Table:
    """The table as every shard of a version must hold it: no ``null``-typed
    column (its type comes from ``declared``, the record's core schema or
    ``EXTRA_COLUMN_TYPES``; string when unknown), one string type."""
    from datagen.records import SCHEMA

    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_null(t):
            if declared is not None and f.name in declared.names:
                t = declared.field(f.name).type
            elif f.name in SCHEMA.names:
                t = SCHEMA.field(f.name).type
            else:
                t = EXTRA_COLUMN_TYPES.get(f.name, pa.string())
        t = _one_type(t)
        fields.append(pa.field(f.name, t, True if pa.types.is_null(f.type) else f.nullable, f.metadata))
    target = pa.schema(fields, metadata=table.schema.metadata)
    return table if target == table.schema else table.cast(target)


def check_shard_schemas(named: Sequence[tuple[str, pa.Schema]]) -> None:
    """Refuse shards that disagree on a column's type (a column missing from a
    shard is fine: readers insert it as null). Raises ``SchemaMismatch`` naming
    both shards, the column and the types."""
    seen: dict[str, tuple[str, pa.DataType]] = {}
    for shard, schema in named:
        for f in schema:
            if pa.types.is_null(f.type):
                raise SchemaMismatch(
                    f"shard {shard}: column {f.name!r} has Arrow type null; write it with its real type "
                    "(declare it in datagen.store.writer.EXTRA_COLUMN_TYPES or pass schema= to the writer)"
                )
            first = seen.setdefault(f.name, (shard, f.type))
            if first[1] != f.type:
                raise SchemaMismatch(
                    f"shards disagree on column {f.name!r}: {first[0]} has {first[1]}, {shard} has {f.type}; "
                    "write every shard with the stage's full schema"
                )


def _unify(a: pa.Schema, b: pa.Schema) -> pa.Schema | None:
    """The common schema of two batches, or None when they truly disagree."""
    try:
        return pa.unify_schemas([a, b], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


class VersionWriter:
    """Writes one version of a dataset; ``commit()`` makes it visible.

    Two ways to put data in, freely mixed:

    - ``write(rows)``: streaming; rows (dicts, an Arrow table or a polars
      frame) are cut into size-bounded shards ``part-00000`` … automatically.
    - ``write_shard(name, rows)``: one named shard, written whole (a flow task
      writes one shard each). ``shard_done(name)`` tells a resumed run to skip it.

    ``add_existing_shard(info)`` reuses a parent's unchanged shard by reference.
    """

    def __init__(
        self,
        store: Store,
        dataset: str,
        *,
        stage: str,
        version: str,
        config: Mapping[str, Any] | None = None,
        parents: Sequence[str | ParentRef] = (),
        flow_run_id: str | None = None,
        shard_bytes: int = DEFAULT_SHARD_BYTES,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        schema: pa.Schema | None = None,
    ):
        self.store = store
        self.dataset = check_name(dataset)
        self.version = check_name(version, "version")
        self.stage = stage
        self.config = dict(config or {})
        self.parents = [p if isinstance(p, ParentRef) else store.parse_parent(p) for p in parents]
        self.flow_run_id = flow_run_id
        self.shard_bytes = shard_bytes
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self._schema = schema
        self._buffer: list[Mapping[str, Any]] = []
        self._buffer_bytes = 0  # text characters in the buffer (a proxy for its bytes)
        self._spool: tempfile.TemporaryDirectory | None = None
        self._pq: pq.ParquetWriter | None = None
        self._pq_path: Path | None = None
        self._pq_rows = 0
        self._pq_schema: pa.Schema | None = None
        # Double buffering: a batch is compressed and written to the open shard on this
        # thread while the caller converts the next (Parquet writes release the GIL).
        self._io: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self._next_part = self._first_free_part()
        self._referenced: list[ShardInfo] = []
        self._rejected: list[ShardInfo] = []
        self.committed: Manifest | None = None
        self._seen_schema: pa.Schema | None = None

    # -- keys ----------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return f"{self.dataset}/{self.version}"

    def _data_key(self, name: str) -> str:
        return f"{self.prefix}/data/{name}.parquet"

    def _marker_key(self, name: str) -> str:
        return f"{self.prefix}/markers/{name}.json"

    def _first_free_part(self) -> int:
        existing = [k for k in self.store.objects.list_keys(f"{self.prefix}/markers") if "/part-" in k]
        nums = [int(Path(k).stem.split("-")[1]) for k in existing if Path(k).stem.split("-")[1].isdigit()]
        return max(nums) + 1 if nums else 0

    # -- named shards --------------------------------------------------------

    def shard_done(self, name: str) -> bool:
        """True when shard ``name`` was finished by this or an earlier (killed) run."""
        return self.store.objects.exists(self._marker_key(name))

    def shard_info(self, name: str) -> ShardInfo:
        return ShardInfo.model_validate_json(self.store.objects.get_bytes(self._marker_key(name)))

    def write_shard(self, name: str, rows: Any, *, kind: str = "data") -> ShardInfo:
        """Write a whole shard under a deterministic name; atomic, with its marker."""
        check_name(name, "shard")
        table = normalize_table(_as_table(rows), self._schema)
        with tempfile.TemporaryDirectory(prefix="datagen-shard-") as tmp:
            local = Path(tmp) / f"{name}.parquet"
            pq.write_table(table, local, compression="zstd")
            return self._upload(name, local, table.num_rows, kind=kind)

    def _upload(self, name: str, local: Path, rows: int, *, kind: str = "data") -> ShardInfo:
        key = self._data_key(name) if kind == "data" else f"{self.prefix}/{kind}/{name}.parquet"
        info = ShardInfo(path=key, rows=rows, sha256=sha256_file(local), bytes=local.stat().st_size)
        self.store.objects.put_file(key, local)
        if kind == "data":
            self.store.objects.put_bytes(self._marker_key(name), info.model_dump_json().encode())
        else:
            self._rejected.append(info)
        log.debug("wrote %s (%d rows)", key, rows)
        return info

    def add_existing_shard(self, info: ShardInfo) -> None:
        """Reference a shard of another version (unchanged data is not copied)."""
        self._referenced.append(info)

    # -- streaming -----------------------------------------------------------

    def write(self, rows: Any) -> None:
        """Append rows; memory stays bounded (a batch plus the open Parquet writer)."""
        if isinstance(rows, (pa.Table, pa.RecordBatch)) or type(rows).__name__ == "DataFrame":
            self._flush_buffer()
            table = _as_table(rows)
            self._seen_schema = self._seen_schema or table.schema
            for batch in table.to_batches(max_chunksize=self.batch_rows):
                self._write_table(pa.Table.from_batches([batch], schema=table.schema))
            return
        for row in rows:
            self._buffer.append(row)
            self._buffer_bytes += sum(len(v) for v in row.values() if isinstance(v, (str, bytes)))
            if len(self._buffer) >= self.batch_rows or self._buffer_bytes >= self.batch_bytes:
                self._flush_buffer()

    def _flush_buffer(self) -> None:
        if self._buffer:
            table = to_arrow(self._buffer)
            self._buffer, self._buffer_bytes = [], 0
            self._write_table(table)

    def _write_table(self, table: pa.Table) -> None:
        table = normalize_table(table, self._schema)
        if self._schema is not None:
            table = table.select([n for n in self._schema.names if n in table.column_names]).cast(
                pa.schema([self._schema.field(n) for n in table.column_names if n in self._schema.names])
            )
        self._drain()
        if self._pq is not None and self._pq_path.stat().st_size >= self.shard_bytes:
            self._close_shard()  # the open shard is full
        if self._pq is not None and table.schema != self._pq_schema:
            unified = _unify(self._pq_schema, table.schema)
            if unified is not None and unified == self._pq_schema:
                table = _conform(table, unified)
            else:
                # A new column or a type the open shard cannot hold: start a new
                # shard; the reader unifies shard schemas.
                self._close_shard()
        if self._pq is None:
            self._open_shard(table.schema)
        if self._io is None:
            self._io = ThreadPoolExecutor(1, thread_name_prefix="datagen-shard-writer")
        self._pending = self._io.submit(self._pq.write_table, table)
        self._pq_rows += table.num_rows

    def _drain(self) -> None:
        """Wait for the batch being written; its error, if any, is raised here."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _stop_io(self) -> None:
        if self._io is not None:
            self._io.shutdown(wait=True)
            self._io = None

    def _open_shard(self, schema: pa.Schema) -> None:
        if self._spool is None:
            self._spool = tempfile.TemporaryDirectory(prefix="datagen-spool-")
        name = f"part-{self._next_part:05d}"
        self._pq_path = Path(self._spool.name) / f"{name}.parquet"
        self._pq = pq.ParquetWriter(self._pq_path, schema, compression="zstd")
        self._pq_schema = schema
        self._pq_rows = 0

    def _close_shard(self) -> None:
        self._drain()
        if self._pq is None:
            return
        self._pq.close()
        name = self._pq_path.stem
        self._upload(name, self._pq_path, self._pq_rows)
        self._pq_path.unlink(missing_ok=True)
        self._pq = None
        self._next_part += 1

    def write_rejected(self, rows: list[Mapping[str, Any]]) -> ShardInfo | None:
        """Quarantined rows with their reason (kept in the version, not in its data)."""
        if not rows:
            return None
        table = pa.Table.from_pylist([dict(r) for r in rows])
        with tempfile.TemporaryDirectory(prefix="datagen-rejected-") as tmp:
            local = Path(tmp) / "part-00000.parquet"
            pq.write_table(table, local, compression="zstd")
            return self._upload("part-00000", local, table.num_rows, kind="rejected")

    # -- commit --------------------------------------------------------------

    def collect_shards(self) -> list[ShardInfo]:
        """All finished shards of this version (by their markers) plus references."""
        keys = self.store.objects.list_keys(f"{self.prefix}/markers")
        infos = [ShardInfo.model_validate_json(self.store.objects.get_bytes(k)) for k in keys if k.endswith(".json")]
        infos.sort(key=lambda i: i.path)
        return self._referenced + infos

    def commit(
        self,
        *,
        stats: Mapping[str, Any] | None = None,
        move_refs: Sequence[str] = ("latest",),
        card_notes: str = "",
    ) -> Manifest:
        """Seal the version: the manifest is written create-only, then the card,
        then refs move by compare-and-swap. Raises ``AlreadyExists`` if this
        version was committed before (by us or a concurrent writer)."""
        self._flush_buffer()
        self._close_shard()
        self._stop_io()
        shards = self.collect_shards()
        if not shards:
            # An empty version still carries its schema (an empty shard), so
            # readers get the right columns instead of none.
            from datagen.records import SCHEMA

            empty = (self._schema or self._seen_schema or SCHEMA).empty_table()
            self.write_shard(f"part-{self._next_part:05d}", empty)
            shards = self.collect_shards()
        schema = self._read_schema(shards)
        manifest = Manifest(
            id=self.version,
            dataset=self.dataset,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),  # orders same-second commits
            parents=self.parents,
            stage=self.stage,
            config=self.config,
            code_revision=code_revision(),
            flow_run_id=self.flow_run_id,
            rows=sum(s.rows for s in shards),
            schema=schema_to_list(schema) if schema is not None else [],
            shards=shards,
            stats=dict(stats or {}),
            rejected=self._rejected,
            commit_token=secrets.token_hex(8),
        )
        self.store.objects.put_bytes(f"{self.prefix}/manifest.json", manifest.to_json(), create_only=True)
        from datagen.store.card import write_card

        try:
            lineage = self.store.lineage(manifest)
        except Exception:  # noqa: BLE001 - a missing parent must not undo a commit
            lineage = [manifest]
        write_card(self.store, manifest, lineage)  # the card, with its plots beside it
        for ref in move_refs:
            self.store.move_ref(self.dataset, ref, self.version, only_forward=(ref == "latest"))
        self.committed = manifest
        if self._spool is not None:
            self._spool.cleanup()
        log.info("committed %s (%d rows, %d shards)", manifest.ref, manifest.rows, len(shards))
        return manifest

    def _read_schema(self, shards: list[ShardInfo]) -> pa.Schema | None:
        if not shards:
            return self._schema
        # Every shard is checked (a footer read each): one shard typed apart
        # breaks every reader of the version, so it must not be committed.
        schemas = [_footer_schema(self.store, info.path) for info in shards]
        check_shard_schemas([(info.path, sch) for info, sch in zip(shards, schemas)])
        try:
            return pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return schemas[0]

    def abort(self) -> None:
        """Drop local spool files (uploaded objects stay invisible without a manifest)."""
        try:
            self._drain()
        except Exception as exc:  # noqa: BLE001 - aborting: the failed batch is dropped with the rest
            log.debug("aborting %s: the batch being written failed: %s", self.prefix, exc)
        self._stop_io()
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        if self._spool is not None:
            self._spool.cleanup()


def _footer_schema(store: Store, path: str) -> pa.Schema:
    """A shard's Arrow schema from its footer alone (on S3 a few small ranged
    reads, not the whole object)."""
    if store.objects.kind == "local":
        return pq.read_schema(store.objects.path(path))
    import s3fs

    fs = s3fs.S3FileSystem(**store.objects.fsspec_options())
    uri = store.objects.uri(path)
    with fs.open(uri, "rb", block_size=1 << 16) as fh:
        return pq.ParquetFile(fh).schema_arrow


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = []
    for f in schema:
        if f.name in table.column_names:
            cols.append(table.column(f.name).cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


__all__ = ["DEFAULT_SHARD_BYTES", "EXTRA_COLUMN_TYPES", "AlreadyExists", "SchemaMismatch", "VersionWriter", "normalize_table"]
