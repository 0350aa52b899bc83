"""``datagen`` — the one entry point (shared/DESIGN.md, "Command line").

Subcommands live in modules of this package, each with
``register(subparsers)`` that adds its parser and sets ``func``:

- ``datasets`` (``datagen.cli.datasets``): browse, import, export versions.
- ``verify``   (``datagen.cli.verify``):   (re)verify a record file.
- ``filter``   (``datagen.cli.filter``):   run the filters over a record file.
- ``run``      (``datagen.cli.run``):      an ad-hoc flow run.

Subcommand modules import their heavy dependencies inside ``func`` so that
``datagen --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

SUBCOMMANDS = ("datasets", "verify", "filter", "run", "models")


class CLIError(Exception):
    """An error the user can fix; printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datagen",
        description="A factory for DeepSeek-R1-style reasoning data.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"datagen.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"datagen.cli.{name}":
                raise
            continue  # subcommand not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code = args.func(args)
    except CLIError as exc:
        print(f"datagen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
