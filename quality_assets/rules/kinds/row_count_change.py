"""`row_count_change`: the partition's row count against the partition validated before it (the
previous day for daily datasets, else the previous load), as shares: `max_drop: 0.5` fails when
fewer than half the rows arrived, `max_rise: 1` when more than twice as many."""

from __future__ import annotations

from quality_assets.rules.history import previous_validation
from quality_assets.rules.kind import Judging, Kind, Plan, register


@register
class RowCountChange(Kind):
    name = "row_count_change"
    params = {"max_drop": "share", "max_rise": "share"}
    judges_rows = False

    def check(self, params: dict):
        if all(params.get(k) is None for k in self.params) and all(k in self.params for k in params):
            yield "give max_drop, max_rise or both"
        drop = params.get("max_drop")
        if isinstance(drop, (int, float)) and not isinstance(drop, bool) and drop > 1:
            yield f"max_drop: a drop is at most 1 (100% of the rows), got {drop!r}"

    def describe(self, params: dict) -> str:
        limits = [f"{what} at most {params[key]:.0%}" for key, what in (("max_drop", "falls"), ("max_rise", "rises"))
                  if params.get(key) is not None]
        return "row count " + " and ".join(limits) + " against the previous partition"

    def judge(self, result, plan: Plan, judging: Judging) -> None:
        rows = judging.evaluation.rows
        previous = previous_validation(judging.con, judging.dataset, judging.evaluation)
        if previous is None or previous.rows is None:
            result.passed, result.observed = True, {"rows": rows, "previous_rows": None}
            result.message = f"{rows:,} rows; no previous partition to compare with"
            return
        before = previous.rows
        change = (rows - before) / before if before else (0.0 if rows == 0 else float("inf"))
        max_drop, max_rise = plan.rule.params.get("max_drop"), plan.rule.params.get("max_rise")
        too_few = max_drop is not None and -change > max_drop + 1e-12
        too_many = max_rise is not None and change > max_rise + 1e-12
        result.passed = not (too_few or too_many)
        result.observed = {"rows": rows, "previous_rows": before, "previous_partition": previous.partition_key,
                           "change": round(change, 6) if change != float("inf") else None}
        shown = "from none" if change == float("inf") else f"{change:+.1%}"
        limit = (f"; max_drop {max_drop:.0%}" if too_few else f"; max_rise {max_rise:.0%}" if too_many else "")
        result.message = (f"{rows:,} rows against {before:,} in partition {previous.partition_key!r} "
                          f"({shown}){limit}")

    def sql(self, plan: Plan, table: str, where: str) -> str:
        return f"SELECT count(*) FROM {table} WHERE {where}"
