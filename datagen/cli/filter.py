"""``datagen filter INPUT --output OUT [--filter NAME ...] [--config FILE.yaml] [--kept-only]``.

Runs the filter chain (``filters.runner.run_filters``) over a JSONL or
Parquet file of records. Every input row comes out with ``drop`` (null when
kept, else ``<filter>:<reason>``) and ``drop_detail``, unless ``--kept-only``
writes only the kept rows. Prints a summary table of drops by filter and
reason; ``--stats FILE.json`` also writes the stats.

It streams: memory holds one batch of rows plus, for the dataset-wide
filters (decontam, dedup), one key and prompt per distinct problem — never
the file. Rows that cannot be read (bytes that are not UTF-8, malformed JSON,
a wrong type, a line over ``--max-row-bytes``) are quarantined with file,
line and reason in ``OUT.rejected.jsonl``; every good row still comes through.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "filter",
        help="run the filters over a JSONL/Parquet file of records",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", help="records file (.jsonl or .parquet)")
    parser.add_argument("--output", "-o", required=True, help="output file (.jsonl or .parquet)")
    # Names are checked by the runner, so --help does not import the filters (pyarrow, pydantic).
    parser.add_argument("--filter", dest="filters", action="append", metavar="NAME",
                        help="run only this filter (repeatable; default: all enabled): decontam, dedup, "
                        "length, answer, code_block, paragraph, repetition, language")
    parser.add_argument("--config", help="filters config YAML (filters.config.FiltersConfig)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a filter setting, dotted keys (e.g. --set length.max_reasoning_tokens=8000)")
    parser.add_argument("--kept-only", action="store_true", help="write only the kept rows")
    parser.add_argument("--stats", help="also write the stats as JSON to this path")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--max-row-bytes", type=int, default=None, metavar="N",
                        help="quarantine JSONL lines longer than N bytes (default 16 MiB)")
    parser.add_argument("--allow-empty", action="store_true",
                        help="write an empty output instead of failing when no row is usable")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from datagen.cli.main import CLIError
    from datagen.files import FileFormatError, file_format
    from filters.config import FiltersConfig

    try:
        file_format(args.output)
        file_format(args.input)
    except FileFormatError as exc:
        raise CLIError(str(exc)) from None
    try:
        config = FiltersConfig.from_yaml(args.config, args.sets)
    except ValueError as exc:  # datagen.config.ConfigError: names the key and its source
        raise CLIError(str(exc)) from None
    import pyarrow as pa

    try:
        stats = filter_file(args.input, args.output, config, names=args.filters, kept_only=args.kept_only,
                            progress=not args.no_progress, max_row_bytes=args.max_row_bytes,
                            allow_empty=args.allow_empty)
    except FileNotFoundError:
        raise CLIError(f"{args.input}: no such file") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise CLIError(f"{args.output}: the rows do not fit the record schema: {exc}") from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.stats:
        with open(args.stats, "w", encoding="utf-8") as fh:
            json.dump(stats, fh, indent=2)

    console = Console()
    table = Table(title=f"{args.input}: {stats['kept']} of {stats['total']} rows kept")
    table.add_column("filter")
    table.add_column("reason")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    for key, count in stats["dropped"].items():
        name, reason = key.split("/", 1)
        table.add_row(name, reason, str(count), f"{count / max(stats['total'], 1):.1%}")
    table.add_row("(kept)", "", str(stats["kept"]), f"{stats['kept'] / max(stats['total'], 1):.1%}")
    for reason, count in stats["quarantined_by_reason"].items():
        table.add_row("(quarantined)", reason, str(count), "")
    console.print(table)
    for name, why in stats["skipped"].items():
        console.print(f"skipped {name}: {why}")
    if "length_counter" in stats:
        console.print(f"length counted with: {stats['length_counter']}")
    if stats["quarantined"]:
        console.print(f"quarantined {stats['quarantined']} bad rows (file, line, reason) in {stats['quarantine_file']}")
    console.print(f"wrote {stats['written']} rows to {args.output}")
    return 0


#: Rows read, filtered and written at a time: memory holds one batch, never the file.
STREAM_BATCH = 1024


def filter_file(
    src: str,
    dst: str,
    config,
    *,
    names: list[str] | None = None,
    kept_only: bool = False,
    progress: bool = False,
    max_row_bytes: int | None = None,
    allow_empty: bool = False,
) -> dict:
    """Run the filter chain over a record file, streaming, and write ``dst``.

    Two passes over ``src``: the dataset-wide filters (decontam, dedup) judge
    one row per problem, holding only (key, prompt) per problem; then rows flow
    through in batches of ``STREAM_BATCH``: the problem decisions are applied
    and the per-row filters run. Output order is input order. Bad rows
    (undecodable, malformed, wrong types, too large) go to ``<dst>.rejected.jsonl``
    and are counted; an input without a usable row raises ``ValueError`` unless
    ``allow_empty``. Returns the stats of ``filters.runner.run_filters`` plus
    ``quarantined``, ``quarantined_by_reason``, ``quarantine_file``, ``written``.
    """
    import time
    from collections import Counter

    from datagen.records import normalize_prompt
    from datagen.rowfile import DEFAULT_MAX_ROW_BYTES, Quarantine, RecordSink, count_lines, iter_rows
    from filters.base import DatasetFilter
    from filters.runner import BATCH, build_filters, prepare

    filters, skipped = build_filters(config, names)
    wide = [f for f in filters if isinstance(f, DatasetFilter)]
    per_row = [f for f in filters if not isinstance(f, DatasetFilter)]
    limit = max_row_bytes or DEFAULT_MAX_ROW_BYTES
    default_language = config.language.default_language

    def key_of(row: dict) -> str:
        pid = row.get("problem_id")
        return pid if isinstance(pid, str) and pid else normalize_prompt(row.get("prompt") or "")

    seconds: Counter[str] = Counter()
    cpu: Counter[str] = Counter()
    # Pass 1: problem-level decisions {key: (filter, reason, detail)} for dropped problems only.
    problem_drops: dict[str, tuple[str, str, str | None]] = {}
    if wide:
        problems: dict[str, dict] = {}
        for _, row, _ in iter_rows(src, max_row_bytes=limit):
            if row is not None:
                k = key_of(row)
                if k not in problems:
                    problems[k] = {"problem_id": k, "prompt": row.get("prompt") or "",
                                   "source": row.get("source"), "domain": row.get("domain"),
                                   "language": row.get("language")}
        alive = list(problems.values())
        del problems
        for flt in wide:
            t0, c0 = time.perf_counter(), time.process_time()
            decisions = flt.check_all(alive)
            seconds[flt.name] += time.perf_counter() - t0
            cpu[flt.name] += time.process_time() - c0
            kept = []
            for p, d in zip(alive, decisions, strict=True):
                if d.keep:
                    kept.append(p)
                else:
                    problem_drops[p["problem_id"]] = (flt.name, d.reason, d.detail or None)
            alive = kept
        del alive

    # Pass 2: stream.
    quarantine = Quarantine(dst)
    sink = RecordSink(dst)
    dropped: Counter[str] = Counter()
    total = kept_n = 0
    bar = _Bar(count_lines(src)) if progress else None
    batch: list[dict] = []

    def flush() -> None:
        nonlocal total, kept_n
        rows = [prepare(r, default_language) for r in batch]
        batch.clear()
        for row in rows:
            row["drop"] = None
            row["drop_detail"] = None
            hit = problem_drops.get(key_of(row)) if problem_drops else None
            if hit is not None:
                row["drop"], row["drop_detail"] = f"{hit[0]}:{hit[1]}", hit[2]
                dropped[f"{hit[0]}/{hit[1]}"] += 1
        for flt in per_row:
            alive = [r for r in rows if r["drop"] is None]
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(0, len(alive), BATCH):
                chunk = alive[i:i + BATCH]
                for row, d in zip(chunk, flt.check_batch(chunk), strict=True):
                    if not d.keep:
                        row["drop"], row["drop_detail"] = f"{flt.name}:{d.reason}", d.detail or None
                        dropped[f"{flt.name}/{d.reason}"] += 1
            seconds[flt.name] += time.perf_counter() - t0
            cpu[flt.name] += time.process_time() - c0
        total += len(rows)
        kept_rows = [r for r in rows if r["drop"] is None]
        kept_n += len(kept_rows)
        sink.write(kept_rows if kept_only else rows)
        if bar is not None:
            bar.advance(len(rows))

    try:
        for _, row, rej in iter_rows(src, max_row_bytes=limit):
            if rej is not None:
                quarantine.add(rej)
                if bar is not None:
                    bar.advance(1)
                continue
            batch.append(row)
            if len(batch) >= STREAM_BATCH:
                flush()
        if batch:
            flush()
        if total == 0 and not allow_empty:
            raise ValueError(
                f"{src}: no usable rows ({quarantine.count} quarantined); fix the input, "
                "or pass --allow-empty to write an empty output"
            )
        written = sink.close()
        quarantine.close()
    except BaseException:
        sink.abort()
        quarantine.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    length = next((f for f in filters if f.name == "length"), None)
    stats = {
        "total": total,
        "kept": kept_n,
        "dropped": dict(sorted(dropped.items())),
        "filters": [f.name for f in filters],
        "seconds": {f.name: seconds[f.name] for f in filters},
        "cpu_seconds": {f.name: cpu[f.name] for f in filters},
        "skipped": skipped,
        "quarantined": quarantine.count,
        "quarantined_by_reason": dict(sorted(quarantine.by_reason.items())),
        "quarantine_file": str(quarantine.path) if quarantine.count else None,
        "written": written,
    }
    if length is not None:
        stats["length_counter"] = length.counter
    return stats


class _Bar:
    def __init__(self, total: int | None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(TextColumn("filter"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        self._p.start()
        self._t = self._p.add_task("", total=total)

    def advance(self, n: int) -> None:
        self._p.update(self._t, advance=n)

    def close(self) -> None:
        self._p.stop()
