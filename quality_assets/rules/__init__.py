"""The rules stage: the contract's rules evaluated on one partition of `raw."<dataset>"`.

- `kinds/`: the rule kinds, one module per family, each kind one entry with its parameters,
  description, SQL plan and judgement (`kind.py` says what a kind is, `params.py` how its
  parameters are checked).
- `evaluate.py`: the plans of all rules in as few scans of the partition as possible.
- `results.py`: what was found, and how rules map to Dagster asset checks.
- `tables.py`: `qa.check_results`, `qa.failing_rows` and `qa.validations`, replaced per partition
  in one transaction.
- `sql.py`: user SQL (`sql.predicate`, `assert.expression`, `conditional.when/then`), the only text
  from the contract that runs as SQL: one expression (no `;`, no comments, balanced
  parentheses, checked with DuckDB's tokenizer), placed inside parentheses in a SELECT.
"""

from quality_assets.rules.evaluate import SAMPLE_ROWS, evaluate_partition, validate
from quality_assets.rules.kind import META_COLUMNS
from quality_assets.rules.kinds import KINDS, describe_rule
from quality_assets.rules.results import (
    MAX_CHECKS_PER_ASSET,
    CheckGroup,
    Evaluation,
    RuleResult,
    check_groups,
    check_name,
    rules_fingerprint,
)
from quality_assets.rules.sql import RuleSQLError, user_sql_problem
from quality_assets.rules.tables import FAILING_ROWS_CAP, ensure_tables

__all__ = [
    "FAILING_ROWS_CAP", "KINDS", "MAX_CHECKS_PER_ASSET", "META_COLUMNS", "SAMPLE_ROWS", "CheckGroup", "Evaluation",
    "RuleResult", "RuleSQLError", "check_groups", "check_name", "describe_rule", "ensure_tables",
    "evaluate_partition", "rules_fingerprint", "user_sql_problem", "validate",
]
