"""`<dataset>/validation`: the contract's rules on each partition of raw, as blocking asset checks.

The rules are evaluated by this asset (results in qa.check_results, failing rows in
qa.failing_rows) and reported as its checks, emitted with its materialization. The checks live on
`validation` rather than on `raw` so that a failing error rule holds back only
`<dataset>/published` (the one asset downstream of `validation`): the profile, anomaly and report
stages downstream of `raw` still run on bad data, which is when a producer needs the report.
"""

import json
import re

import dagster as dg

from quality_assets.contract import Dataset
from quality_assets.defs.common import (
    RAW,
    VALIDATION,
    markdown_table,
    partition_check,
    partition_results,
    stage_asset,
    stage_key,
)
from quality_assets.defs.resources import WarehouseResource
from quality_assets.rules import (
    FAILING_ROWS_CAP,
    SAMPLE_ROWS,
    CheckGroup,
    Evaluation,
    RuleResult,
    check_groups,
    describe_rule,
    validate,
)


def build_validation_asset(dataset: Dataset, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    key = stage_key(dataset, VALIDATION)
    groups = check_groups(dataset.rules)
    specs = [
        partition_check(group.name, key, partitions, blocking=group.blocking, description=group.description())
        for group in groups
    ]

    @stage_asset(
        dataset, VALIDATION, partitions,
        deps=[stage_key(dataset, RAW)],
        check_specs=specs,
        kinds={"duckdb"},
        description=(
            f"The contract's {len(dataset.rules)} rule(s) evaluated on the partition of raw.\"{dataset.name}\": "
            "results in qa.check_results, failing rows in qa.failing_rows. Error rules block "
            f"{dataset.name}/published."
        ),
        metadata={"dataset": dataset.name, "rules": len(dataset.rules), "checks": len(groups),
                  "failing_rows_cap": FAILING_ROWS_CAP},
    )
    def validation(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        evaluations = validate(warehouse.get(), dataset, list(context.partition_keys), context.run.run_id)
        for evaluation in evaluations:
            blocking = evaluation.blocking_failures
            if blocking:
                context.log.error(f"{dataset.name}/published {evaluation.partition_key!r} is blocked by "
                                  + ", ".join(f"{r.rule.name} ({r.message})" for r in blocking))
        blocking = {group.name for group in groups if group.blocking}
        return partition_results(
            context, key, evaluations, lambda e: e.partition_key, validation_metadata,
            lambda some: [group_result(group, list(some)) for group in groups],
            lambda all_: {"partitions": len(all_),
                          "rules_failed": sum(len(e.failed) for e in all_),
                          "blocked_partitions": dg.MetadataValue.json(
                              {e.partition_key: [r.rule.name for r in e.blocking_failures]
                               for e in all_ if e.blocking_failures})},
            blocking=lambda check: check in blocking)

    return validation


def group_result(group: CheckGroup, evaluations: list[Evaluation]) -> dg.AssetCheckResult:
    """The check's outcome over one partition (or a range: failed if any partition failed)."""
    names = {rule.name for rule in group.rules}
    results = [r for e in evaluations for r in e.results if r.rule.name in names]
    failed = [r for r in results if not r.passed]
    severity = dg.AssetCheckSeverity.ERROR if group.severity == "error" else dg.AssetCheckSeverity.WARN
    rows = sum(e.rows for e in evaluations)
    failing = sum(r.failing_rows or 0 for r in results)
    metadata: dict = {
        "failed_rules": ", ".join(dict.fromkeys(r.rule.name for r in failed)),
        "rows_evaluated": rows,
        "failing_rows": failing,
        "failing_share": round(failing / rows, 6) if rows else 0.0,
        "failing_rows_stored": sum(r.stored for r in results),
        "failing_rows_table": "qa.failing_rows",
    }
    if len(group.rules) == 1 and len(evaluations) == 1:
        [result] = results
        metadata.update(_rule_metadata(result))
        if result.failing_rows is None:  # row count, freshness, schema, assert: no rows to blame
            for name in ("failing_rows", "failing_share", "failing_rows_stored", "failing_rows_table"):
                metadata.pop(name)
    else:
        metadata["message"] = (f"{len(set(r.rule.name for r in failed))} of {len(group.rules)} rules failed: "
                               + "; ".join(f"{r.rule.name}: {r.message}" for r in failed[:10])
                               if failed else f"all {len(group.rules)} rules passed")
        metadata["results"] = dg.MetadataValue.md(markdown_table([
            {"rule": r.rule.name, "partition": e.partition_key, "passed": r.passed,
             "failing rows": r.failing_rows if r.failing_rows is not None else "", "message": r.message}
            for e in evaluations for r in e.results if r.rule.name in names
        ], max_chars=120))
        sample = [{"rule": r.rule.name, **row} for r in failed for row in _sample_rows(r)][:SAMPLE_ROWS]
        if sample:
            metadata["failing_rows_sample"] = dg.MetadataValue.md(markdown_table(sample))
        metadata["sql"] = dg.MetadataValue.md("\n\n".join(
            f"{r.rule.name.replace('`', '')}:\n{sql_block(r.sql)}" for r in (failed or results)[:10] if r.sql))
    return dg.AssetCheckResult(check_name=group.name, passed=not failed, severity=severity, metadata=metadata)


def _rule_metadata(result: RuleResult) -> dict:
    rule = result.rule
    metadata: dict = {
        "rule": rule.name,
        "kind": rule.kind,
        "severity": rule.severity,
        "asks": describe_rule(rule),
        "message": result.message,
    }
    if rule.mostly is not None:
        metadata["mostly"] = rule.mostly
    if result.observed is not None and result.failing_rows is None:
        observed = json.loads(json.dumps(result.observed, default=str))
        # a row count or an assertion's value is a plain number or boolean: MetadataValue.json takes no scalar
        metadata["observed"] = dg.MetadataValue.json(observed) if isinstance(observed, (dict, list)) else observed
    if result.error:
        metadata["error"] = result.error
    if result.sql:
        metadata["sql"] = dg.MetadataValue.md(sql_block(result.sql))
    sample = _sample_rows(result)
    if sample:
        metadata["failing_rows_sample"] = dg.MetadataValue.md(markdown_table(sample))
    return metadata


def sql_block(sql: str) -> str:
    """A fenced code block that the SQL's own backticks cannot close."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", sql)), default=0))
    return f"{fence}sql\n{sql}\n{fence}"


def _sample_rows(result: RuleResult) -> list[dict]:
    """Failing rows flattened for a table: source row (and file), key columns, the rule's columns."""
    rows = []
    for item in result.sample:
        row = {"source_row": item["source_row"]}
        if "source_file" in item:
            row["source_file"] = item["source_file"]
        for name, value in (item.get("key") or {}).items():
            row[f"key {name}"] = value
        for name, value in (item.get("values") or {}).items():
            row[name] = value
        rows.append(row)
    return rows


def validation_metadata(evaluation: Evaluation) -> dict:
    blocking = evaluation.blocking_failures
    return {
        "rows_evaluated": evaluation.rows,
        "rules": len(evaluation.results),
        "rules_failed": len(evaluation.failed),
        "blocked_by": ", ".join(r.rule.name for r in blocking),
        "publish": (f"blocked by {', '.join(r.rule.name for r in blocking)}" if blocking
                    else "all error rules passed: published may be promoted"),
        "results": dg.MetadataValue.md(markdown_table([
            {"rule": r.rule.name, "check": r.check_name, "severity": r.rule.severity, "passed": r.passed,
             "failing rows": r.failing_rows if r.failing_rows is not None else "", "message": r.message}
            for r in evaluation.results
        ], max_chars=120)) if evaluation.results else "no rules",
        "scans": evaluation.scans,
        "duration_s": round(evaluation.seconds, 3),
    }
