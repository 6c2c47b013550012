"""`quality-assets`: the command line's entry point and its error handling. The parser is in
parser.py; each command group runs from a module of its own (pipeline: run, validate, demo;
operations: cleanup, backup, restore, migrate; suggest; compare; ui), imported when it runs."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from quality_assets.cli.errors import EXIT_PIPE_CLOSED, EXIT_USAGE, UsageError
from quality_assets.cli.parser import build_parser
from quality_assets.config import SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # here, not at the top: the contract's parser loads the rules, and they DuckDB
    from quality_assets.contract import ContractError

    try:
        if args.contracts:
            os.environ["QA_CONTRACTS"] = str(Path(args.contracts).resolve())
        module, function = args.handler.split(":")
        status = getattr(importlib.import_module(f"quality_assets.cli.{module}"), function)(args)
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


if __name__ == "__main__":
    sys.exit(main())
