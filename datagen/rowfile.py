"""Record files read and written a batch at a time, with per-row faults quarantined.

``iter_rows(path)`` never stops a file for one bad row: each row comes out
either as a dict or as a ``Rejected`` with the file, the line (JSONL) or row
number (Parquet), a stable reason and a detail:

- ``invalid_utf8``: bytes that are not UTF-8 (only that line is lost);
- ``invalid_json``: a malformed line; ``not_an_object``: JSON that is not ``{…}``;
- ``wrong_type``: a record column of the wrong type (an integer ``completion``);
- ``row_too_large``: a line over ``max_row_bytes`` (default 16 MiB), skipped
  without being read into memory whole.

``RecordSink`` writes rows to JSONL or Parquet as they come, atomically (a
temp file beside the output, renamed at the end and tracked by
``datagen.runtime`` so a killed run leaves nothing behind). ``Quarantine``
writes rejected rows beside the output as ``<OUT>.rejected.jsonl``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from datagen.files import file_format
from datagen.records import SCHEMA, decode_verdicts, encode_verdicts, to_arrow

DEFAULT_MAX_ROW_BYTES = 16 * 1024 * 1024
#: Raw text kept with a rejected row (enough to find and fix it, not a copy of a huge row).
RAW_KEEP = 2000

_TYPES: dict[str, tuple[type, ...]] = {}
for _f in SCHEMA:
    if pa.types.is_string(_f.type) and _f.name != "verdicts":
        _TYPES[_f.name] = (str,)
    elif pa.types.is_integer(_f.type):
        _TYPES[_f.name] = (int,)
    elif pa.types.is_boolean(_f.type):
        _TYPES[_f.name] = (bool,)
_TYPES["verdicts"] = (dict, str)


@dataclass
class Rejected:
    """A row that could not be used, and why (one quarantine line)."""

    file: str
    line: int
    reason: str
    detail: str
    raw: str

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


def type_error(row: Mapping[str, Any]) -> str | None:
    """Why ``row`` does not fit the record's column types, or None if it does."""
    for name, types in _TYPES.items():
        value = row.get(name)
        if value is None:
            continue
        if isinstance(value, bool) and bool not in types:
            return f"column {name!r} must be {types[0].__name__}, got bool"
        if not isinstance(value, types):
            return f"column {name!r} must be {types[0].__name__}, got {type(value).__name__}"
    return None


def _raw(data: bytes | str) -> str:
    text = data if isinstance(data, str) else data.decode("utf-8", errors="backslashreplace")
    return text if len(text) <= RAW_KEEP else text[:RAW_KEEP] + f"… ({len(text):,} chars)"


def _iter_jsonl(path: Path, max_row_bytes: int, check_types: bool) -> Iterator[tuple[int, dict | None, Rejected | None]]:
    name = str(path)
    with open(path, "rb") as fh:
        lineno = 0
        while True:
            line = fh.readline(max_row_bytes + 1)
            if not line:
                return
            lineno += 1
            if len(line) > max_row_bytes and not line.endswith(b"\n"):
                size = len(line)
                head = line[:RAW_KEEP]
                while True:  # skip the rest of the line, a block at a time
                    more = fh.readline(1 << 20)
                    size += len(more)
                    if not more or more.endswith(b"\n"):
                        break
                yield lineno, None, Rejected(name, lineno, "row_too_large",
                                             f"line is {size:,} bytes, over the {max_row_bytes:,}-byte limit "
                                             "(raise --max-row-bytes to accept it)", _raw(head))
                continue
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, None, Rejected(name, lineno, "invalid_utf8",
                                             f"byte 0x{line[exc.start]:02x} at column {exc.start + 1} is not UTF-8; "
                                             "re-encode the file as UTF-8", _raw(line))
                continue
            text = text.rstrip("\r\n")
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield lineno, None, Rejected(name, lineno, "invalid_json",
                                             f"{exc.msg} at column {exc.colno}", _raw(text))
                continue
            if not isinstance(obj, dict):
                yield lineno, None, Rejected(name, lineno, "not_an_object",
                                             f"expected a JSON object, got {type(obj).__name__}", _raw(text))
                continue
            why = type_error(obj) if check_types else None
            if why:
                yield lineno, None, Rejected(name, lineno, "wrong_type", why, _raw(text))
                continue
            yield lineno, obj, None


def iter_rows(
    path: str | os.PathLike,
    *,
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
    check_types: bool = True,
    batch_rows: int = 1024,
) -> Iterator[tuple[int, dict | None, Rejected | None]]:
    """``(line or row number, row, None)`` or ``(n, None, Rejected)`` for every row of a
    JSONL or Parquet record file, streaming (memory: one row, or one Parquet batch).
    ``verdicts`` is decoded to a dict. Raises ``FileNotFoundError`` / ``FileFormatError``
    only for the file as a whole."""
    path = Path(path)
    fmt = file_format(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if fmt == "jsonl":
        for n, row, rej in _iter_jsonl(path, max_row_bytes, check_types):
            if row is not None and "verdicts" in row:
                row["verdicts"] = decode_verdicts(row["verdicts"])
            yield n, row, rej
        return
    pf = pq.ParquetFile(path)
    n = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            n += 1
            why = type_error(row) if check_types else None
            if why:
                yield n, None, Rejected(str(path), n, "wrong_type", why, _raw(json.dumps(row, default=str)))
                continue
            if "verdicts" in row:
                row["verdicts"] = decode_verdicts(row["verdicts"])
            yield n, row, None


def count_lines(path: str | os.PathLike) -> int | None:
    """Rows in a file, cheaply (newlines of a JSONL file, Parquet metadata); None if unknown."""
    try:
        if file_format(path) == "parquet":
            return pq.ParquetFile(path).metadata.num_rows
        n = 0
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                n += block.count(b"\n")
        return n
    except (OSError, ValueError, pa.ArrowException):
        return None


def _tmp_beside(path: Path) -> Path:
    from datagen import runtime

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    runtime.track(tmp)
    return tmp


class RecordSink:
    """Rows to a JSONL or Parquet file, a batch at a time; ``close()`` renames it into place.

    Parquet batches whose columns differ are spooled as separate files in the
    run folder and merged under one unified schema at ``close()``, still a
    batch at a time.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.format = file_format(self.path)
        self.rows = 0
        self._tmp = _tmp_beside(self.path)
        self._fh = open(self._tmp, "w", encoding="utf-8") if self.format == "jsonl" else None  # noqa: SIM115 - closed in close()/abort()
        self._parts: list[Path] = []
        self._pq: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, rows: list[Mapping[str, Any]]) -> None:
        if not rows:
            return
        self.rows += len(rows)
        if self._fh is not None:
            for row in rows:
                out = dict(row)
                if "verdicts" in out:
                    out["verdicts"] = decode_verdicts(out["verdicts"]) if out["verdicts"] else None
                self._fh.write(json.dumps(out, ensure_ascii=False, default=str) + "\n")
            return
        table = to_arrow(rows)
        if self._pq is not None and table.schema != self._schema:
            self._pq.close()
            self._pq = None
        if self._pq is None:
            import tempfile

            part = Path(tempfile.mkdtemp(prefix="sink-")) / f"part-{len(self._parts):05d}.parquet"
            self._parts.append(part)
            self._schema = table.schema
            self._pq = pq.ParquetWriter(part, table.schema, compression="zstd")
        self._pq.write_table(table)

    def close(self) -> int:
        """Finish the file and move it into place; returns the rows written."""
        if self._fh is not None:
            self._fh.close()
        else:
            if self._pq is not None:
                self._pq.close()
            if not self._parts:
                pq.write_table(to_arrow([]), self._tmp)
            elif len(self._parts) == 1:
                if _same_fs(self._parts[0], self._tmp):
                    os.replace(self._parts[0], self._tmp)
                else:
                    _copy(self._parts[0], self._tmp)
            else:
                schemas = [pq.ParquetFile(p).schema_arrow for p in self._parts]
                schema = pa.unify_schemas(schemas, promote_options="permissive")
                with pq.ParquetWriter(self._tmp, schema, compression="zstd") as writer:
                    for part in self._parts:
                        for batch in pq.ParquetFile(part).iter_batches():
                            t = pa.Table.from_batches([batch])
                            cols = [t.column(f.name).cast(f.type) if f.name in t.column_names
                                    else pa.nulls(t.num_rows, f.type) for f in schema]
                            writer.write_table(pa.Table.from_arrays(cols, schema=schema))
        os.replace(self._tmp, self.path)
        return self.rows

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
        if self._pq is not None:
            self._pq.close()
        self._tmp.unlink(missing_ok=True)


def _same_fs(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.parent.stat().st_dev
    except OSError:
        return False


def _copy(src: Path, dst: Path) -> None:
    import shutil

    shutil.copyfile(src, dst)


class Quarantine:
    """Rejected rows beside an output: ``<OUT>.rejected.jsonl`` (only created if any)."""

    def __init__(self, output: str | os.PathLike):
        output = Path(output)
        self.path = output.with_name(output.name + ".rejected.jsonl")
        self.count = 0
        self.by_reason: dict[str, int] = {}
        self._fh = None
        self._tmp: Path | None = None

    def add(self, rej: Rejected) -> None:
        if self._fh is None:
            self._tmp = _tmp_beside(self.path)
            self._fh = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()/abort()
        self._fh.write(json.dumps(rej.to_row(), ensure_ascii=False) + "\n")
        self.count += 1
        self.by_reason[rej.reason] = self.by_reason.get(rej.reason, 0) + 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            os.replace(self._tmp, self.path)
        else:
            self.path.unlink(missing_ok=True)  # a stale quarantine of an earlier run

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._tmp.unlink(missing_ok=True)


__all__ = ["DEFAULT_MAX_ROW_BYTES", "Quarantine", "RecordSink", "Rejected", "count_lines", "encode_verdicts",
           "iter_rows", "type_error"]
