"""Ingest: problem files in and out of the store (``datasets import`` / ``export``, the ``ingest`` flow).

Import never crashes on bad input and never drops silently: every input row
ends up either in the new version (normalized to the record, ``problem_id``
filled), counted as an exact duplicate (same normalized prompt as an earlier
row), or quarantined in the version's rejected part with its reason (a bad
JSON line, a missing prompt, a wrong type).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datagen.files import file_format
from datagen.records import DOMAINS, RecordError, normalize_prompt, normalize_row
from datagen.store.manifest import Manifest
from datagen.store.versions import Store

log = logging.getLogger(__name__)


@dataclass
class ImportResult:
    manifest: Manifest
    input_rows: int
    accepted: int
    duplicates: int
    rejected: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


def _iter_source(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(row number, raw row or None, error or None) for JSONL, Parquet or a saved HF dataset."""
    if path.is_dir():
        import datasets

        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as exc:  # noqa: BLE001 - report what is wrong with the folder
            raise ValueError(f"{path}: not a saved Hugging Face dataset ({exc})") from None
        if isinstance(ds, datasets.DatasetDict):
            split = "train" if "train" in ds else next(iter(ds))
            ds = ds[split]
        for i, row in enumerate(ds, 1):
            yield i, row, None
        return
    fmt = file_format(path)
    if fmt == "jsonl":
        # Line by line in binary: a byte that is not UTF-8 loses its line, not the file.
        from datagen.rowfile import iter_rows

        for n, row, rej in iter_rows(path, check_types=False):
            if rej is not None:
                yield n, rej.raw, f"{rej.reason}: {rej.detail}"
            else:
                yield n, row, None
        return
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    n = 0
    for batch in pf.iter_batches(batch_size=8192):
        for row in batch.to_pylist():
            n += 1
            yield n, row, None


def _reason_slug(error: str | None, exc: RecordError | None) -> str:
    if error is not None:
        slug = error.split(":", 1)[0]
        return slug if slug.isidentifier() and slug.islower() else "invalid_json"
    if exc is not None and exc.field:
        text = str(exc)
        if "missing" in text:
            return f"missing_{exc.field}"
        if "empty" in text:
            return f"empty_{exc.field}"
        return f"bad_{exc.field}"
    return "not_an_object"


def import_file(
    store: Store,
    path: str | os.PathLike,
    *,
    name: str,
    source: str | None = None,
    progress: bool = False,
    run_key: str | None = None,
    flow_run_id: str | None = None,
    allow_empty: bool = False,
) -> ImportResult:
    """Import a JSONL / Parquet file or a saved HF dataset as a new version of ``name``.

    Each call makes a new version, unless ``run_key`` is given: then a rerun
    with the same key returns the version committed before (flows use a hash
    of the file's content and the config, so a rerun resumes instead of
    making every downstream stage start over).
    """
    if str(path).startswith("s3://"):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="import-") as tmp:
            local = _fetch_s3(str(path), Path(tmp))
            return import_file(store, local, name=name, source=source or Path(str(path)).stem, progress=progress,
                               run_key=run_key, flow_run_id=flow_run_id, allow_empty=allow_empty)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    default_source = source or path.stem
    writer = store.writer(
        name,
        stage="import",
        config={"file": str(path), "source": default_source},
        run_key=run_key,
        flow_run_id=flow_run_id,
    )
    if writer.committed is not None:
        s = writer.committed.stats.get("import", {})
        return ImportResult(writer.committed, s.get("input_rows", 0), s.get("accepted", 0), s.get("duplicates", 0),
                            s.get("rejected", 0), s.get("rejected_by_reason", {}))
    seen: set[str] = set()
    rejected: list[dict[str, Any]] = []
    reasons: dict[str, int] = {}
    n_in = n_ok = n_dup = 0
    bar = _progress(progress, f"import {path.name}")
    try:
        for rownum, raw, error in _iter_source(path):
            n_in += 1
            exc = None
            row = None
            if error is None:
                try:
                    row = normalize_row(raw, default_source=default_source, index=rownum)
                except RecordError as e:
                    exc = e
                if row is not None and row["domain"] not in DOMAINS:
                    error = (f"unknown_domain: domain {row['domain']!r} is not one of {', '.join(DOMAINS)}; "
                             "set the row's domain to one of them")
                    row = None
            if row is None:
                reason = _reason_slug(error, exc)
                reasons[reason] = reasons.get(reason, 0) + 1
                rejected.append(
                    {
                        "file": str(path),
                        "row": rownum,
                        "reason": reason,
                        "detail": error or str(exc),
                        "raw": raw if isinstance(raw, str) else json.dumps(raw, default=str, ensure_ascii=False),
                    }
                )
            else:
                key = normalize_prompt(row["prompt"])
                if key in seen:
                    n_dup += 1
                else:
                    seen.add(key)
                    writer.write([row])
                    n_ok += 1
            if bar is not None and n_in % 1000 == 0:
                bar.update(n_in)
        if n_ok == 0 and not allow_empty:
            raise ValueError(
                f"{path}: nothing to import ({n_in} input rows, {len(rejected)} quarantined: "
                f"{', '.join(f'{k} {v}' for k, v in sorted(reasons.items())) or 'none'}); "
                "fix the input, or pass --allow-empty to commit an empty version"
            )
        writer.write_rejected(rejected)
        stats = {
            "import": {
                "input_rows": n_in,
                "accepted": n_ok,
                "duplicates": n_dup,
                "rejected": len(rejected),
                "rejected_by_reason": reasons,
            }
        }
        manifest = writer.commit(stats=stats)
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close(n_in)
    return ImportResult(manifest, n_in, n_ok, n_dup, len(rejected), reasons)


def export_version(store: Store, ref: str, to: str | os.PathLike) -> tuple[Manifest, int]:
    """Write a version's rows to a JSONL or Parquet file (streaming, atomic)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datagen.records import decode_verdicts

    manifest = store.resolve(ref)
    if str(to).startswith("s3://"):
        import tempfile

        from datagen.store.objects import S3Objects

        bucket_uri, _, key = _split_s3(str(to))
        with tempfile.TemporaryDirectory(prefix="export-") as tmp:
            local = Path(tmp) / Path(key).name
            manifest, n = export_version(store, ref, local)
            S3Objects(bucket_uri).put_file(key, local)
        return manifest, n
    to = Path(to)
    fmt = file_format(to)
    to.parent.mkdir(parents=True, exist_ok=True)
    tmp = to.with_name(f".{to.name}.tmp-{os.getpid()}")
    from datagen import runtime

    runtime.track(tmp)  # a killed export's partial file goes at the next start's sweep
    n = 0
    try:
        if fmt == "parquet":
            writer = None
            schema = None
            for batch in store.iter_batches(manifest):
                table = pa.Table.from_batches([batch])
                if writer is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(tmp, schema, compression="zstd")
                else:
                    table = table.cast(schema) if table.schema != schema else table
                writer.write_table(table)
                n += table.num_rows
            if writer is None:
                pq.write_table(pa.table({}), tmp)
            else:
                writer.close()
        else:
            with open(tmp, "w", encoding="utf-8") as fh:
                for row in store.iter_rows(manifest):
                    if "verdicts" in row:
                        row["verdicts"] = decode_verdicts(row["verdicts"]) or None
                    fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
                    n += 1
        os.replace(tmp, to)
    finally:
        if tmp.exists():
            tmp.unlink()
    return manifest, n


def _split_s3(uri: str) -> tuple[str, str, str]:
    """``s3://bucket/a/b.jsonl`` -> (``s3://bucket``, ``/``, ``a/b.jsonl``); refuses a bare bucket."""
    from datagen.store.objects import StoreError

    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise StoreError(f"{uri!r}: give a file path, s3://bucket/path/file.jsonl (or .parquet)")
    file_format(key)
    return f"s3://{bucket}", "/", key


def _fetch_s3(uri: str, folder: Path) -> Path:
    """Download an ``s3://`` file into ``folder``."""
    from datagen.store.objects import NotFound, S3Objects, StoreError

    bucket_uri, _, key = _split_s3(uri)
    local = folder / Path(key).name
    try:
        S3Objects(bucket_uri).download(key, local)
    except NotFound:
        raise StoreError(f"{uri}: no such object; check the bucket and path") from None
    return local


class _Bar:
    def __init__(self, desc: str):
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._p = Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"),
                           TimeElapsedColumn(), transient=True)
        self._p.start()
        self._t = self._p.add_task(desc, total=None)

    def update(self, n: int) -> None:
        self._p.update(self._t, completed=n)

    def close(self, n: int) -> None:
        self._p.update(self._t, completed=n)
        self._p.stop()


def _progress(enabled: bool, desc: str) -> _Bar | None:
    return _Bar(desc) if enabled else None
