"""The registry of rule kinds: every module in this folder is imported and registers its kinds
(`@register`), so a new kind is one new module here, plus its test and docs."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from quality_assets.rules.kind import KINDS, Kind
from quality_assets.rules.params import PARAM_CHECKS

if TYPE_CHECKING:
    from quality_assets.contract import Rule

# The families in the order the contract lists kinds; modules added later follow by name.
FAMILIES = ("columns", "keys", "partition", "expressions")
for _name in sorted((m.name for m in pkgutil.iter_modules(__path__)),
                    key=lambda name: (FAMILIES.index(name) if name in FAMILIES else len(FAMILIES), name)):
    importlib.import_module(f"{__name__}.{_name}")


def parameter_problems(kind: Kind, params: dict, columns: set[str]) -> list[str]:
    """Every problem with a rule's parameters (unknown and missing keys are the contract's);
    normalises shorthands in place (one column for a list of columns)."""
    problems: list[str] = []
    for key, type_name in kind.params.items():
        if key in params:
            problems.extend(PARAM_CHECKS[type_name](params, key, columns))
    problems.extend(kind.check(params))
    return problems


def referenced_datasets(rule: Rule) -> list[str]:
    """The other datasets a rule reads (their published tables)."""
    kind = KINDS.get(rule.kind)
    if kind is None:
        return []
    return [v for k, t in kind.params.items() if t == "dataset" and isinstance(v := rule.params.get(k), str)]


def describe_rule(rule: Rule) -> str:
    """One line for people: what the rule asks."""
    kind = KINDS.get(rule.kind)
    text = kind.describe(rule.params) if kind else rule.kind
    if rule.mostly is not None and kind is not None and kind.judges_rows:
        text += f" (mostly {rule.mostly:g})"
    return text
