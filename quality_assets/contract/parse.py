"""Loading a contract: the YAML read with line numbers, every dataset's blocks checked for their
shape (blocks.py), then what needs more than one field: rules through the rule kinds' registry
(parameters, SQL guard, columns), references across datasets, the daily spec, the anomaly block.
Every problem is reported with the file, the line, the dataset and the field, all at once, so a
user's typo never surfaces as a Python traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from quality_assets.contract.anomalies import parse_anomaly_settings
from quality_assets.contract.blocks import (
    ColumnSpec,
    CsvOptions,
    DailySpec,
    Landing,
    validate_block,
)
from quality_assets.contract.lines import LineLoader, Problems, duplicate_keys, line_at, yaml_error
from quality_assets.contract.model import Column, Contract, ContractError, Dataset, Rule
from quality_assets.rules.kinds import KINDS, parameter_problems, referenced_datasets

FORMATS = ("auto", "csv", "parquet", "json")
PARTITIONINGS = ("file", "daily")
SEVERITIES = ("warn", "error")
DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

RULE_KINDS = KINDS  # the rule kinds by name (quality_assets/rules/kinds/)
RULE_COMMON = ("name", "severity", "mostly", "description")

DATASET_KEYS = {
    "description", "landing", "format", "csv", "partitioning", "columns", "primary_key",
    "rules", "anomalies", "allow_extra_columns", "daily",
}
TOP_KEYS = {"version", "datasets"}


def load_contract(path: str | Path) -> Contract:
    """Read and validate a contract file; raises ContractError listing every problem."""
    path = Path(path).expanduser().resolve()
    problems = Problems(path)
    if not path.is_file():
        raise ContractError(path, [f"{path}: contract file not found (set QA_CONTRACTS)"])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(path, [f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    return parse_contract(text, path, problems)


def parse_contract(text: str, path: Path, problems: Problems | None = None) -> Contract:
    problems = problems or Problems(path)
    loader = LineLoader(text)
    try:
        node = loader.get_single_node()
        for line, where, key, first in duplicate_keys(node) if node is not None else ():
            problems.add(line, where, f"duplicate key {key!r} (first given on line {first})")
        doc = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        line, reason = yaml_error(exc, text)
        problems.add(line, "YAML", f"cannot parse: {reason}")
        raise ContractError(path, problems.items) from None
    finally:
        loader.dispose()
    if not isinstance(doc, dict):
        problems.add(None, "contract", "expected a mapping with a 'datasets' key")
        raise ContractError(path, problems.items)
    for key in doc:
        if key not in TOP_KEYS:
            problems.add(line_at(doc, key), key, f"unknown key (expected one of: {', '.join(sorted(TOP_KEYS))})")
    version = doc.get("version", 1)
    if version != 1:
        problems.add(line_at(doc, "version"), "version", f"unsupported contract version {version!r} (expected 1)")
    raw_datasets = doc.get("datasets")
    datasets: list[Dataset] = []
    if not isinstance(raw_datasets, dict) or not raw_datasets:
        problems.add(line_at(doc, "datasets"), "datasets", "expected a non-empty mapping of dataset name to settings")
    else:
        for name, spec in raw_datasets.items():
            ds = _parse_dataset(name, spec, line_at(raw_datasets, name), path.parent, problems)
            if ds is not None:
                datasets.append(ds)
        names = {str(name) for name in raw_datasets}  # declared, even when invalid themselves
        for ds in datasets:
            for rule in ds.rules:
                for target in referenced_datasets(rule):
                    if target not in names:
                        problems.add(rule.line, f"dataset '{ds.name}', rule '{rule.name}'",
                                     f"references unknown dataset {target!r}")
    if problems.items:
        raise ContractError(path, problems.items)
    return Contract(path=path, datasets=tuple(datasets))


def _unknown_keys(spec: dict, allowed: set[str], where: str, problems: Problems) -> None:
    for key in spec:
        if key not in allowed:
            problems.add(line_at(spec, key), where, f"unknown key {key!r} (expected one of: {', '.join(sorted(allowed))})")


def _parse_dataset(name: str, spec: Any, line: int | None, base: Path, problems: Problems) -> Dataset | None:
    where = f"dataset '{name}'"
    if not DATASET_NAME.match(str(name)):
        problems.add(line, where, "name must be lower-case letters, digits and underscores, starting with a letter (it becomes a Dagster asset key and a table name)")
    if not isinstance(spec, dict):
        problems.add(line, where, "expected a mapping of settings")
        return None
    _unknown_keys(spec, DATASET_KEYS, where, problems)

    landing = spec.get("landing")
    if isinstance(landing, str):
        landing = Landing(path=landing)
    elif isinstance(landing, dict):
        landing = validate_block(Landing, landing, f"{where}, landing", problems, line_at(landing))
    else:
        if landing is not None:
            problems.add(line_at(spec, "landing"), f"{where}, landing", "expected a folder path or a mapping with 'path' and 'glob'")
        landing = None
    landing_dir = base / landing.path if landing and landing.path else base / "landing" / str(name)

    fmt = spec.get("format", "auto")
    if fmt not in FORMATS:
        problems.add(line_at(spec, "format"), f"{where}, format", f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    partitioning = spec.get("partitioning", "file")
    if partitioning not in PARTITIONINGS:
        problems.add(line_at(spec, "partitioning"), f"{where}, partitioning", f"unsupported partitioning {partitioning!r} (expected one of: {', '.join(PARTITIONINGS)})")

    csv = _parse_csv_options(spec.get("csv"), line_at(spec, "csv"), where, problems)
    columns = _parse_columns(spec.get("columns"), line_at(spec, "columns"), where, problems)
    column_names = {c.name for c in columns}
    daily = _parse_daily(spec, partitioning, columns, where, problems)

    primary_key = spec.get("primary_key", [])
    if isinstance(primary_key, str):
        primary_key = [primary_key]
    if not isinstance(primary_key, list) or not all(isinstance(k, str) for k in primary_key):
        problems.add(line_at(spec, "primary_key"), f"{where}, primary_key", "expected a column name or a list of column names")
        primary_key = []
    for key in primary_key:
        if columns and key not in column_names:
            problems.add(line_at(spec, "primary_key"), f"{where}, primary_key", f"unknown column {key!r}")

    rules = _parse_rules(spec.get("rules"), line_at(spec, "rules"), where, column_names, problems)
    anomalies = spec.get("anomalies", {})
    if not isinstance(anomalies, dict):
        problems.add(line_at(spec, "anomalies"), f"{where}, anomalies", "expected a mapping of settings")
        anomalies = {}
    for key, message in parse_anomaly_settings(anomalies, column_names)[1]:
        problems.add(line_at(anomalies, key) or line_at(spec, "anomalies"), f"{where}, anomalies.{key}", message)
    allow_extra = spec.get("allow_extra_columns", True)
    if not isinstance(allow_extra, bool):
        problems.add(line_at(spec, "allow_extra_columns"), f"{where}, allow_extra_columns", "expected true or false")
    description = spec.get("description", "")
    if not isinstance(description, str):
        problems.add(line_at(spec, "description"), f"{where}, description", "expected text")
        description = ""
    # Built even when this dataset had problems (the contract then fails as a whole), so that
    # checks across datasets, such as references, still run and every problem is listed at once.
    return Dataset(
        name=str(name), landing_dir=landing_dir.resolve(), glob=landing.glob if landing else "*",
        recursive=landing.recursive if landing else False,
        format=fmt, csv=csv, partitioning=partitioning, columns=tuple(columns),
        primary_key=tuple(primary_key), rules=tuple(rules), anomalies=dict(anomalies),
        allow_extra_columns=bool(allow_extra), description=description.strip(), daily=daily,
    )


def _parse_csv_options(spec: Any, line: int | None, where: str, problems: Problems) -> CsvOptions:
    if spec is None:
        return CsvOptions()
    if not isinstance(spec, dict):
        problems.add(line, f"{where}, csv", "expected a mapping of CSV options")
        return CsvOptions()
    return validate_block(CsvOptions, spec, f"{where}, csv", problems)


def _parse_columns(spec: Any, line: int | None, where: str, problems: Problems) -> list[Column]:
    if spec is None:
        return []
    if not isinstance(spec, dict):
        problems.add(line, f"{where}, columns", "expected a mapping of column name to type or settings")
        return []
    columns = []
    seen_sources: dict[str, str] = {}
    for name, col in spec.items():
        col_where = f"{where}, columns.{name}"
        col_line = line_at(spec, name)
        if isinstance(col, str):
            col = {"type": col}
        if col is None:
            col = {}
        if not isinstance(col, dict):
            problems.add(col_line, col_where, "expected a type name or a mapping with 'type' and 'aliases'")
            continue
        settings = validate_block(ColumnSpec, col, col_where, problems, col_line)
        for source in [str(name), *settings.aliases]:
            other = seen_sources.get(source.lower())
            if other is not None and other != name:
                problems.add(col_line, col_where, f"header {source!r} is already mapped to column {other!r}")
            seen_sources[source.lower()] = str(name)
        columns.append(Column(name=str(name), type=settings.type, aliases=settings.aliases,
                              description=settings.description, format=settings.format))
    return columns


def _parse_rules(spec: Any, line: int | None, where: str, column_names: set[str], problems: Problems) -> list[Rule]:
    if spec is None:
        return []
    if not isinstance(spec, list):
        problems.add(line, f"{where}, rules", "expected a list of rules")
        return []
    rules = []
    names_seen: set[str] = set()
    for index, item in enumerate(spec, start=1):
        rule_where = f"{where}, rules[{index}]"
        rule_line = line_at(item) or line
        if not isinstance(item, dict):
            problems.add(rule_line, rule_where, f"expected a mapping with one rule kind ({', '.join(RULE_KINDS)})")
            continue
        kinds = [k for k in item if k in RULE_KINDS]
        others = [k for k in item if k not in RULE_KINDS and k not in RULE_COMMON]
        if len(kinds) != 1:
            problems.add(rule_line, rule_where, f"expected exactly one rule kind ({', '.join(RULE_KINDS)}), found {kinds or others or 'none'}")
            continue
        for key in others:
            problems.add(line_at(item, key), rule_where, f"unknown key {key!r} (common keys: {', '.join(RULE_COMMON)})")
        kind = kinds[0]
        spec = RULE_KINDS[kind]
        body = item[kind]
        if not isinstance(body, dict):
            if not spec.required:
                problems.add(line_at(item, kind), rule_where, f"{kind}: expected a mapping with {', '.join(spec.params)}")
                continue
            body = {spec.required[0]: body}
        for key in body:
            if key not in spec.params:
                problems.add(line_at(body, key) or rule_line, f"{rule_where} ({kind})", f"unknown key {key!r} (expected: {', '.join(spec.params)})")
        for key in spec.required:
            if key not in body:
                problems.add(rule_line, f"{rule_where} ({kind})", f"missing {key!r}")
        params = dict(body)
        for problem in parameter_problems(spec, params, column_names):
            problems.add(rule_line, f"{rule_where} ({kind})", problem)
        severity = item.get("severity", "error")
        if severity not in SEVERITIES:
            problems.add(line_at(item, "severity"), rule_where, f"severity must be 'warn' or 'error', got {severity!r}")
        mostly = item.get("mostly")
        if mostly is not None and (isinstance(mostly, bool) or not isinstance(mostly, (int, float)) or not 0 < mostly <= 1):
            problems.add(line_at(item, "mostly"), rule_where, f"mostly must be a share between 0 and 1, got {mostly!r}")
        elif mostly is not None and not spec.judges_rows:
            problems.add(line_at(item, "mostly"), rule_where, f"mostly does not apply to {kind} rules (they do not judge rows)")
        name = item.get("name") or _default_rule_name(kind, params)
        if not isinstance(name, str):
            problems.add(line_at(item, "name"), rule_where, f"name: expected text, got {name!r}")
            name = _default_rule_name(kind, params)
        if name in names_seen:
            name = f"{name}_{index}"
        names_seen.add(name)
        rules.append(Rule(
            kind=kind, params=params, name=str(name), severity=str(severity),
            mostly=float(mostly) if isinstance(mostly, (int, float)) and not isinstance(mostly, bool) else None,
            description=str(item.get("description", "")), line=rule_line,
        ))
    return rules


def _default_rule_name(kind: str, params: dict) -> str:
    subject = params.get("column") or params.get("columns") or ""
    if isinstance(subject, list):
        subject = "_".join(map(str, subject))
    return re.sub(r"[^A-Za-z0-9_]+", "_", f"{kind}_{subject}".strip("_")).strip("_").lower() or kind


def _parse_daily(spec: dict, partitioning: Any, columns: list[Column], where: str, problems: Problems) -> DailySpec | None:
    """The `daily:` block of a `partitioning: daily` dataset: its shape (DailySpec), then one
    source of the day, and a column that is a date or timestamp."""
    block = spec.get("daily")
    line = line_at(spec, "daily") or line_at(spec, "partitioning")
    if partitioning != "daily":
        if block is not None:
            problems.add(line, f"{where}, daily", "only used with 'partitioning: daily'")
        return None
    if not isinstance(block, dict):
        problems.add(line, f"{where}, daily", "required with 'partitioning: daily': a mapping with 'start' and 'file_pattern' or 'column'")
        return None
    where = f"{where}, daily"
    daily = validate_block(DailySpec, block, where, problems, line)
    if (block.get("file_pattern") is None) == (block.get("column") is None):
        problems.add(line, where, "give exactly one of 'file_pattern' (the date in the file name) or 'column' (a date or timestamp column)")
    column = daily.column
    if column is not None:
        declared = {c.name: c for c in columns}
        problem = None
        if declared and column not in declared:
            problem = f"unknown column {column!r}"
        elif column in declared and declared[column].type not in (None, "DATE", "TIMESTAMP", "TIMESTAMPTZ"):
            problem = f"column {column!r} is {declared[column].type}, expected a date or timestamp"
        if problem:
            problems.add(line_at(block, "column"), f"{where}.column", problem)
            daily = daily.model_copy(update={"column": None})
    return daily
