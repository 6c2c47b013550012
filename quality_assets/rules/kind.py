"""What a rule kind is: its parameters by type, description, SQL plan and judgement, and the
plan and judging state the evaluator hands it. The kinds themselves live in
`quality_assets/rules/kinds/`, one module per family."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from quality_assets.rules.sql import MissingColumn
from quality_assets.warehouse import quote_ident

if TYPE_CHECKING:  # annotations only: the contract imports the kinds to check parameters
    import duckdb

    from quality_assets.contract import Dataset, Rule
    from quality_assets.rules.results import Evaluation, RuleResult

META_COLUMNS = ("_partition_key", "_source_row", "_run_id", "_source_file")


@dataclass
class Plan:
    """A rule turned into SQL for one table."""

    rule: Rule
    index: int
    kind: Kind
    fail: str | None = None  # the failing-row predicate (row kinds)
    aggregate: str | None = None  # the aggregate expression for the main scan
    subject: list[str] = field(default_factory=list)  # columns shown with failing rows
    literals: list[str] = field(default_factory=list)  # checked before the scan
    error: str | None = None
    missing_column: bool = False
    rowids: list[int] = field(default_factory=list)  # the first failing rows (DuckDB rowids, file order)
    distinct: list[str] = field(default_factory=list)  # unique: (keys, distinct keys) counted in the main scan

    @property
    def scan_items(self) -> list[str]:
        """What the rule adds to the aggregate scan over the partition."""
        if self.fail:
            return [f"count_if({self.fail})"]
        if self.aggregate:
            return [self.aggregate]
        return list(self.distinct)


@dataclass
class Judging:
    """What a kind's judgement may read: the partition, the scan's values, the load."""

    con: duckdb.DuckDBPyConnection
    dataset: Dataset
    evaluation: Evaluation
    table: str
    values: dict[int, tuple]
    load: dict
    now: dt.datetime
    cap: int


def column(name: str, types: dict[str, str]) -> tuple[str, str]:
    """(quoted name, type) of a column of the data; MissingColumn when it has none of that name."""
    if name not in types:
        shown = ", ".join(sorted(c for c in types if c not in META_COLUMNS)[:20]) or "none"
        raise MissingColumn(f"column {name!r} is not in the data (columns: {shown})")
    return quote_ident(name), types[name]


class Kind:
    """One rule kind. `params` maps each parameter to its type (a key of params.PARAM_CHECKS); the
    first required one takes a rule's shorthand value (`not_null: id`)."""

    name: ClassVar[str]
    params: ClassVar[dict[str, str]] = {}  # the required ones first
    required: ClassVar[tuple[str, ...]] = ()
    judges_rows: ClassVar[bool] = True  # counts failing rows, so `mostly` applies
    own_scan: ClassVar[bool] = False  # aggregated in a query of its own (user aggregates)

    def check(self, params: dict) -> Iterator[str]:
        """Problems across parameters, after each was checked for its type."""
        return iter(())

    def describe(self, params: dict) -> str:
        return self.name

    def plan(self, plan: Plan, types: dict[str, str], published: dict[str, dict[str, str]]) -> None:
        """Fill the plan's SQL; raise RuleSQLError when the data cannot take the rule."""

    def prepare(self, con, table: str, partition_key: str, plans: list[Plan], types: dict[str, str],
                evaluation: Evaluation) -> None:
        """Before the main scan, with every plan of this kind that has no error."""

    def needs_table(self, params: dict) -> bool:
        """Whether the rule cannot be judged before anything was loaded."""
        return False

    def scanned(self, plan: Plan, value: tuple) -> None:
        """Look at the scan's values before judging (an assertion that is not a condition)."""

    def judge(self, result: RuleResult, plan: Plan, judging: Judging) -> None:
        raise NotImplementedError

    def sql(self, plan: Plan, table: str, where: str) -> str:
        """The rule's SQL as a query a user can run for this partition."""
        return ""


class RowKind(Kind):
    """A kind judged row by row: a failing-row predicate counted in the main scan; by default on
    the rule's `column`, through `fail`."""

    params = {"column": "column"}
    required = ("column",)

    def plan(self, plan: Plan, types: dict[str, str], published: dict[str, dict[str, str]]) -> None:
        col, col_type = column(plan.rule.params["column"], types)
        plan.subject = [plan.rule.params["column"]]
        plan.fail = self.fail(plan, col, col_type, published)

    def fail(self, plan: Plan, col: str, col_type: str, published: dict[str, dict[str, str]]) -> str:
        raise NotImplementedError

    def judge(self, result: RuleResult, plan: Plan, judging: Judging) -> None:
        judge_rows(result, judging.values[plan.index][0] or 0)

    def sql(self, plan: Plan, table: str, where: str) -> str:
        return f"SELECT count(*) FILTER (WHERE {plan.fail}) AS failing_rows FROM {table} WHERE {where}"


def judge_rows(result: RuleResult, failing: int) -> None:
    rule = result.rule
    result.failing_rows = int(failing)
    share = result.failing_share or 0.0
    allowed = 1.0 - rule.mostly if rule.mostly is not None else 0.0
    result.passed = share <= allowed + 1e-12
    result.observed = {"failing_rows": result.failing_rows, "failing_share": round(share, 6)}
    text = f"{failing:,} of {result.rows:,} rows fail ({share:.2%})"
    if rule.mostly is not None:
        text += f"; mostly {rule.mostly:g} tolerates {allowed:.2%}"
    result.message = text


KINDS: dict[str, Kind] = {}


def register(cls: type[Kind]) -> type[Kind]:
    """Class decorator: the kind joins the registry under its name."""
    if cls.name in KINDS:
        raise ValueError(f"rule kind {cls.name!r} is registered twice")
    KINDS[cls.name] = cls()
    return cls


def bounds_problems(kind: Kind, params: dict) -> Iterator[str]:
    """For kinds with `min` and `max`: at least one (unless a typo was already reported)."""
    if all(params.get(k) is None for k in ("min", "max")) and all(k in kind.params for k in params):
        yield "give min, max or both"
