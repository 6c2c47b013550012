"""Causes, not rows: a partition's flagged rows grouped by the reason that flags each (its
strongest feature and the direction or kind of the departure), with counts, shares and the three
best-ranked example rows; and the description of a flood (one reason touching a large share of
the partition), reported once as a partition-level change."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quality_assets.anomalies.explain import json_value
from quality_assets.anomalies.features import Feature, _fmt
from quality_assets.shapes import shapes

MAX_CAUSES = 20
EXAMPLES = 3
VALUES_KEPT = 2000  # numbers kept per cause to describe them (their median)


def _value(feature: Feature, batch: pa.RecordBatch, i: int):
    first = batch.column(feature.inputs[0])[i].as_py()
    if feature.signal in ("pair", "conditional", "combination"):
        second = batch.column(feature.inputs[1])[i].as_py()
        return {feature.columns[0]: json_value(second), feature.columns[1]: json_value(first)}
    return json_value(first)


def _condition(feature: Feature, value, p: float) -> str:
    signal, model = feature.signal, feature.model
    if signal in ("value", "date"):
        return "above" if value is not None and value > model.median else "below"
    if signal == "length":
        return "longer" if value is not None and len(value) > model.median else "shorter"
    if signal == "category":
        return "unseen" if model.never_seen(value) else "rare"
    if signal == "shape":
        shape = shapes(pa.array([value], pa.string()), feature.extra["coarse"])[0].as_py()
        return "unseen shape" if model.share(shape) == 0 else "rare shape"
    if signal == "null":
        return "null" if value is None or (isinstance(value, float) and math.isnan(value)) else "present"
    return {"duplicate": "duplicate", "period": "differs", "calendar": "outside"}.get(signal, "mismatch")


@dataclass
class _Cause:
    feature: Feature
    condition: str
    rows: int = 0
    labels: Counter = field(default_factory=Counter)  # unseen categories or shapes
    numbers: list[float] = field(default_factory=list)
    examples: list[tuple[int, dict]] = field(default_factory=list)  # (rank, example)


SAME_EVIDENCE = 10  # p-values within this factor tell the same story


class CauseTally:
    """Every flagged row counted under its strongest reason."""

    def __init__(self, model):
        self.model = model
        self.causes: dict[tuple[str, str], _Cause] = {}
        # a category's own feature, to name its value rather than its shape when both are unusual
        self.category = {f.columns[0]: j for j, f in enumerate(model.features) if f.signal == "category"}

    def add(self, batch: pa.RecordBatch, i: int, p: np.ndarray, rank: int) -> None:
        j = int(np.argmin(p))
        named = self.category.get(self.model.features[j].columns[0])
        if self.model.features[j].signal == "shape" and named is not None and p[named] <= SAME_EVIDENCE * p[j]:
            j = named
        feature = self.model.features[j]
        value = batch.column(feature.inputs[0])[i].as_py()
        condition = _condition(feature, value, float(p[j]))
        cause = self.causes.setdefault((feature.name, condition), _Cause(feature, condition))
        cause.rows += 1
        if feature.signal in ("category", "shape") and value is not None:
            label = value if feature.signal == "category" else shapes(
                pa.array([value], pa.string()), feature.extra["coarse"])[0].as_py()
            cause.labels[str(label)] += 1
        elif feature.signal == "value" and value is not None and len(cause.numbers) < VALUES_KEPT:
            cause.numbers.append(float(value))
        example = {"source_row": int(batch.column("_row")[i].as_py()),
                   "source_file": batch.column("_file")[i].as_py() if self.model.has_file else None,
                   "value": _value(feature, batch, i), "rank": rank}
        cause.examples.append((rank, example))
        cause.examples.sort(key=lambda e: e[0])
        del cause.examples[EXAMPLES:]


def _labels(counter: Counter, limit: int = 3) -> str:
    listed = ", ".join(f"{v!r} ({c:,})" for v, c in counter.most_common(limit))
    return listed + (f" and {len(counter) - limit:,} more" if len(counter) > limit else "")


def _ratio(values: list[float], median: float) -> str:
    if not values or not median or not math.isfinite(median):
        return ""
    ratio = float(np.median(values)) / median
    if not math.isfinite(ratio) or ratio == 0:
        return ""
    if ratio < 0:
        return ", of the opposite sign"
    return f", about {_fmt(round(ratio, 2 if abs(ratio) < 10 else 0))}x the typical value"


def describe(cause: _Cause) -> str:
    f, c, col = cause.feature, cause.condition, cause.feature.columns[0]
    where = {"moved": "the history at this partition's level", "partition": "this partition"}.get(
        f.extra.get("refit"), "the history")
    if f.signal == "value":
        return (f"{col} {c} its usual range (median {_fmt(f.model.median)}, {where} spans "
                f"{_fmt(f.model.raw_min)} to {_fmt(f.model.raw_max)}){_ratio(cause.numbers, f.model.median)}")
    if f.signal == "date":
        return f"{col} {'later' if c == 'above' else 'earlier'} than the partition's period allows"
    if f.signal == "length":
        return f"{col} {c} than usual (median length {_fmt(f.model.median)})"
    if f.signal == "category":
        return (f"{col} never seen before: {_labels(cause.labels)}" if c == "unseen"
                else f"{col} rare in {where}: {_labels(cause.labels)}")
    if f.signal == "shape":
        return (f"{col} in a shape never seen: {_labels(cause.labels)}" if c == "unseen shape"
                else f"{col} in a rare shape: {_labels(cause.labels)}")
    if f.signal == "null":
        nulls, n = f.model
        return (f"{col} null where {where} rarely is ({nulls / max(n, 1):.2%} null)" if c == "null"
                else f"{col} present where {where} is mostly null")
    if f.signal == "duplicate":
        return f"repeats the {'+'.join(f.columns)} of an earlier row of the partition"
    if f.signal == "calendar":
        return f"{col} outside the calendar's {f.model[0]}..{f.model[1]}"
    if f.signal == "period":
        return f"{col} differs from the partition's own value (one value per partition in the history)"
    if f.signal == "pair":
        return f"{col} does not fit {f.columns[1]} (they move together in the history)"
    if f.signal == "conditional":
        return f"{col} unusual for its {f.columns[1]}"
    return f"{col} and {f.columns[1]} in a combination rare or never seen together"


def summarise_causes(tally: CauseTally, rows: int) -> list[dict]:
    ranked = sorted(tally.causes.values(), key=lambda c: (-c.rows, c.examples[0][0] if c.examples else 0))
    out = []
    for cause in ranked[:MAX_CAUSES]:
        out.append({"level": "rows", "columns": list(cause.feature.columns), "signal": cause.feature.signal,
                    "condition": cause.condition, "rows": cause.rows, "share": cause.rows / rows if rows else 0.0,
                    "examples": [e for _, e in cause.examples], "description": describe(cause)})
    rest = ranked[MAX_CAUSES:]
    if rest:
        count = sum(c.rows for c in rest)
        out.append({"level": "rows", "columns": [], "signal": "other", "condition": "other", "rows": count,
                    "share": count / rows if rows else 0.0, "examples": [],
                    "description": f"{len(rest)} smaller causes"})
    return out


def describe_flood(feature: Feature, sign: int, count: int, rows: int, sample: pa.Table) -> dict:
    """One reason flagging a large share of the partition, as a partition-level finding."""
    col, signal, share = feature.columns[0], feature.signal, count / rows if rows else 0.0
    column = sample.column(feature.inputs[0]) if sample.num_rows else None
    text = f"{count:,} rows ({share:.0%}): "
    varied = bool(feature.extra.get("constant"))  # see scoring._floods
    if varied:
        one = feature.model.values[0].as_py() if signal == "category" else feature.model.median
        one = _fmt(one) if isinstance(one, int | float) else repr(one)
        text += (f"{col} varies for the first time (it held one value, {one}, in all the history's rows): "
                 "reported once, not judged (a constant history shows no spread to judge by)")
    elif signal in ("value", "date", "length") and column is not None:
        values = (pc.utf8_length(column) if signal == "length" else column).to_numpy(zero_copy_only=False)
        values = np.asarray(values, dtype=np.float64)
        here = float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")
        text += (f"{col} {'above' if sign > 0 else 'below'} the history's usual range "
                 f"(median {_fmt(here)} here, {_fmt(feature.model.median)} in the history")
        if signal == "value" and feature.model.median and math.isfinite(here):
            text += f", {_fmt(round(here / feature.model.median, 2))}x"
        text += ")"
    elif signal in ("category", "shape") and column is not None:
        labels = shapes(column, feature.extra["coarse"]) if signal == "shape" else column
        p = feature.model.p_values(labels)
        unusual = Counter(str(v) for v, q in zip(labels.to_pylist(), p, strict=True) if q < 0.01 and v is not None)
        text += f"{col} {'values' if signal == 'category' else 'shapes'} rare or never seen in the history"
        text += f": {_labels(unusual)}" if unusual else ""
    elif signal == "null":
        nulls, n = feature.model
        filled = nulls > n / 2  # the rows unlike a mostly empty history are the filled ones
        text += f"{col} {'filled' if filled else 'null'} (the history: {nulls / max(n, 1):.2%} null)"
    elif signal == "period":
        text += f"{col} differs from the partition's commonest value"
    else:
        text += f"{describe(_Cause(feature, 'mismatch'))}"
    if not varied:
        text += "; a partition-level change, reported once: rows are judged against this partition"
    # a column that was empty (or held one value) in its whole reference and carries values (or
    # varies) now: new data, not an alarm
    first = varied or (signal == "null" and feature.model[0] == feature.model[1])
    return {"level": "partition", "columns": list(feature.columns), "signal": signal, "first_values": first,
            "condition": {1: "above", -1: "below"}.get(sign, "changed"), "rows": count, "share": share,
            "examples": [], "description": text}


def describe_level(feature: Feature, here: float, values: np.ndarray, rows: int) -> dict:
    """A number whose partition sits away from its history, as one partition-level cause."""
    col, model = feature.columns[0], feature.model
    beyond = float(np.mean((values > model.raw_max) | (values < model.raw_min))) if values.size else 0.0
    ratio = f", {_fmt(round(here / model.median, 2))}x" if model.median and model.median > 0 and here > 0 else ""
    return {"level": "partition", "columns": [col], "signal": "value", "moved": True,
            "condition": "above" if here > model.median else "below", "rows": round(beyond * rows),
            "share": beyond, "examples": [],
            "description": (f"{col}'s level moved: median {_fmt(here)} here, {_fmt(model.median)} in the history"
                            f"{ratio}; {beyond:.0%} of rows outside the history's range; a partition-level change, "
                            "reported once: rows are judged from the partition's own level")}



def describe_groups(feature: Feature, groups: list[str], share: float, rows: int) -> dict:
    """Categories whose number moved as a whole, as one partition-level cause (no alarm: the
    column's metrics and drift judge the size of a change)."""
    col, given = feature.columns[0], feature.extra["given"].columns[0]
    if feature.signal == "pair":
        col = f"{col} against {feature.columns[1]}"
    shown = ", ".join(repr(g) for g in groups[:3]) + (f" and {len(groups) - 3} more" if len(groups) > 3 else "")
    return {"level": "partition", "columns": list(feature.columns), "signal": "conditional", "moved": True,
            "condition": "changed", "rows": round(share * rows), "share": share, "examples": [],
            "description": (f"{col} moved as a whole within {len(groups)} {given} value(s): {shown} "
                            f"({share:.0%} of rows); rows of each are judged from its own level here")}
