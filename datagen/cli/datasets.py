"""``datagen datasets ls|show|head|diff|tag|import|export`` — browse and move versions.

Every subcommand takes ``--root`` (default ``$DATAGEN_ROOT``, else
``./datasets``; ``s3://bucket/prefix`` works the same) and prints a readable
table, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from datagen.cli.main import CLIError
from datagen.store.manifest import flatten_stats


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="browse, import and export dataset versions (local or S3)")
    dsub = p.add_subparsers(dest="datasets_command", metavar="SUBCOMMAND")
    dsub.required = True

    def add(name: str, help: str, func) -> argparse.ArgumentParser:
        sp = dsub.add_parser(name, help=help)
        sp.add_argument("--root", default=None, help="store root: a folder or s3://bucket/prefix "
                        "(default $DATAGEN_ROOT, else ./datasets)")
        sp.set_defaults(func=lambda args: _guard(func, args))
        return sp

    sp = add("ls", "one row per version", cmd_ls)
    sp.add_argument("dataset", nargs="?", help="only this dataset")
    sp.add_argument("--json", action="store_true", help="print a JSON array")

    sp = add("show", "manifest summary, lineage and stats of a version", cmd_show)
    sp.add_argument("ref", metavar="NAME[@VERSION|@TAG]")
    sp.add_argument("--json", action="store_true", help="print the manifest as JSON")

    sp = add("head", "the first rows of a version", cmd_head)
    sp.add_argument("ref", metavar="NAME[@VERSION|@TAG]")
    sp.add_argument("-n", type=int, default=5, help="rows (default 5)")
    sp.add_argument("--rejected", action="store_true",
                    help="show the version's quarantined rows (file, row, reason, detail) instead of its data")
    sp.add_argument("--columns", nargs="+", help="only these columns")
    sp.add_argument("--json", action="store_true", help="print JSON lines")

    sp = add("diff", "rows, schema and stats deltas between two versions", cmd_diff)
    sp.add_argument("a", metavar="A")
    sp.add_argument("b", metavar="B")
    sp.add_argument("--json", action="store_true")

    sp = add("tag", "point a tag at a version", cmd_tag)
    sp.add_argument("ref", metavar="NAME@VERSION")
    sp.add_argument("tag", metavar="TAG")

    sp = add("import", "import JSONL, Parquet or a saved HF dataset as a new problems version", cmd_import)
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("--name", required=True, help="dataset name")
    sp.add_argument("--source", help="source name for rows without one (default: the file name)")
    sp.add_argument("--allow-empty", action="store_true",
                    help="commit an empty version instead of failing when no row is usable")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")

    sp = add("export", "write a version to a JSONL or Parquet file", cmd_export)
    sp.add_argument("ref", metavar="NAME[@VERSION]")
    sp.add_argument("--to", required=True, metavar="FILE.jsonl|FILE.parquet",
                    help="a local file or s3://bucket/path/file.jsonl")

    _register_serve_gc_rm(add)


def _guard(func, args) -> int:
    from datagen.files import FileFormatError
    from datagen.store import StoreError, StoreNameError

    try:
        return func(args)
    except (StoreError, StoreNameError, FileFormatError, FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None


def _store(args):
    from datagen.store import open_store

    return open_store(args.root)


def _console():
    """A console whose tables fit the terminal (see ``_fit``), and plain
    tab-separated text with every value whole when the output is piped."""
    from rich.console import Console
    from rich.table import Table

    class FitConsole(Console):
        def print(self, *objects, **kwargs):
            if len(objects) == 1 and isinstance(objects[0], Table) and hasattr(objects[0], "plain_rows"):
                return _print_fitted(self, objects[0])
            if not self.is_terminal:
                kwargs.setdefault("soft_wrap", True)  # a pipe gets whole lines
            return super().print(*objects, **kwargs)

    return FitConsole(highlight=False)


def _table(title: str | None, columns: list[str]):
    """A table to print with ``_console().print``: cells are plain text (never
    rich markup), kept whole for piped output and fitted to a terminal."""
    from rich.table import Table
    from rich.text import Text

    class FitTable(Table):
        def add_row(self, *cells, **kwargs):
            plain = ["" if c is None else str(c) for c in cells]
            self.plain_rows.append(plain)
            return super().add_row(*[Text(c) for c in plain], **kwargs)

    t = FitTable(title=title, show_lines=False)
    t.plain_rows = []
    for c in columns:
        t.add_column(c)
    return t


# ----------------------------------------------------------------------------- fitting tables

_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?%?(?: \(.*\))?$|^$")
#: Columns kept whole when there is room (in this order): what a user copies into the next command.
_PREFER_WHOLE = ("version", "ref", "dataset", "statistic", "field")
#: Columns left out first when a table does not fit (what they say is said elsewhere).
_OPTIONAL = ("created",)
#: Narrowest a text column gets before the table is shown one record at a time.
_MIN_TEXT = 10


def _fit_widths(headers: list[str], rows: list[list[str]], width: int) -> list[int] | None:
    """Column widths that fit ``width``: numbers keep their whole width (a
    number is never cut), ids to copy too while there is room, other text
    columns share the rest (cut with an ellipsis). None when the text columns
    would be cut below ``_MIN_TEXT``: show the table one record at a time."""
    ncols = len(headers)
    avail = width - (3 * ncols + 1)  # borders and one space of padding each side
    natural = [max([len(headers[i])] + [len(r[i]) for r in rows]) for i in range(ncols)]
    if sum(natural) <= avail:
        return natural
    numeric = [bool(rows) and all(_NUMBER.match(r[i]) for r in rows) for i in range(ncols)]
    fixed = sum(n for n, num in zip(natural, numeric) if num)
    soft = [i for i in range(ncols) if not numeric[i]]

    def floor(cols):
        return sum(min(natural[i], _MIN_TEXT) for i in cols)

    for name in _PREFER_WHOLE:
        if name in headers and headers.index(name) in soft:
            i = headers.index(name)
            rest = [j for j in soft if j != i]
            if avail - fixed - natural[i] >= floor(rest):
                fixed += natural[i]
                soft = rest
    left = avail - fixed
    if left < floor(soft):
        return None
    widths = list(natural)
    # Water-filling: narrow columns keep their width, wide ones share what is left.
    pending = sorted(soft, key=lambda i: natural[i])
    while pending:
        share = left // len(pending)
        i = pending.pop(0)
        widths[i] = min(natural[i], max(min(natural[i], _MIN_TEXT), share))
        left -= widths[i]
    return widths


def _print_fitted(console, table) -> None:
    from rich.table import Table
    from rich.text import Text

    headers = [str(c.header) for c in table.columns]
    rows = table.plain_rows
    if not console.is_terminal:
        out = console.file
        if table.title:
            out.write(f"# {table.title}\n")
        out.write("\t".join(headers) + "\n")
        for r in rows:
            out.write("\t".join(v.replace("\t", " ").replace("\n", " ") for v in r) + "\n")
        out.flush()
        return
    base_print = super(type(console), console).print
    widths = _fit_widths(headers, rows, console.width)
    natural = [max([len(headers[i])] + [len(r[i]) for r in rows]) for i in range(len(headers))]
    if widths != natural and any(h in _OPTIONAL for h in headers):
        # Drop what is said elsewhere (a version id carries its creation time) before cutting anything.
        keep = [i for i, h in enumerate(headers) if h not in _OPTIONAL]
        headers = [headers[i] for i in keep]
        rows = [[r[i] for i in keep] for r in rows]
        widths = _fit_widths(headers, rows, console.width)
    if widths is None:
        # Too many columns for this terminal: one small field/value table per record.
        fw = min(max(len(h) for h in headers), console.width // 3)
        for n, r in enumerate(rows, 1):
            t = Table(title=f"{table.title or ''} — record {n} of {len(rows)}", show_header=False)
            t.add_column("field", width=fw, no_wrap=True, overflow="ellipsis")
            t.add_column("value", width=max(_MIN_TEXT, console.width - fw - 7), no_wrap=True, overflow="ellipsis")
            for h, v in zip(headers, r):
                t.add_row(Text(h), Text(v))
            base_print(t)
        return
    t = Table(title=table.title)
    for i, (h, w) in enumerate(zip(headers, widths)):
        numeric = bool(rows) and all(_NUMBER.match(r[i]) for r in rows)
        t.add_column(h, width=w, no_wrap=True, overflow="ellipsis", justify="right" if numeric else "left")
    for r in rows:
        t.add_row(*[Text(v) for v in r])
    base_print(t)


# ----------------------------------------------------------------------------- ls / show


def cmd_ls(args) -> int:
    store = _store(args)
    names = [args.dataset] if args.dataset else store.datasets()
    rows: list[dict[str, Any]] = []
    for name in names:
        tags_by_version: dict[str, list[str]] = {}
        for tag, version in store.tags(name).items():
            tags_by_version.setdefault(version, []).append(tag)
        for m in store.versions(name):
            rows.append(
                {
                    "dataset": m.dataset,
                    "version": m.id,
                    "rows": m.rows,
                    "created": m.created,
                    "stage": m.stage,
                    "tags": sorted(tags_by_version.get(m.id, [])),
                    "parents": [str(p) for p in m.parents],
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no dataset versions in {store.root}")
        return 0
    t = _table(f"datasets in {store.root}", ["dataset", "version", "rows", "created", "stage", "tags"])
    for r in rows:
        t.add_row(r["dataset"], r["version"], f"{r['rows']:,}", r["created"].replace("+00:00", "Z"), r["stage"],
                  ",".join(r["tags"]))
    _console().print(t)
    return 0


def cmd_show(args) -> int:
    store = _store(args)
    m = store.resolve(args.ref)
    if args.json:
        print(m.to_json().decode())
        return 0
    console = _console()
    t = _table(f"{m.dataset}@{m.id}", ["field", "value"])
    t.add_row("stage", m.stage)
    t.add_row("rows", f"{m.rows:,}")
    t.add_row("shards", f"{len(m.shards)} ({sum(s.bytes for s in m.shards):,} bytes)")
    t.add_row("created", m.created)
    t.add_row("code revision", m.code_revision)
    t.add_row("flow run", m.flow_run_id or "-")
    t.add_row("parents", ", ".join(str(p) for p in m.parents) or "-")
    if m.rejected:
        t.add_row("rejected rows", f"{sum(s.rows for s in m.rejected):,} (datagen datasets head {m.ref} --rejected)")
        for reason, n in sorted(_rejected_reasons(m).items()):
            t.add_row(f"  rejected/{reason}", f"{n:,}")
    t.add_row("config", json.dumps(m.config, default=str))
    console.print(t)
    chain = store.lineage(m)
    console.print("lineage: " + "  <-  ".join(f"{c.dataset}@{c.id} ({c.stage})" for c in chain))
    flat = flatten_stats(m.stats)
    if flat:
        st = _table("stats", ["statistic", "value"])
        for k, v in flat.items():
            st.add_row(k, _value(v))
        console.print(st)
    return 0


# ----------------------------------------------------------------------------- head / diff / tag


def _rejected_reasons(m) -> dict[str, int]:
    """Quarantined rows by reason, from the stage statistics (import records them)."""
    for stage_stats in m.stats.values():
        if isinstance(stage_stats, dict) and isinstance(stage_stats.get("rejected_by_reason"), dict):
            return stage_stats["rejected_by_reason"]
    return {}


def cmd_head(args) -> int:
    store = _store(args)
    m = store.resolve(args.ref)
    if args.rejected:
        return _head_rejected(store, m, args)
    lf = store.scan(m)
    if args.columns:
        missing = [c for c in args.columns if c not in lf.collect_schema().names()]
        if missing:
            raise CLIError(f"no column(s) {', '.join(missing)} in {m.ref}; it has {', '.join(lf.collect_schema().names())}")
        lf = lf.select(args.columns)
    df = lf.head(args.n).collect()
    if args.json:
        for row in df.to_dicts():
            print(json.dumps(row, ensure_ascii=False, default=str))
        return 0
    t = _table(f"{m.ref} (first {min(args.n, m.rows)} of {m.rows:,})", list(df.columns))
    for row in df.iter_rows():
        t.add_row(*[_short(v) for v in row])
    _console().print(t)
    return 0


def _head_rejected(store, m, args) -> int:
    import polars as pl

    total = sum(s.rows for s in m.rejected)
    if not m.rejected:
        print(f"{m.ref} has no quarantined rows")
        return 0
    uris = [store.objects.uri(s.path) for s in m.rejected]
    opts = store.objects.storage_options()
    lf = pl.scan_parquet(uris, storage_options=opts) if opts else pl.scan_parquet(uris)
    if args.columns:
        lf = lf.select([c for c in args.columns if c in lf.collect_schema().names()])
    df = lf.head(args.n).collect()
    if args.json:
        for row in df.to_dicts():
            print(json.dumps(row, ensure_ascii=False, default=str))
        return 0
    t = _table(f"{m.ref} quarantined rows (first {min(args.n, total)} of {total:,})", list(df.columns))
    for row in df.iter_rows():
        t.add_row(*[_short(v) for v in row])
    _console().print(t)
    return 0


def _value(v: Any) -> str:
    """A statistic for people: ints with separators, floats to 4 significant digits."""
    from datagen.store.card import format_value

    return format_value(v)


def _delta(d: float) -> str:
    return f"{d:+,}" if isinstance(d, int) else f"{d:+.4g}"


def _short(v: Any, n: int = 80) -> str:
    s = "" if v is None else str(v)
    s = s.replace("\n", "⏎")
    return s if len(s) <= n else s[: n - 1] + "…"


def cmd_diff(args) -> int:
    store = _store(args)
    a, b = store.resolve(args.a), store.resolve(args.b)
    sa = {f["name"]: f["type"] for f in a.schema_}
    sb = {f["name"]: f["type"] for f in b.schema_}
    fa, fb = flatten_stats(a.stats), flatten_stats(b.stats)
    stats = {}
    for k in sorted(set(fa) | set(fb)):
        va, vb = fa.get(k), fb.get(k)
        if va != vb:
            delta = vb - va if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
            stats[k] = {"a": va, "b": vb, "delta": delta}
    out = {
        "a": a.ref,
        "b": b.ref,
        "rows": {"a": a.rows, "b": b.rows, "delta": b.rows - a.rows},
        "schema": {
            "added": {k: sb[k] for k in sb if k not in sa},
            "removed": {k: sa[k] for k in sa if k not in sb},
            "changed": {k: {"a": sa[k], "b": sb[k]} for k in sa if k in sb and sa[k] != sb[k]},
        },
        "stats": stats,
        "config": {
            k: {"a": a.config.get(k), "b": b.config.get(k)}
            for k in sorted(set(a.config) | set(b.config))
            if a.config.get(k) != b.config.get(k)
        },
    }
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    console = _console()
    console.print(f"[bold]{a.ref}[/] -> [bold]{b.ref}[/]")
    console.print(f"rows: {a.rows:,} -> {b.rows:,} ({b.rows - a.rows:+,})")
    sch = out["schema"]
    if any(sch.values()):
        t = _table("schema", ["column", "change", "type"])
        for k, v in sch["added"].items():
            t.add_row(k, "added", v)
        for k, v in sch["removed"].items():
            t.add_row(k, "removed", v)
        for k, v in sch["changed"].items():
            t.add_row(k, "changed", f"{v['a']} -> {v['b']}")
        console.print(t)
    else:
        console.print("schema: unchanged")
    if stats:
        t = _table("stats", ["statistic", "A", "B", "delta"])
        for k, v in stats.items():
            t.add_row(k, _value(v["a"]), _value(v["b"]), "" if v["delta"] is None else _delta(v["delta"]))
        console.print(t)
    if out["config"]:
        t = _table("config", ["key", "A", "B"])
        for k, v in out["config"].items():
            t.add_row(k, json.dumps(v["a"], default=str), json.dumps(v["b"], default=str))
        console.print(t)
    return 0


def cmd_tag(args) -> int:
    store = _store(args)
    if "@" not in args.ref:
        raise CLIError(f"{args.ref!r}: give the version to tag as NAME@VERSION (or NAME@TAG)")
    m = store.tag(args.ref, args.tag)
    print(f"{m.dataset}@{args.tag} -> {m.id}")
    return 0


# ----------------------------------------------------------------------------- import / export


def cmd_import(args) -> int:
    from datagen.ingest import import_file

    store = _store(args)
    result = import_file(store, args.file, name=args.name, source=args.source, progress=sys.stderr.isatty(),
                         allow_empty=args.allow_empty)
    summary = {
        "dataset": result.manifest.dataset,
        "version": result.manifest.id,
        "input_rows": result.input_rows,
        "rows": result.accepted,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
        "rejected_by_reason": result.rejected_by_reason,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    t = _table(f"imported {args.file} -> {result.manifest.ref}", ["", "rows"])
    t.add_row("input rows", f"{result.input_rows:,}")
    t.add_row("accepted (version rows)", f"{result.accepted:,}")
    t.add_row("exact duplicates removed", f"{result.duplicates:,}")
    t.add_row("rejected (quarantined)", f"{result.rejected:,}")
    for reason, n in sorted(result.rejected_by_reason.items()):
        t.add_row(f"  rejected/{reason}", f"{n:,}")
    _console().print(t)
    return 0


def cmd_export(args) -> int:
    from datagen.ingest import export_version

    store = _store(args)
    m, n = export_version(store, args.ref, args.to)
    print(f"exported {n:,} rows of {m.ref} to {args.to}")
    return 0


# ----------------------------------------------------------------------------- serve / gc / rm


def _register_serve_gc_rm(add) -> None:
    sp = add("serve", "a read-only web viewer (pages + JSON API) over the root", cmd_serve)
    sp.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")

    sp = add("gc", "remove orphaned shards, markers and abandoned run folders", cmd_gc)
    sp.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    sp.add_argument("--grace", default="24h", metavar="DURATION",
                    help="only remove objects older than this (e.g. 30m, 24h, 7d; default 24h)")
    sp.add_argument("--json", action="store_true", help="print the report as JSON")

    sp = add("rm", "delete one committed version (its manifest, objects and tags)", cmd_rm)
    sp.add_argument("ref", metavar="NAME@VERSION")
    sp.add_argument("--yes", action="store_true", help="really delete (without it: show what would go)")


def cmd_serve(args) -> int:
    import socket

    import uvicorn

    from datagen.viewer.app import create_app

    store = _store(args)
    app = create_app(store.root, store=store)
    # Bind first, so the URL printed is the one that answers (also with --port 0).
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {exc.strerror} (pick another --port)") from None
    host, port = sock.getsockname()[:2]
    print(f"datagen viewer on http://{host}:{port}/ (root {store.root}); Ctrl-C stops it", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
    return 0


def _duration(text: str):
    import datetime as dt
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text.strip())
    if not match:
        raise CLIError(f"--grace {text!r}: write a number and a unit, e.g. 30m, 24h or 7d")
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return dt.timedelta(seconds=seconds)


def cmd_gc(args) -> int:
    from datagen.store.gc import collect_garbage

    store = _store(args)
    report = collect_garbage(store, grace=_duration(args.grace), dry_run=args.dry_run)
    if args.json:
        print(json.dumps({"dry_run": report.dry_run, "removed": report.removed, "bytes": report.bytes,
                          "kept_young": report.kept_young}, indent=2))
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for key in report.removed:
        print(f"{verb} {key}")
    print(f"{verb} {len(report.removed):,} objects ({report.bytes:,} bytes) in {store.root}"
          + (f"; {len(report.kept_young):,} younger than {args.grace} kept" if report.kept_young else ""))
    return 0


def cmd_rm(args) -> int:
    from datagen.store.gc import remove_version

    store = _store(args)
    if "@" not in args.ref:
        raise CLIError(f"{args.ref!r}: name the version to delete as NAME@VERSION")
    m = store.resolve(args.ref)
    if not args.yes:
        print(f"would delete {m.ref} ({m.rows:,} rows, {len(m.shards)} shards, "
              f"{sum(s.bytes for s in m.shards):,} bytes); add --yes to delete it")
        return 2
    report = remove_version(store, args.ref)
    moved = ", ".join(f"{t} -> {v or 'removed'}" for t, v in report.refs_moved.items())
    print(f"deleted {report.ref}: {len(report.removed):,} objects ({report.bytes:,} bytes)"
          + (f"; refs: {moved}" if moved else ""))
    return 0
