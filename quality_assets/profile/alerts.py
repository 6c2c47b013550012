"""A column's alerts (ydata-profiling's kinds and, where it has one, its thresholds)."""

from __future__ import annotations

import math
from typing import Any

from quality_assets.profile.state import CATEGORICAL_MAX_DISTINCT, Column

# alert thresholds (ydata-profiling's defaults where it has one)
NEAR_CONSTANT_SHARE = 0.95
HIGH_NULL_SHARE = 0.5
HIGH_CARDINALITY_DISTINCT = 50
HIGH_CARDINALITY_UNIQUENESS = 0.5
SKEWED_ABS = 3.0
IMBALANCE = 0.5
MANY_ZEROS_SHARE = 0.1


def column_alerts(col: Column, s: dict, m: dict, details: dict) -> list[dict]:
    alerts: list[dict] = []
    rows, nn = int(m["row_count"]), int(s["nn"])
    distinct = int(m["distinct_count"] or 0)
    semantic = details.get("semantic_type") or {}

    def add(alert: str, detail: str) -> None:
        alerts.append({"alert": alert, "detail": detail})

    null_share = m["null_share"] or 0.0
    if rows and nn == 0:
        add("high_null_share", "every value is null")
    elif null_share >= HIGH_NULL_SHARE:
        add("high_null_share", f"{null_share:.1%} of values are null")
    if nn > 1 and distinct == 1:
        add("constant", f"one value ({_short(details['top_values'][0]['value']) if details.get('top_values') else '?'})")
    elif nn > 1 and (m.get("top_value_share") or 0) >= NEAR_CONSTANT_SHARE:
        add("near_constant", f"the top value is {m['top_value_share']:.1%} of the values")
    if nn > 1 and distinct == nn and details["distinct_method"] == "exact":
        add("unique", "every non-null value is distinct")
    elif semantic.get("type") in ("categorical", "text") and distinct > HIGH_CARDINALITY_DISTINCT \
            and nn and distinct / nn >= HIGH_CARDINALITY_UNIQUENESS:
        add("high_cardinality", f"{distinct} distinct values ({details['distinct_method']})")
    skew = m.get("skewness")
    if skew is not None and math.isfinite(skew) and abs(skew) > SKEWED_ABS:
        add("skewed", f"skewness {skew:.2f}")
    balance = s.get("balance")
    if balance is not None and 2 <= distinct <= CATEGORICAL_MAX_DISTINCT and 1 - balance > IMBALANCE \
            and semantic.get("type") in ("categorical", "boolean", "integer"):
        add("imbalanced", f"value entropy {balance:.2f} of its maximum")
    zeros = m.get("zeros")
    if zeros and nn and zeros / nn >= MANY_ZEROS_SHARE:
        add("many_zeros", f"{zeros / nn:.1%} of the values are 0")
    if semantic.get("mixed_types"):
        shares = semantic.get("parse_shares", {})
        add("mixed_types", f"{shares.get(semantic.get('majority'), 0):.1%} parse as {semantic.get('majority')}, "
                           "the rest do not")
    if semantic.get("stored_as_text"):
        if semantic["type"] in ("integer", "float"):
            add("numbers_stored_as_text", f"every value parses as {semantic['type']}")
        else:
            add(f"{semantic['type']}_stored_as_text", f"every value parses as {semantic['type']}")
    return alerts


def _short(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


