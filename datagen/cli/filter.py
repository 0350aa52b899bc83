"""``datagen filter INPUT --output OUT [--filter NAME ...] [--config FILE.yaml] [--kept-only]``.

Runs the filter chain (``filters.runner.run_filters``) over a JSONL or
Parquet file of records. Every input row comes out with ``drop`` (null when
kept, else ``<filter>:<reason>``) and ``drop_detail``, unless ``--kept-only``
writes only the kept rows. Prints a summary table of drops by filter and
reason; ``--stats FILE.json`` also writes the stats.
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
    parser.add_argument("--kept-only", action="store_true", help="write only the kept rows")
    parser.add_argument("--stats", help="also write the stats as JSON to this path")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from rich.console import Console
    from rich.table import Table

    from datagen.cli.main import CLIError
    from datagen.files import FileFormatError, file_format, read_records, write_records
    from filters.config import FiltersConfig
    from filters.runner import run_filters

    try:
        file_format(args.output)
        rows = read_records(args.input)
    except FileNotFoundError:
        raise CLIError(f"{args.input}: no such file") from None
    except FileFormatError as exc:
        raise CLIError(str(exc)) from None
    try:
        config = FiltersConfig.from_yaml(args.config) if args.config else FiltersConfig()
    except FileNotFoundError:
        raise CLIError(f"{args.config}: no such file") from None
    except (ValidationError, ValueError, TypeError) as exc:
        raise CLIError(f"{args.config}: {exc}") from None
    try:
        out, stats = run_filters(rows, config, names=args.filters, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    import pyarrow as pa

    try:
        written = write_records(args.output, [r for r in out if r["drop"] is None] if args.kept_only else out)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise CLIError(f"{args.output}: the rows do not fit the record schema: {exc}") from None
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
    console.print(table)
    for name, why in stats["skipped"].items():
        console.print(f"skipped {name}: {why}")
    if "length_counter" in stats:
        console.print(f"length counted with: {stats['length_counter']}")
    console.print(f"wrote {written} rows to {args.output}")
    return 0
