"""``datagen verify INPUT --verifier NAME --output OUT [--workers N]``.

(Re)verify a JSONL or Parquet file of records (format by extension, in and
out). Every row comes out with all its fields plus ``verdicts.<verifier>``;
a progress bar runs meanwhile and a table of outcomes is printed at the end.
Rows lacking what the verifier needs get an ``error`` verdict and the run goes on.
It streams (batches of ``STREAM_BATCH`` rows in, verified, written out), and
rows that cannot be read at all (not UTF-8, malformed JSON, a wrong type, a
line over ``--max-row-bytes``) are quarantined with file, line and reason in
``OUT.rejected.jsonl`` while every good row comes through.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from datagen.cli.main import CLIError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="(re)verify a JSONL or Parquet file of records")
    p.add_argument("input", metavar="INPUT", help="records (.jsonl or .parquet)")
    # Checked against runner.VERIFIERS at run time, so `datagen --help` imports nothing heavy.
    p.add_argument("--verifier", required=True, metavar="NAME", help="math, code, format (or judge)")
    p.add_argument("--output", required=True, metavar="OUT", help="output file (.jsonl or .parquet)")
    p.add_argument("--workers", type=int, default=None, help="parallel workers (default: one per CPU)")
    p.add_argument("--think-prefilled", action="store_true",
                   help="the chat template pre-filled <think>: completions start inside the reasoning")
    p.add_argument("--require-answer-tags", action="store_true",
                   help="format: require the R1-Zero <answer>…</answer> form")
    p.add_argument("--judge-backend", choices=("hf", "openai", "vllm"), default="openai",
                   help="judge: generation backend of the judge model (default: openai-compatible server)")
    p.add_argument("--judge-model", metavar="MODEL", help="judge: model name or local path")
    p.add_argument("--judge-base-url", metavar="URL", help="judge: server URL for --judge-backend openai")
    p.add_argument("--judge-max-tokens", type=int, metavar="N", help="judge: token budget per verdict (default 4096)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--max-row-bytes", type=int, default=None, metavar="N",
                   help="quarantine JSONL lines longer than N bytes (default 16 MiB)")
    p.add_argument("--allow-empty", action="store_true",
                   help="write an empty output instead of failing when no row is usable")
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from datagen.files import FileFormatError, file_format
    from datagen.records import OUTCOMES
    from datagen.verify.runner import VERIFIERS

    if args.verifier not in VERIFIERS:
        raise CLIError(f"unknown verifier {args.verifier!r}; choose from {', '.join(VERIFIERS)}")
    if args.workers is not None and args.workers < 1:
        raise CLIError("--workers must be >= 1")
    try:
        file_format(args.output)
        file_format(args.input)
    except (FileFormatError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    if not Path(args.input).exists():
        raise CLIError(f"{args.input}: no such file")
    opts: dict[str, Any] = {}
    if args.verifier in ("code", "format") and args.think_prefilled:
        opts["think_prefilled"] = True
    if args.verifier == "format" and args.require_answer_tags:
        opts["require_answer_tags"] = True
    if args.verifier == "judge":
        opts["judge_backend"] = _judge_backend(args)
        opts["think_prefilled"] = args.think_prefilled
        opts["judge_max_tokens"] = args.judge_max_tokens
    stats, quarantine = verify_file(args.input, args.output, args.verifier, workers=args.workers,
                                    progress=not args.no_progress, max_row_bytes=args.max_row_bytes,
                                    allow_empty=args.allow_empty, **opts)

    counts = stats["outcomes"][args.verifier]
    total = sum(counts.values())
    table = Table(title=f"{args.verifier}: {total} rows → {args.output}")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    for outcome in OUTCOMES:
        if counts.get(outcome):
            table.add_row(outcome, str(counts[outcome]), f"{counts[outcome] / total:.1%}")
    for reason, n in sorted(quarantine.by_reason.items()):
        table.add_row(f"(quarantined) {reason}", str(n), "")
    Console().print(table)
    if quarantine.count:
        Console().print(f"quarantined {quarantine.count} bad rows (file, line, reason) in {quarantine.path}")
    return 0


#: Rows verified and written at a time: memory holds one batch, never the file.
STREAM_BATCH = 512


def verify_file(src: str, dst: str, verifier: str, *, workers: int | None = None, progress: bool = False,
                max_row_bytes: int | None = None, allow_empty: bool = False, **opts: Any):
    """Verify a record file a batch at a time (``datagen.verify.runner.verify_rows`` per batch)
    and stream the rows to ``dst``; bad rows go to ``<dst>.rejected.jsonl``.

    Returns ``(stats, quarantine)``: the outcome counts summed over batches and the
    ``datagen.rowfile.Quarantine`` (count and reasons). An input without a usable
    row raises ``CLIError`` unless ``allow_empty``.
    """
    from datagen.rowfile import DEFAULT_MAX_ROW_BYTES, Quarantine, RecordSink, count_lines, iter_rows
    from datagen.verify.runner import verify_rows

    quarantine = Quarantine(dst)
    sink = RecordSink(dst)
    counts: dict[str, int] = {}
    bar = _Bar(verifier, count_lines(src)) if progress else None
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        rows, st = verify_rows(batch, verifier, workers=workers, progress=False, **opts)
        for outcome, n in st["outcomes"][verifier].items():
            counts[outcome] = counts.get(outcome, 0) + n
        sink.write(rows)
        if bar is not None:
            bar.advance(len(rows))
        batch.clear()

    try:
        for _, row, rej in iter_rows(src, max_row_bytes=max_row_bytes or DEFAULT_MAX_ROW_BYTES):
            if rej is not None:
                quarantine.add(rej)
                continue
            batch.append(row)
            if len(batch) >= STREAM_BATCH:
                flush()
        if batch:
            flush()
        if sink.rows == 0 and not allow_empty:
            raise CLIError(f"{src}: no usable rows ({quarantine.count} quarantined); fix the input, "
                           "or pass --allow-empty to write an empty output")
        sink.close()
        quarantine.close()
    except BaseException:
        sink.abort()
        quarantine.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    return {"outcomes": {verifier: counts}}, quarantine


class _Bar:
    def __init__(self, verifier: str, total: int | None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(TextColumn(f"verify {verifier}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        self._p.start()
        self._t = self._p.add_task("", total=total)

    def advance(self, n: int) -> None:
        self._p.update(self._t, advance=n)

    def close(self) -> None:
        self._p.stop()


def _judge_backend(args: argparse.Namespace):
    from pydantic import ValidationError

    from datagen.generate import make_backend
    from datagen.generate.config import HFBackendConfig, OpenAIBackendConfig, VLLMBackendConfig

    if not args.judge_model:
        raise CLIError("--verifier judge needs --judge-model MODEL")
    kinds = {"hf": HFBackendConfig, "openai": OpenAIBackendConfig, "vllm": VLLMBackendConfig}
    fields: dict[str, Any] = {"model": args.judge_model}
    if args.judge_base_url:
        if args.judge_backend != "openai":
            raise CLIError("--judge-base-url only applies to --judge-backend openai")
        fields["base_url"] = args.judge_base_url
    try:
        return make_backend(kinds[args.judge_backend](**fields))
    except (ValidationError, OSError, ImportError) as exc:
        raise CLIError(f"cannot start the {args.judge_backend} judge backend: {exc}") from None
