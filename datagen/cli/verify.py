"""``datagen verify INPUT --verifier NAME --output OUT [--workers N]``.

(Re)verify a JSONL or Parquet file of records (format by extension, in and
out). Every row comes out with all its fields plus ``verdicts.<verifier>``;
a progress bar runs meanwhile and a table of outcomes is printed at the end.
Rows lacking what the verifier needs get an ``error`` verdict and the run goes on.
"""

from __future__ import annotations

import argparse
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
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from datagen.files import FileFormatError, file_format, read_records, write_records
    from datagen.records import OUTCOMES
    from datagen.verify.runner import VERIFIERS, verify_rows

    if args.verifier not in VERIFIERS:
        raise CLIError(f"unknown verifier {args.verifier!r}; choose from {', '.join(VERIFIERS)}")
    if args.workers is not None and args.workers < 1:
        raise CLIError("--workers must be >= 1")
    try:
        file_format(args.output)
        rows = read_records(args.input)
    except (FileFormatError, FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    opts: dict[str, Any] = {}
    if args.verifier in ("code", "format") and args.think_prefilled:
        opts["think_prefilled"] = True
    if args.verifier == "format" and args.require_answer_tags:
        opts["require_answer_tags"] = True
    if args.verifier == "judge":
        opts["judge_backend"] = _judge_backend(args)
        opts["think_prefilled"] = args.think_prefilled
        opts["judge_max_tokens"] = args.judge_max_tokens
    rows, stats = verify_rows(rows, args.verifier, workers=args.workers, progress=not args.no_progress, **opts)
    write_records(args.output, rows)

    counts = stats["outcomes"][args.verifier]
    total = sum(counts.values())
    table = Table(title=f"{args.verifier}: {total} rows → {args.output}")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    for outcome in OUTCOMES:
        if counts.get(outcome):
            table.add_row(outcome, str(counts[outcome]), f"{counts[outcome] / total:.1%}")
    Console().print(table)
    return 0


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
