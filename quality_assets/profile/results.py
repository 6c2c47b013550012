"""A column's profile and semantic type assembled from what the steps found, and the partition's
correlations, alerts and metrics."""

from __future__ import annotations

from typing import Any

from quality_assets.profile.alerts import column_alerts
from quality_assets.profile.kernels import finite
from quality_assets.profile.model import ColumnProfile, TableProfile
from quality_assets.profile.state import (
    CATEGORICAL_MAX_DISTINCT,
    CATEGORICAL_MAX_UNIQUENESS,
    KEY_NAME,
    MIXED_MIN_SHARE,
    QUANTILES,
    Column,
    Profiler,
    source_bytes,
)


def column_profile(state: Profiler, col: Column) -> ColumnProfile:
    s = state.stats[col.alias]
    rows = state.rows
    nn = int(s["nn"])
    nan = int(s.get("nan") or 0)
    m: dict[str, float | None] = {
        "row_count": rows, "null_count": rows - nn, "null_share": (rows - nn) / rows if rows else None,
        "blank_count": s.get("blank", 0) or 0, "nan_count": nan, "inf_count": s.get("inf", 0) or 0,
    }
    if s["exact"]:
        distinct, method = int(s.get("distinct") or 0), "exact"
    else:
        distinct, method = min(int(s["hll"]), nn), "hll"
    m["distinct_count"] = distinct
    m["uniqueness"] = distinct / nn if nn else None
    top = [dict(t) for t in (s.get("top") or [])]
    m["top_value_share"] = top[0]["count"] / nn if top and nn else None
    details: dict[str, Any] = {"distinct_method": method, "top_values": top}
    if col.numeric:
        q = s.get("q") or [None] * len(QUANTILES)
        m.update({
            "min": s.get("min"), "max": s.get("max"), "mean": s.get("mean"), "std": s.get("std"),
            "sum": s.get("sum"), "zeros": s.get("zeros"), "negatives": s.get("neg"),
            "skewness": s.get("skew"), "kurtosis": s.get("kurt"), "mad": s.get("mad"),
        })
        for (metric, _), value in zip(QUANTILES, q, strict=True):
            m[metric] = value
        m["iqr"] = q[4] - q[2] if q[4] is not None and q[2] is not None else None
    elif col.kind == "temporal":
        m.update(min=s.get("min"), max=s.get("max"))
        m["future_share"] = s["future"] / nn if nn else None
        m["before_floor_share"] = s["old"] / nn if nn else None
    elif col.kind in ("text", "other"):
        m.update(length_min=s.get("lmin"), length_mean=s.get("lmean"), length_max=s.get("lmax"))
    if s.get("edges") is not None and s.get("hist") is not None:
        counts = [0] * (len(s["edges"]) - 1)
        for bin_, count in s["hist"].items():
            counts[int(bin_)] = int(count)
        details["histogram"] = {"edges": s["edges"], "counts": counts}
    if s.get("shapes") is not None:
        total = s.get("shapes_total") or nn
        details["shapes"] = [{"shape": x["shape"], "share": x["count"] / total} for x in s["shapes"]] if total else []
    if col.alias in state.normality:
        details["normality"] = state.normality[col.alias]
    if "monotonicity" in s or col.numeric or col.kind == "temporal":
        details["monotonicity"] = s.get("monotonicity", "none")
    details["semantic_type"] = semantic_type(state, col, s, m)
    details["alerts"] = column_alerts(col, s, m, details)
    return ColumnProfile(col.name, col.index, {k: finite(v) for k, v in m.items()}, details)

def semantic_type(state: Profiler, col: Column, s: dict, m: dict) -> dict:
    nn = int(s["nn"])
    distinct = int(m["distinct_count"] or 0)
    out = {"type": "text", "storage_type": col.storage, "stored_as_text": False, "mixed_types": False}
    unique = nn > 1 and distinct == nn
    if col.kind == "boolean":
        out["type"] = "boolean"
    elif col.kind == "temporal":
        out["type"] = "datetime"
    elif col.kind == "float":
        out["type"] = "float"
    elif col.kind == "integer":
        out["type"] = "identifier" if unique and (KEY_NAME.search(col.name) or
                                                  s.get("monotonicity", "").startswith("strictly")) else "integer"
    else:
        present = nn - int(s.get("blank") or 0)
        shares = {}
        if col.kind == "text" and present > 0:
            shares = {"number": s["asnum"] / present, "datetime": s["asdate"] / present,
                      "boolean": s["asbool"] / present}
            out["parse_shares"] = {k: round(v, 6) for k, v in shares.items()}
        if shares and shares["number"] >= 1.0:
            out.update(type="integer" if s["asint"] >= present else "float", stored_as_text=True)
        elif shares and shares["datetime"] >= 1.0:
            out.update(type="datetime", stored_as_text=True)
        elif shares and shares["boolean"] >= 1.0:
            out.update(type="boolean", stored_as_text=True)
        else:
            if shares and max(shares.values()) >= MIXED_MIN_SHARE:
                out["mixed_types"] = True
                out["majority"] = max(shares, key=shares.get)
            if unique and (m.get("length_max") or 0) <= 64 and (KEY_NAME.search(col.name) or
                                                                len(s.get("shapes") or []) <= 3):
                out["type"] = "identifier"
            elif distinct <= CATEGORICAL_MAX_DISTINCT or (nn and distinct / nn <= CATEGORICAL_MAX_UNIQUENESS
                                                           and (m.get("length_mean") or 0) < 40):
                out["type"] = "categorical"
            else:
                out["type"] = "text"
    return out

def dataset_level(state: Profiler, profile: TableProfile) -> None:
    names = {c.alias: c.name for c in state.columns}
    pearson: dict[str, dict[str, float | None]] = {}
    spearman: dict[str, dict[str, float | None]] = {}
    for (a, b), r in state.pearson.items():
        pearson.setdefault(names[a], {})[names[b]] = r
    for (a, b), r in state.spearman.items():
        spearman.setdefault(names[a], {})[names[b]] = r
    profile.correlations = {
        "pearson": pearson, "spearman": spearman,
        "columns": [c.name for c in state.corr_columns],
        "columns_capped_at": state.opts.correlation_max_columns, "capped": state.corr_capped,
        "spearman_sample": min(state.sample_size, state.opts.correlation_sample),
        "pearson_sample": state.sample_size,
    }
    if state.duplicates:
        profile.alerts.append({"alert": "duplicates",
                               "detail": f"{state.duplicates} rows repeat an earlier row exactly"})
    null_shares = [c.metrics["null_share"] for c in profile.columns if c.metrics.get("null_share") is not None]
    profile.metrics.update(
        row_count=state.rows, column_count=len(state.columns), duplicate_rows=state.duplicates,
        bytes=source_bytes(state.con, profile.dataset, profile.partition_key),
        max_null_share=max(null_shares) if null_shares else None,
    )
    profile.metrics["alert_count"] = len(profile.all_alerts())
