"""Record files on disk: JSONL or Parquet, chosen by extension.

Used by the ``datagen verify`` / ``datagen filter`` commands and by
``datasets import/export``. In JSONL, ``verdicts`` is an object; in Parquet it
is a JSON string (see ``datagen.records``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from datagen.records import decode_verdicts, encode_verdicts, to_arrow

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")


class FileFormatError(ValueError):
    """The file's extension or content is not a supported record file."""


def file_format(path: str | os.PathLike) -> str:
    """'jsonl' or 'parquet' by extension; raise with what is supported otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise FileFormatError(
        f"{path}: unsupported extension {suffix or '(none)'!r}; use .jsonl or .parquet"
    )


def iter_jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[int, Any | None, str | None]]:
    """Yield ``(line_number, object, error)`` per non-blank line; a bad JSON line
    yields ``(n, None, reason)`` instead of raising, so callers can quarantine it."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line), None
            except json.JSONDecodeError as exc:
                yield lineno, None, f"invalid JSON on line {lineno}: {exc.msg} (column {exc.colno})"


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read all rows of a JSONL or Parquet file as dicts (verdicts decoded to dicts).

    Raises ``FileFormatError`` naming the line for invalid JSON.
    """
    fmt = file_format(path)
    if fmt == "parquet":
        rows = pq.read_table(path).to_pylist()
    else:
        rows = []
        for lineno, obj, error in iter_jsonl_lines(path):
            if error:
                raise FileFormatError(f"{path}: {error}")
            if not isinstance(obj, dict):
                raise FileFormatError(f"{path}: line {lineno} is not a JSON object")
            rows.append(obj)
    for row in rows:
        if "verdicts" in row:
            row["verdicts"] = decode_verdicts(row["verdicts"])
    return rows


def write_records(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows to JSONL or Parquet (by extension), atomically (temp + rename).

    Returns the number of rows written.
    """
    fmt = file_format(path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    rows = list(rows)
    if fmt == "parquet":
        table = to_arrow(rows) if rows else pa.table({})
        pq.write_table(table, tmp)
    else:
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in rows:
                out = dict(row)
                if "verdicts" in out:
                    out["verdicts"] = decode_verdicts(out["verdicts"]) if out["verdicts"] else None
                fh.write(json.dumps(out, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)
    return len(rows)


__all__ = [
    "FileFormatError",
    "encode_verdicts",
    "file_format",
    "iter_jsonl_lines",
    "read_records",
    "write_records",
]


def hash_file_into(h, path: str | os.PathLike) -> None:
    """Feed a file's bytes to hasher ``h`` in 1 MiB blocks (no whole-file read)."""
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    hash_file_into(h, path)
    return h.hexdigest()
