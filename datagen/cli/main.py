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
    parser.add_argument("--debug", action="store_true", help="show tracebacks (errors are one line without it)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(f"datagen.cli.{name}").register(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    """The message on one line: its lines joined with '; ', whitespace collapsed."""
    text = str(exc).strip() or type(exc).__name__
    if "\n" not in text:
        return text
    return "; ".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Parse, run the subcommand, and map every failure to one line and an exit code:
    2 for an error the user can fix (``CLIError``, a store error), 1 for anything else
    (its traceback only with ``--debug``), 130/143 after SIGINT/SIGTERM, 141 when the
    reader of our output went away (``datagen datasets ls --json | head``)."""
    from datagen import runtime

    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose or debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    runtime.start()
    runtime.quiet_tracebacks(debug)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
    except KeyboardInterrupt:
        print("interrupted" if runtime.exit_code(130) == 130 else "terminated", file=sys.stderr)
        code = runtime.exit_code(130)
    except BrokenPipeError:
        code = _broken_pipe()
    except CLIError as exc:
        print(f"datagen {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        code = 2
    except Exception as exc:  # the last line of defence: one line, no traceback
        from datagen.store import StoreError

        if debug:
            raise
        if isinstance(exc, StoreError):
            print(f"datagen {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            code = 2
        else:
            print(f"datagen {args.command}: error: {type(exc).__name__}: {_one_line(exc)} "
                  "(run with --debug for the traceback)", file=sys.stderr)
            code = 1
    if argv is None and runtime.exit_code(0):
        # Stopped by a signal: leave now. Interpreter shutdown would join the
        # worker threads still generating (the ~24 s Ctrl-C took before).
        runtime.finish(code)
    # A normal end shuts down normally, so atexit hooks (Prefect's log and event
    # flush to a real server) still run.
    runtime.cleanup()
    return code


def _broken_pipe() -> int:
    # The reader (e.g. `head`) closed the pipe: stop quietly. Point stdout at
    # /dev/null so the interpreter's final flush does not raise again.
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


if __name__ == "__main__":
    sys.exit(main())
