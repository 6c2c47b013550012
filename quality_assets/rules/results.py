"""What the rules stage found, and how rules map to Dagster asset checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quality_assets.rules.kinds import describe_rule

if TYPE_CHECKING:
    from quality_assets.contract import Dataset, Rule

MAX_CHECKS_PER_ASSET = 50  # Dagster's guidance for one asset; rules are grouped beyond it


@dataclass
class RuleResult:
    rule: Rule
    check_name: str
    passed: bool
    rows: int
    failing_rows: int | None = None  # None for rules that do not judge rows
    observed: Any = None
    message: str = ""
    sql: str = ""
    error: str | None = None
    stored: int = 0  # failing rows written to qa.failing_rows
    sample: list[dict] = field(default_factory=list)

    @property
    def failing_share(self) -> float | None:
        if self.failing_rows is None:
            return None
        return self.failing_rows / self.rows if self.rows else 0.0

    @property
    def blocking(self) -> bool:
        return self.rule.severity == "error"


@dataclass
class Evaluation:
    """All rules of one partition."""

    dataset: str
    partition_key: str
    run_id: str
    rows: int
    results: list[RuleResult]
    raw_run_id: str | None = None
    loaded_at: dt.datetime | None = None
    columns: list[str] = field(default_factory=list)
    column_types: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    scans: int = 0  # queries over the partition's rows

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]

    @property
    def blocking_failures(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed and r.blocking]


@dataclass(frozen=True)
class CheckGroup:
    """One Dagster asset check: a single rule, or every rule of one kind and severity."""

    name: str
    severity: str
    rules: tuple[Rule, ...]
    kind: str | None = None  # set for a group of several rules

    @property
    def blocking(self) -> bool:
        return self.severity == "error"

    def description(self) -> str:
        if self.kind is None:
            rule = self.rules[0]
            text = rule.description or describe_rule(rule)
            return f"{text} ({rule.severity}{', blocks publishing' if self.blocking else ''})"
        return (f"{len(self.rules)} {self.kind} rules ({self.severity}"
                f"{', block publishing' if self.blocking else ''}): "
                + "; ".join(describe_rule(r) for r in self.rules[:10])
                + (" ..." if len(self.rules) > 10 else ""))


def check_name(name: str) -> str:
    """A rule name as a Dagster check name (letters, digits, underscores)."""
    cleaned = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    return cleaned[:100] or "rule"


def check_groups(rules: tuple[Rule, ...] | list[Rule], limit: int = MAX_CHECKS_PER_ASSET) -> list[CheckGroup]:
    """One check per rule while the dataset has at most `limit` rules; beyond that, the rules of
    the largest (kind, severity) bucket are merged into one check, then the next largest, until
    the checks fit. There are fewer than 25 kinds x 2 severities, so this always ends under 50."""
    buckets: dict[tuple[str, str], list[Rule]] = {}
    for rule in rules:
        buckets.setdefault((rule.kind, rule.severity), []).append(rule)
    merged: set[tuple[str, str]] = set()
    count = len(rules)
    while count > limit:
        candidates = [k for k, v in buckets.items() if k not in merged and len(v) > 1]
        if not candidates:
            break
        biggest = max(candidates, key=lambda k: len(buckets[k]))
        merged.add(biggest)
        count -= len(buckets[biggest]) - 1
    groups: list[CheckGroup] = []
    taken: set[str] = set()
    done: set[tuple[str, str]] = set()

    def unique_name(base: str) -> str:
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        return name

    for rule in rules:
        key = (rule.kind, rule.severity)
        if key in merged:
            if key not in done:
                done.add(key)
                groups.append(CheckGroup(unique_name(f"{rule.kind}_rules_{rule.severity}"), rule.severity,
                                         tuple(buckets[key]), kind=rule.kind))
        else:
            groups.append(CheckGroup(unique_name(check_name(rule.name)), rule.severity, (rule,)))
    return groups


def rules_fingerprint(dataset: Dataset) -> str:
    """Changes whenever a rule of the dataset changes (a validation is for one set of rules)."""
    payload = [
        {"kind": r.kind, "params": r.params, "name": r.name, "severity": r.severity, "mostly": r.mostly}
        for r in dataset.rules
    ]
    payload.append({"columns": [c.name for c in dataset.columns], "key": list(dataset.primary_key),
                    "allow_extra": dataset.allow_extra_columns})
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
