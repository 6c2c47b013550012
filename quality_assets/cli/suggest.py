"""`suggest`: a draft contract from a file's profile (loaded as the pipeline would) or from a
dataset's rows in the warehouse."""

from __future__ import annotations

import sys
from pathlib import Path

from quality_assets.cli.errors import EXIT_OK, EXIT_USAGE, UsageError, dataset_for_file
from quality_assets.config import settings_from_env
from quality_assets.contract import DATASET_NAME, ContractError, load_contract
from quality_assets.lake import open_warehouse
from quality_assets.suggest import suggest_for_dataset, suggest_for_file


def cmd_suggest(args) -> int:
    settings = settings_from_env()
    base = args.output.resolve().parent if args.output else Path.cwd()
    if args.name is not None and not DATASET_NAME.match(args.name):
        raise UsageError(f"--name {args.name!r}: lower-case letters, digits and underscores, starting with a letter")
    contract = _contract_if_any(settings.contracts)
    path = Path(args.source).expanduser()
    try:
        if path.is_file():
            if contract is None and args.dataset:
                raise UsageError(f"--dataset {args.dataset}: no contract found")
            template = dataset_for_file(contract, path, args.dataset) if contract else None
            text, rows = suggest_for_file(path, template, args.name, base)
        elif contract is not None and args.source in {d.name for d in contract.datasets}:
            warehouse = open_warehouse(settings)
            text, rows = suggest_for_dataset(contract.dataset(args.source), warehouse, base)
        else:
            known = ", ".join(d.name for d in contract.datasets) if contract else "no contract found"
            raise UsageError(f"{args.source!r} is neither a file nor a dataset (datasets: {known})")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote a contract drafted from {rows:,} rows to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _contract_if_any(path: Path):
    if not path.is_file():
        return None
    try:
        return load_contract(path)
    except ContractError:
        return None  # a draft is often how a broken contract gets fixed
