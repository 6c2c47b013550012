"""Kinds written as SQL over a row or the partition: a predicate every row holds (`sql`), a
comparison (`compare`), a condition under a condition (`conditional`) and an assertion over
the whole partition (`assert`)."""

from __future__ import annotations

from quality_assets.rules.kind import Judging, Kind, Plan, RowKind, column, register
from quality_assets.rules.sql import identifiers_in, sql_literal, user_expression
from quality_assets.warehouse import quote_ident


@register
class Predicate(RowKind):
    name = "sql"
    params = {"predicate": "sql"}
    required = ("predicate",)

    def describe(self, params: dict) -> str:
        return f"every row: {params['predicate']}"

    def plan(self, plan: Plan, types: dict[str, str], published: dict) -> None:
        predicate = plan.rule.params["predicate"]
        plan.fail = f"NOT coalesce({user_expression(predicate)}, true)"
        plan.subject = identifiers_in(predicate, list(types))


@register
class Assert(Kind):
    name = "assert"
    params = {"expression": "sql"}
    required = ("expression",)
    judges_rows = False
    # A user's count(DISTINCT ...) in the main scan would switch DuckDB's whole aggregation to its
    # slower path (10M rows, 30 rules: 0.72s -> 1.67s).
    own_scan = True

    def describe(self, params: dict) -> str:
        return f"assert {params['expression']}"

    def needs_table(self, params: dict) -> bool:
        return True

    def plan(self, plan: Plan, types: dict[str, str], published: dict) -> None:
        plan.aggregate = user_expression(plan.rule.params["expression"])
        plan.subject = identifiers_in(plan.rule.params["expression"], list(types))

    def scanned(self, plan: Plan, value: tuple) -> None:
        if value[0] is not None and not isinstance(value[0], bool):
            plan.error = (f"the expression gave {value[0]!r}, not true or false: write a condition such as "
                          f"'sum(amount) > 0'")

    def judge(self, result, plan: Plan, judging: Judging) -> None:
        value = judging.values[plan.index][0]
        result.observed = value
        result.passed = value is True
        result.message = f"{plan.rule.params['expression']} is {'NULL' if value is None else str(value).lower()}"

    def sql(self, plan: Plan, table: str, where: str) -> str:
        return f"SELECT {plan.aggregate} FROM {table} WHERE {where}"


@register
class Compare(RowKind):
    name = "compare"
    params = {"left": "column", "op": "op", "right": "value"}
    required = ("left", "op", "right")

    def describe(self, params: dict) -> str:
        return f"{params['left']} {params['op']} {params['right']}"

    def plan(self, plan: Plan, types: dict[str, str], published: dict) -> None:
        p = plan.rule.params
        left, left_type = column(p["left"], types)
        if isinstance(p["right"], str) and p["right"] in types:
            right = quote_ident(p["right"])
            plan.subject = [p["left"], p["right"]]
        else:
            right = sql_literal(p["right"], left_type)
            plan.literals.append(right)
            plan.subject = [p["left"]]
        op = "=" if p["op"] == "==" else p["op"]
        plan.fail = f"NOT coalesce({left} {op} {right}, true)"


@register
class Conditional(RowKind):
    name = "conditional"
    params = {"when": "sql", "then": "sql"}
    required = ("when", "then")

    def describe(self, params: dict) -> str:
        return f"when {params['when']} then {params['then']}"

    def plan(self, plan: Plan, types: dict[str, str], published: dict) -> None:
        p = plan.rule.params
        when, then = user_expression(p["when"]), user_expression(p["then"])
        plan.fail = f"coalesce({when}, false) AND NOT coalesce({then}, true)"
        plan.subject = identifiers_in(f"{p['when']} {p['then']}", list(types))
