"""``datagen run FLOW [--config FILE.yaml] [--set key=value …]`` — an ad-hoc flow run.

The config is validated before anything runs (unknown keys and bad values
fail with a message that says what to change). Without ``PREFECT_API_URL``
Prefect starts a temporary local server for the run; with it, the run is
recorded on that server. A progress bar follows the shards; the run ends
with a summary of the versions written and their statistics.
"""

from __future__ import annotations

import argparse
import json

from datagen.cli.main import CLIError
from flows.catalog import FLOWS  # the one table of flows (also what flows.deploy registers)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a flow ad hoc (validated config, progress bar, summary)")
    p.add_argument("flow", choices=sorted(FLOWS), metavar="FLOW", help=", ".join(sorted(FLOWS)))
    p.add_argument("--config", help="YAML file with the flow's parameters")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter, dotted keys: e.g. 'run verify --set workers=2', "
                        "'run pipeline --set generate.generation.n=4'; repeatable")
    p.add_argument("--root", help="store root (same as --set root=…)")
    p.add_argument("--help-config", action="store_true",
                   help="list every parameter of FLOW (type, default, meaning) and exit")
    p.add_argument("--print-config", action="store_true", help="print the validated config and exit")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--allow-empty", action="store_true",
                   help="succeed even when a stage writes an empty version (default: fail, exit 2)")
    p.set_defaults(func=cmd_run)


def params_model(flow: str):
    """The parameter model (pydantic class) of ``flow``."""
    return FLOWS[flow].params_model()


def load_params(flow: str, config: str | None, sets: list[str]):
    """The validated parameter model of ``flow`` (raises ``ConfigError``)."""
    from datagen.config import load

    return load(params_model(flow), config, sets, help_hint=f"every key: datagen run {flow} --help-config")


def cmd_run(args) -> int:
    from datagen.config import ConfigError, describe

    if args.help_config:
        print("\n".join(describe(params_model(args.flow))))
        return 0

    sets = list(args.sets)
    if args.root:
        sets.append(f"root={args.root}")
    try:
        params = load_params(args.flow, args.config, sets)
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    if args.print_config:
        print(json.dumps(params.model_dump(mode="json"), indent=2))
        return 0
    from datagen.preflight import check_root, empty_versions, missing_models
    from datagen.store import StoreError

    missing = missing_models(params)
    if missing:
        raise CLIError(missing[0] + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    try:
        check_root(getattr(params, "root", None))
    except StoreError as exc:
        raise CLIError(str(exc)) from None
    flow_fn = FLOWS[args.flow].flow()

    from datagen import runtime
    from flows.common import ad_hoc_run_settings
    from flows.progress import cli_progress
    from flows.server import prefect_server
    from flows.summary import print_summary

    # Our own temporary Prefect server (not Prefect's): it dies with this
    # process however it ends (datagen.runtime). Prefect is imported by now, so
    # its log handlers lose their tracebacks unless --debug.
    runtime.quiet_tracebacks(getattr(args, "debug", False))
    with ad_hoc_run_settings(), prefect_server(), cli_progress(args.flow):
        result = flow_fn(params)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_summary(result, root=getattr(params, "root", None))
    empty = [] if args.allow_empty else empty_versions(result, getattr(params, "root", None))
    if empty:
        raise CLIError(f"empty result: {', '.join(empty)} has 0 rows; see the stage statistics above "
                       "(rerun with --allow-empty to accept it)")
    return 0
