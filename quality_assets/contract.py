"""The YAML contract: which datasets exist, where their files land, their columns and rules.

Loading validates everything and reports every problem with the file, the line, the dataset
and the field, so a user's typo never surfaces as a Python traceback.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from quality_assets.rules.kinds import KINDS, parameter_problems, referenced_datasets
from quality_assets.vocabulary import COLUMN_TYPES, duckdb_type, parse_duration  # noqa: F401 - the contract's API

DEFAULT_CONTRACT_FILE = "quality.yaml"

FORMATS = ("auto", "csv", "parquet", "json")
PARTITIONINGS = ("file", "daily")
SEVERITIES = ("warn", "error")
ENCODINGS_NATIVE = ("utf-8", "utf8", "latin-1", "latin1", "utf-16")
DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

RULE_KINDS = KINDS  # the rule kinds by name (quality_assets/rules/kinds/)
RULE_COMMON = ("name", "severity", "mostly", "description")

DATASET_KEYS = {
    "description", "landing", "format", "csv", "partitioning", "columns", "primary_key",
    "rules", "anomalies", "allow_extra_columns", "daily",
}
DAILY_KEYS = {"start", "file_pattern", "date_format", "column", "timezone", "schedule"}
LANDING_KEYS = {"path", "glob", "recursive"}
CSV_KEYS = {
    "delimiter", "quote", "escape", "header", "encoding", "null_values", "max_line_bytes",
    "date_format", "timestamp_format", "skip_rows", "comment", "quoted_empty",
}
COLUMN_KEYS = {"type", "aliases", "description", "format"}
TOP_KEYS = {"version", "datasets"}


class ContractError(Exception):
    """A contract that cannot be used; `problems` lists every finding."""

    def __init__(self, path: str | Path, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str | None = None
    quote: str | None = None
    escape: str | None = None
    header: bool | None = None
    encoding: str = "utf-8"
    null_values: tuple[str, ...] = ("",)
    max_line_bytes: int = 2 * 1024 * 1024
    date_format: str | None = None
    timestamp_format: str | None = None
    skip_rows: int = 0
    comment: str | None = None
    quoted_empty: str = "string"  # a quoted "" field: the empty string, or "null" like an unquoted empty one


@dataclass(frozen=True)
class Column:
    name: str
    type: str | None  # DuckDB type, or None to infer
    aliases: tuple[str, ...] = ()
    description: str = ""
    format: str | None = None


@dataclass(frozen=True)
class Rule:
    kind: str
    params: dict[str, Any]
    name: str
    severity: str = "error"
    mostly: float | None = None
    description: str = ""
    line: int | None = None


@dataclass(frozen=True)
class DailySpec:
    """`partitioning: daily`: one partition per day, the day taken from the file name or a column."""

    start: str  # first partition, YYYY-MM-DD
    file_pattern: str | None = None  # regex searched in the file's relative path; group 'date' or 1
    date_format: str | None = None  # how the file name writes the date; None: %Y%m%d or %Y-%m-%d
    column: str | None = None  # or: the date/timestamp column that assigns rows to days
    timezone: str = "UTC"
    schedule: str = "01:00"  # time of day the schedule processes the previous day


@dataclass(frozen=True)
class Dataset:
    name: str
    landing_dir: Path
    glob: str = "*"
    recursive: bool = False
    format: str = "auto"
    csv: CsvOptions = field(default_factory=CsvOptions)
    partitioning: str = "file"
    columns: tuple[Column, ...] = ()
    primary_key: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    anomalies: dict[str, Any] = field(default_factory=dict)
    allow_extra_columns: bool = True
    description: str = ""
    daily: DailySpec | None = None

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def alias_map(self) -> dict[str, str]:
        """Source header (case-insensitive) -> contract column name."""
        mapping = {}
        for col in self.columns:
            mapping[col.name.lower()] = col.name
            for alias in col.aliases:
                mapping[alias.lower()] = col.name
        return mapping

    def fingerprint(self) -> str:
        """Hash of everything that changes how a file is loaded; a reload is due when it changes."""
        payload = {
            "format": self.format,
            "csv": self.csv.__dict__,
            "columns": [c.__dict__ for c in self.columns],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Contract:
    path: Path
    datasets: tuple[Dataset, ...]

    def dataset(self, name: str) -> Dataset:
        for ds in self.datasets:
            if ds.name == name:
                return ds
        known = ", ".join(d.name for d in self.datasets) or "none"
        raise KeyError(f"no dataset {name!r} in {self.path} (known: {known})")


# ---------------------------------------------------------------------------------------------
# YAML with line numbers


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = _LinedDict()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise yaml.constructor.ConstructorError(
                None, None, f"unsupported mapping key {key!r}", key_node.start_mark
            )
        key = str(key)
        if key in mapping:
            continue  # reported by _duplicate_keys; the first one counts
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
    mapping.line = node.start_mark.line + 1
    return mapping


class _LinedDict(dict):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines: dict[str, int] = {}
        self.line: int | None = None


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _duplicate_keys(node: yaml.Node, path: tuple[str, ...] = (), seen: set | None = None) -> Iterator[tuple[int, str, str, int]]:
    """(line, where, key, line of the first one) for every repeated key in the YAML node tree."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in first:
                yield key_node.start_mark.line + 1, _where((*path, key)), key, first[key]
            elif key is not None:
                first[key] = key_node.start_mark.line + 1
            yield from _duplicate_keys(value_node, (*path, str(key)), seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value, start=1):
            yield from _duplicate_keys(item, (*path, f"[{index}]"), seen)


def _where(path: tuple[str, ...]) -> str:
    """('datasets', 'orders', 'rules', '[2]') -> "dataset 'orders', rules[2]", as the checks name places."""
    head, rest = "", path
    if len(path) >= 2 and path[0] == "datasets":
        head, rest = f"dataset '{path[1]}'", path[2:]
    tail = ""
    for part in rest:
        tail += part if part.startswith("[") or not tail else f".{part}"
    return ", ".join(p for p in (head, tail) if p) or "contract"


class _Problems:
    def __init__(self, path: Path):
        self.path = path
        self.items: list[str] = []

    def add(self, line: int | None, where: str, message: str) -> None:
        location = f"{self.path}:{line}" if line else str(self.path)
        self.items.append(f"{location}: {where}: {message}")


def _line(mapping: Any, key: str | None = None) -> int | None:
    if isinstance(mapping, _LinedDict):
        if key is not None and key in mapping.lines:
            return mapping.lines[key]
        return mapping.line
    return None


# ---------------------------------------------------------------------------------------------
# Loading


def load_contract(path: str | Path) -> Contract:
    """Read and validate a contract file; raises ContractError listing every problem."""
    path = Path(path).expanduser().resolve()
    problems = _Problems(path)
    if not path.is_file():
        raise ContractError(path, [f"{path}: contract file not found (set QA_CONTRACTS)"])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(path, [f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    return parse_contract(text, path, problems)


def _yaml_error(exc: yaml.YAMLError, text: str) -> tuple[int | None, str]:
    """The line to fix and what is wrong. A quote or bracket left open is only noticed where the
    scanner gives up (often many lines later): the line to fix is where it was opened."""
    problem_mark, context_mark = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    problem, context = getattr(exc, "problem", None) or str(exc), getattr(exc, "context", None) or ""
    quoted = _multiline_quote(text)
    if quoted is not None and (problem_mark is None or quoted[0] <= problem_mark.line + 1):
        return quoted[0], (f"a quoted value opened on line {quoted[0]} runs on to line {quoted[1]}: is its closing "
                           f"quote missing? (the parser then found: {problem})")
    left_open = context_mark is not None and ("quoted scalar" in context or "flow" in context)
    if left_open and (problem_mark is None or problem_mark.line != context_mark.line):
        where = f" on line {problem_mark.line + 1}" if problem_mark is not None else ""
        what = context.removeprefix("while parsing ").removeprefix("while scanning ")
        return context_mark.line + 1, f"{what} opened here is still open{where} ({problem})"
    mark = problem_mark or context_mark
    return (mark.line + 1 if mark else None), problem


def _multiline_quote(text: str) -> tuple[int, int] | None:
    """(first line, last line) of the first quoted scalar spanning lines: legal YAML, but in a
    contract almost always a quote left open."""
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.ScalarToken) and not token.plain and token.end_mark.line > token.start_mark.line:
                return token.start_mark.line + 1, token.end_mark.line + 1
    except yaml.YAMLError:
        pass
    return None


def parse_contract(text: str, path: Path, problems: _Problems | None = None) -> Contract:
    problems = problems or _Problems(path)
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        for line, where, key, first in _duplicate_keys(node) if node is not None else ():
            problems.add(line, where, f"duplicate key {key!r} (first given on line {first})")
        doc = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        line, reason = _yaml_error(exc, text)
        problems.add(line, "YAML", f"cannot parse: {reason}")
        raise ContractError(path, problems.items) from None
    finally:
        loader.dispose()
    if not isinstance(doc, dict):
        problems.add(None, "contract", "expected a mapping with a 'datasets' key")
        raise ContractError(path, problems.items)
    for key in doc:
        if key not in TOP_KEYS:
            problems.add(_line(doc, key), key, f"unknown key (expected one of: {', '.join(sorted(TOP_KEYS))})")
    version = doc.get("version", 1)
    if version != 1:
        problems.add(_line(doc, "version"), "version", f"unsupported contract version {version!r} (expected 1)")
    raw_datasets = doc.get("datasets")
    datasets: list[Dataset] = []
    if not isinstance(raw_datasets, dict) or not raw_datasets:
        problems.add(_line(doc, "datasets"), "datasets", "expected a non-empty mapping of dataset name to settings")
    else:
        for name, spec in raw_datasets.items():
            ds = _parse_dataset(name, spec, _line(raw_datasets, name), path.parent, problems)
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


def _unknown_keys(spec: dict, allowed: set[str], where: str, problems: _Problems) -> None:
    for key in spec:
        if key not in allowed:
            problems.add(_line(spec, key), where, f"unknown key {key!r} (expected one of: {', '.join(sorted(allowed))})")


def _parse_dataset(name: str, spec: Any, line: int | None, base: Path, problems: _Problems) -> Dataset | None:
    where = f"dataset '{name}'"
    if not DATASET_NAME.match(str(name)):
        problems.add(line, where, "name must be lower-case letters, digits and underscores, starting with a letter (it becomes a Dagster asset key and a table name)")
    if not isinstance(spec, dict):
        problems.add(line, where, "expected a mapping of settings")
        return None
    _unknown_keys(spec, DATASET_KEYS, where, problems)

    landing = spec.get("landing")
    landing_dir, glob, recursive = base / "landing" / str(name), "*", False
    if isinstance(landing, str):
        landing_dir = base / landing
    elif isinstance(landing, dict):
        _unknown_keys(landing, LANDING_KEYS, f"{where}, landing", problems)
        if not isinstance(landing.get("path"), str):
            problems.add(_line(landing), f"{where}, landing.path", "required: the folder files land in")
        else:
            landing_dir = base / landing["path"]
        glob = landing.get("glob", "*")
        if not isinstance(glob, str) or not glob:
            problems.add(_line(landing, "glob"), f"{where}, landing.glob", "expected a glob pattern such as '*.csv'")
            glob = "*"
        recursive = landing.get("recursive", False)
        if not isinstance(recursive, bool):
            problems.add(_line(landing, "recursive"), f"{where}, landing.recursive", "expected true or false")
            recursive = False
    elif landing is not None:
        problems.add(_line(spec, "landing"), f"{where}, landing", "expected a folder path or a mapping with 'path' and 'glob'")

    fmt = spec.get("format", "auto")
    if fmt not in FORMATS:
        problems.add(_line(spec, "format"), f"{where}, format", f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    partitioning = spec.get("partitioning", "file")
    if partitioning not in PARTITIONINGS:
        problems.add(_line(spec, "partitioning"), f"{where}, partitioning", f"unsupported partitioning {partitioning!r} (expected one of: {', '.join(PARTITIONINGS)})")

    csv = _parse_csv_options(spec.get("csv"), _line(spec, "csv"), where, problems)
    columns = _parse_columns(spec.get("columns"), _line(spec, "columns"), where, problems)
    column_names = {c.name for c in columns}
    daily = _parse_daily(spec, partitioning, columns, where, problems)

    primary_key = spec.get("primary_key", [])
    if isinstance(primary_key, str):
        primary_key = [primary_key]
    if not isinstance(primary_key, list) or not all(isinstance(k, str) for k in primary_key):
        problems.add(_line(spec, "primary_key"), f"{where}, primary_key", "expected a column name or a list of column names")
        primary_key = []
    for key in primary_key:
        if columns and key not in column_names:
            problems.add(_line(spec, "primary_key"), f"{where}, primary_key", f"unknown column {key!r}")

    rules = _parse_rules(spec.get("rules"), _line(spec, "rules"), where, column_names, problems)
    anomalies = spec.get("anomalies", {})
    if not isinstance(anomalies, dict):
        problems.add(_line(spec, "anomalies"), f"{where}, anomalies", "expected a mapping of settings")
        anomalies = {}
    from quality_assets.anomalies.settings import parse_anomaly_settings

    for key, message in parse_anomaly_settings(anomalies, column_names)[1]:
        problems.add(_line(anomalies, key) or _line(spec, "anomalies"), f"{where}, anomalies.{key}", message)
    allow_extra = spec.get("allow_extra_columns", True)
    if not isinstance(allow_extra, bool):
        problems.add(_line(spec, "allow_extra_columns"), f"{where}, allow_extra_columns", "expected true or false")
    description = spec.get("description", "")
    if not isinstance(description, str):
        problems.add(_line(spec, "description"), f"{where}, description", "expected text")
        description = ""
    # Built even when this dataset had problems (the contract then fails as a whole), so that
    # checks across datasets, such as references, still run and every problem is listed at once.
    return Dataset(
        name=str(name), landing_dir=landing_dir.resolve(), glob=glob, recursive=recursive,
        format=fmt, csv=csv, partitioning=partitioning, columns=tuple(columns),
        primary_key=tuple(primary_key), rules=tuple(rules), anomalies=dict(anomalies),
        allow_extra_columns=bool(allow_extra), description=description.strip(), daily=daily,
    )


def _single_char(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 1 and value not in "\r\n"


def _parse_csv_options(spec: Any, line: int | None, where: str, problems: _Problems) -> CsvOptions:
    if spec is None:
        return CsvOptions()
    where = f"{where}, csv"
    if not isinstance(spec, dict):
        problems.add(line, where, "expected a mapping of CSV options")
        return CsvOptions()
    _unknown_keys(spec, CSV_KEYS, where, problems)
    values: dict[str, Any] = {}
    for key in ("delimiter", "quote", "escape", "comment"):
        if key in spec:
            value = spec[key]
            if key == "delimiter" and value == "\\t":
                value = "\t"
            if not _single_char(value):
                problems.add(_line(spec, key), f"{where}.{key}", f"expected a single character, got {value!r}")
            else:
                values[key] = value
    if "header" in spec:
        if not isinstance(spec["header"], bool):
            problems.add(_line(spec, "header"), f"{where}.header", "expected true or false")
        else:
            values["header"] = spec["header"]
    if "encoding" in spec:
        enc = spec["encoding"]
        import codecs

        try:
            codecs.lookup(str(enc))
            values["encoding"] = str(enc).lower()
        except LookupError:
            problems.add(_line(spec, "encoding"), f"{where}.encoding", f"unknown encoding {enc!r}")
    if "null_values" in spec:
        nv = spec["null_values"]
        if isinstance(nv, str):
            nv = [nv]
        if not isinstance(nv, list) or not all(isinstance(v, str) for v in nv):
            problems.add(_line(spec, "null_values"), f"{where}.null_values", "expected a list of strings")
        else:
            values["null_values"] = tuple(nv)
    for key in ("max_line_bytes", "skip_rows"):
        if key in spec:
            value = spec[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                problems.add(_line(spec, key), f"{where}.{key}", "expected a non-negative whole number")
            else:
                values[key] = value
    for key in ("date_format", "timestamp_format"):
        if key in spec:
            if not isinstance(spec[key], str) or "%" not in spec[key]:
                problems.add(_line(spec, key), f"{where}.{key}", "expected a strftime pattern such as '%d/%m/%Y'")
            else:
                values[key] = spec[key]
    if "quoted_empty" in spec:
        value = "null" if spec["quoted_empty"] is None else spec["quoted_empty"]  # YAML reads null as None
        if value not in ("string", "null"):
            problems.add(_line(spec, "quoted_empty"), f"{where}.quoted_empty", "expected string or null")
        else:
            values["quoted_empty"] = value
    return CsvOptions(**values)


def _parse_columns(spec: Any, line: int | None, where: str, problems: _Problems) -> list[Column]:
    if spec is None:
        return []
    if not isinstance(spec, dict):
        problems.add(line, f"{where}, columns", "expected a mapping of column name to type or settings")
        return []
    columns = []
    seen_sources: dict[str, str] = {}
    for name, col in spec.items():
        col_where = f"{where}, columns.{name}"
        col_line = _line(spec, name)
        if isinstance(col, str):
            col = {"type": col}
        if col is None:
            col = {}
        if not isinstance(col, dict):
            problems.add(col_line, col_where, "expected a type name or a mapping with 'type' and 'aliases'")
            continue
        _unknown_keys(col, COLUMN_KEYS, col_where, problems)
        type_name = col.get("type")
        db_type = None
        if type_name is not None:
            db_type = duckdb_type(str(type_name))
            if db_type is None:
                problems.add(
                    _line(col, "type") or col_line, f"{col_where}.type",
                    f"unknown type {type_name!r} (expected one of: {', '.join(sorted(set(COLUMN_TYPES)))}, decimal(p,s))",
                )
        aliases = col.get("aliases", [])
        if isinstance(aliases, str):
            aliases = [aliases]
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
            problems.add(_line(col, "aliases") or col_line, f"{col_where}.aliases", "expected a list of source header names")
            aliases = []
        for source in [str(name), *aliases]:
            other = seen_sources.get(source.lower())
            if other is not None and other != name:
                problems.add(col_line, col_where, f"header {source!r} is already mapped to column {other!r}")
            seen_sources[source.lower()] = str(name)
        fmt = col.get("format")
        if fmt is not None and (not isinstance(fmt, str) or "%" not in fmt):
            problems.add(_line(col, "format") or col_line, f"{col_where}.format", "expected a strftime pattern such as '%d/%m/%Y'")
            fmt = None
        columns.append(Column(
            name=str(name), type=db_type, aliases=tuple(aliases),
            description=str(col.get("description", "")), format=fmt,
        ))
    return columns


def _parse_rules(spec: Any, line: int | None, where: str, column_names: set[str], problems: _Problems) -> list[Rule]:
    if spec is None:
        return []
    if not isinstance(spec, list):
        problems.add(line, f"{where}, rules", "expected a list of rules")
        return []
    rules = []
    names_seen: set[str] = set()
    for index, item in enumerate(spec, start=1):
        rule_where = f"{where}, rules[{index}]"
        rule_line = _line(item) or line
        if not isinstance(item, dict):
            problems.add(rule_line, rule_where, f"expected a mapping with one rule kind ({', '.join(RULE_KINDS)})")
            continue
        kinds = [k for k in item if k in RULE_KINDS]
        others = [k for k in item if k not in RULE_KINDS and k not in RULE_COMMON]
        if len(kinds) != 1:
            problems.add(rule_line, rule_where, f"expected exactly one rule kind ({', '.join(RULE_KINDS)}), found {kinds or others or 'none'}")
            continue
        for key in others:
            problems.add(_line(item, key), rule_where, f"unknown key {key!r} (common keys: {', '.join(RULE_COMMON)})")
        kind = kinds[0]
        spec = RULE_KINDS[kind]
        body = item[kind]
        if not isinstance(body, dict):
            if not spec.required:
                problems.add(_line(item, kind), rule_where, f"{kind}: expected a mapping with {', '.join(spec.params)}")
                continue
            body = {spec.required[0]: body}
        for key in body:
            if key not in spec.params:
                problems.add(_line(body, key) or rule_line, f"{rule_where} ({kind})", f"unknown key {key!r} (expected: {', '.join(spec.params)})")
        for key in spec.required:
            if key not in body:
                problems.add(rule_line, f"{rule_where} ({kind})", f"missing {key!r}")
        params = dict(body)
        for problem in parameter_problems(spec, params, column_names):
            problems.add(rule_line, f"{rule_where} ({kind})", problem)
        severity = item.get("severity", "error")
        if severity not in SEVERITIES:
            problems.add(_line(item, "severity"), rule_where, f"severity must be 'warn' or 'error', got {severity!r}")
        mostly = item.get("mostly")
        if mostly is not None and (isinstance(mostly, bool) or not isinstance(mostly, (int, float)) or not 0 < mostly <= 1):
            problems.add(_line(item, "mostly"), rule_where, f"mostly must be a share between 0 and 1, got {mostly!r}")
        elif mostly is not None and not spec.judges_rows:
            problems.add(_line(item, "mostly"), rule_where, f"mostly does not apply to {kind} rules (they do not judge rows)")
        name = item.get("name") or _default_rule_name(kind, params)
        if not isinstance(name, str):
            problems.add(_line(item, "name"), rule_where, f"name: expected text, got {name!r}")
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


def _parse_daily(spec: dict, partitioning: Any, columns: list[Column], where: str, problems: _Problems) -> DailySpec | None:
    """The `daily:` block of a `partitioning: daily` dataset."""
    block = spec.get("daily")
    line = _line(spec, "daily") or _line(spec, "partitioning")
    if partitioning != "daily":
        if block is not None:
            problems.add(line, f"{where}, daily", "only used with 'partitioning: daily'")
        return None
    if not isinstance(block, dict):
        problems.add(line, f"{where}, daily", "required with 'partitioning: daily': a mapping with 'start' and 'file_pattern' or 'column'")
        return None
    where = f"{where}, daily"
    _unknown_keys(block, DAILY_KEYS, where, problems)
    values: dict[str, Any] = {}
    start = block.get("start")
    try:
        values["start"] = dt.date.fromisoformat(str(start)).isoformat()
    except ValueError:
        problems.add(_line(block, "start") or line, f"{where}.start", f"expected the first day as YYYY-MM-DD, got {start!r}")
        values["start"] = "1970-01-01"
    pattern, column = block.get("file_pattern"), block.get("column")
    if (pattern is None) == (column is None):
        problems.add(line, where, "give exactly one of 'file_pattern' (the date in the file name) or 'column' (a date or timestamp column)")
    if pattern is not None:
        try:
            compiled = re.compile(str(pattern))
            if compiled.groups == 0:
                problems.add(_line(block, "file_pattern"), f"{where}.file_pattern", "needs a group around the date, e.g. 'orders_(?P<date>\\d{8})'")
            values["file_pattern"] = str(pattern)
        except re.error as exc:
            problems.add(_line(block, "file_pattern"), f"{where}.file_pattern", f"invalid regular expression: {exc}")
    if "date_format" in block:
        if not isinstance(block["date_format"], str) or "%" not in block["date_format"]:
            problems.add(_line(block, "date_format"), f"{where}.date_format", "expected a strftime pattern such as '%Y%m%d'")
        else:
            values["date_format"] = block["date_format"]
    if column is not None:
        declared = {c.name: c for c in columns}
        if not isinstance(column, str):
            problems.add(_line(block, "column"), f"{where}.column", f"expected a column name, got {column!r}")
        elif declared and column not in declared:
            problems.add(_line(block, "column"), f"{where}.column", f"unknown column {column!r}")
        elif column in declared and declared[column].type not in (None, "DATE", "TIMESTAMP", "TIMESTAMPTZ"):
            problems.add(_line(block, "column"), f"{where}.column", f"column {column!r} is {declared[column].type}, expected a date or timestamp")
        else:
            values["column"] = column
    timezone = block.get("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(str(timezone))
        values["timezone"] = str(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.add(_line(block, "timezone"), f"{where}.timezone", f"unknown time zone {timezone!r}")
    schedule = str(block.get("schedule", "01:00"))
    if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", schedule):
        problems.add(_line(block, "schedule"), f"{where}.schedule", f"expected a time of day HH:MM, got {schedule!r}")
    else:
        values["schedule"] = schedule
    return DailySpec(**values)
