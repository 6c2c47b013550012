"""The contract's model: datasets with their landing folder, format, columns, key and rules."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quality_assets.contract.blocks import CsvOptions, DailySpec


class ContractError(Exception):
    """A contract that cannot be used; `problems` lists every finding."""

    def __init__(self, path: str | Path, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(problems))


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
