"""`quality-assets`: the command line's parser and its error handling; each command group lives
in a module of its own (pipeline: run, validate, demo; operations: cleanup, backup, restore;
suggest; compare; ui)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from quality_assets.cli.compare import add_compare_command
from quality_assets.cli.errors import EXIT_PIPE_CLOSED, EXIT_USAGE, UsageError
from quality_assets.cli.operations import add_operations_commands
from quality_assets.cli.pipeline import add_pipeline_commands
from quality_assets.cli.suggest import add_suggest_command
from quality_assets.cli.ui import add_ui_command
from quality_assets.config import VARIABLES, SettingsError
from quality_assets.contract import ContractError

CONTRACTS_HELP = "contract file (default: $QA_CONTRACTS or ./quality.yaml); before or after the command"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.contracts:
            os.environ["QA_CONTRACTS"] = str(Path(args.contracts).resolve())
        status = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's shutdown
        return status
    except BrokenPipeError:  # `quality-assets validate | head`: the reader has gone, stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE_CLOSED
    except ContractError as exc:
        print(f"error: the contract {exc.path} has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quality-assets",
        description="Data-quality pipeline on Dagster: load, quarantine and audit landed files.",
        epilog="Environment: " + ", ".join(f"{k} (default {v[0]})" for k, v in VARIABLES.items()),
    )
    parser.add_argument("--contracts", help=CONTRACTS_HELP)
    sub = parser.add_subparsers(dest="command")
    add_pipeline_commands(sub)
    add_operations_commands(sub)
    add_suggest_command(sub)
    add_compare_command(sub)
    add_ui_command(sub)
    for command in sub.choices.values():  # global options also after the subcommand
        command.add_argument("--contracts", default=argparse.SUPPRESS, help=CONTRACTS_HELP)
    return parser


if __name__ == "__main__":
    sys.exit(main())
