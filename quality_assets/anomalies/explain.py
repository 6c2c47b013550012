"""Why a row was flagged: the columns that explain it, in words a person can check."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from quality_assets.anomalies.features import TINY, Feature, _fmt
from quality_assets.anomalies.model import RowModel
from quality_assets.shapes import shapes

CONTRIBUTIONS = 3  # columns named in a flagged row's explanation

def json_value(value):
    """A value as JSON can hold it: infinities as text, dates as ISO strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def explain_row(model: RowModel, batch: pa.RecordBatch, i: int, p: np.ndarray, row_p: float, rank: int) -> dict:
    order = np.argsort(p, kind="stable")
    contributions = []
    for j in order[:CONTRIBUTIONS]:
        if p[j] >= 0.01 and contributions:
            break
        contributions.append(_contribution(model, model.features[j], batch, i, float(p[j])))
    row = {"_source_row": int(batch.column("_row")[i].as_py()), "p_value": row_p, "rank": rank,
           "score": round(-math.log10(max(row_p, TINY)), 4)}
    row["source_file"] = batch.column("_file")[i].as_py() if model.has_file else None
    row["explanation"] = {"score": row["score"], "p_value": row_p, "contributions": contributions}
    return row


def _contribution(model: RowModel, feature: Feature, batch: pa.RecordBatch, i: int, p: float) -> dict:
    value = batch.column(feature.inputs[0])[i].as_py()
    out = {"column": feature.columns[0], "signal": feature.signal, "p_value": p}
    if feature.signal == "null":
        nulls, n = feature.model
        share = nulls / n if n else 0.0
        is_null = value is None or (isinstance(value, float) and math.isnan(value))
        out["value"] = None if is_null else json_value(value)
        out["why"] = (f"null; {share:.2%} of the history is null" if is_null else
                      f"present, but {share:.2%} of the history is null")
    elif feature.signal == "value":
        out["value"] = json_value(value)
        out.update(feature.model.why(float(value)) if value is not None else {"why": "null"})
    elif feature.signal == "length":
        out["value"] = value
        out.update(feature.model.why(float(len(value))) if value is not None else {"why": "null"})
        out["why"] = f"length {out['why']}"
    elif feature.signal == "date":
        if model.daily:
            where = f"{_fmt(value / 86400)} days from the partition's day" if value is not None else "null"
            span = f"{_fmt(feature.model.raw_min / 86400)} to {_fmt(feature.model.raw_max / 86400)} days"
        else:
            where = f"{_fmt(value)} interquartile spans from the partition's median date" if value is not None else "null"
            span = f"{_fmt(feature.model.raw_min)} to {_fmt(feature.model.raw_max)} spans"
        out["value"] = where
        out["why"] = f"{where}; the history's partitions span {span} around their own"
    elif feature.signal == "category":
        share = feature.model.share(value)
        common = ", ".join(f"{v!r} {s:.0%}" for v, s in feature.model.top())
        out["value"] = json_value(value)
        out["why"] = (f"{value!r} never seen in {feature.model.n:,} history rows (most common: {common})"
                      if feature.model.never_seen(value) else
                      f"{value!r} seen only in earlier partitions where {feature.columns[0]} raised an alarm"
                      if share == 0 else f"{value!r} is rare: {share:.3%} of the history")
    elif feature.signal == "shape":
        original, value = value, shapes(pa.array([value], pa.string()), feature.extra["coarse"])[0].as_py()
        share = feature.model.share(value)
        common = ", ".join(f"{v!r} {s:.0%}" for v, s in feature.model.top(2))
        out["value"] = original
        out["shape"] = value
        out["why"] = (f"shape {value!r} never seen in the history ({common})" if share == 0
                      else f"shape {value!r} is rare: {share:.3%} of the history ({common})")
    elif feature.signal == "calendar":
        low, high, _ = feature.model
        out["value"] = json_value(value)
        out["why"] = f"{_fmt(value) if isinstance(value, float) else value} is not a {feature.columns[0]} ({low}..{high})"
    elif feature.signal == "period":
        own = model.columns[feature.columns[0]]
        out["value"] = json_value(batch.column(f"v{own.index}")[i].as_py()) if f"v{own.index}" in batch.schema.names else None
        out["why"] = (f"differs from the value most rows of this partition have in {feature.columns[0]} "
                      f"(one value per partition in the history)")
    elif feature.signal == "duplicate":
        key = feature.columns
        out["value"] = {k: json_value(batch.column(f"v{model.columns[k].index}")[i].as_py())
                        if f"v{model.columns[k].index}" in batch.schema.names else None for k in key}
        out["why"] = (f"repeats the {'+'.join(key)} of an earlier row of this partition; "
                      f"{feature.extra['duplicates']} duplicates in {feature.extra['rows']:,} history rows")
    elif feature.signal == "pair":
        x_feature, y_feature = feature.extra["x"], feature.extra["y"]
        x, y = value, batch.column(feature.inputs[1])[i].as_py()
        out["column"] = y_feature.columns[0]
        out["value"] = {y_feature.columns[0]: json_value(y), x_feature.columns[0]: json_value(x)}
        scale = "log " if y_feature.model.log or x_feature.model.log else ""
        out["why"] = (f"{y_feature.columns[0]}={_fmt(y) if isinstance(y, float) else y} does not fit "
                      f"{x_feature.columns[0]}={_fmt(x) if isinstance(x, float) else x}: in the history they move "
                      f"together ({scale}Spearman {feature.extra['rho']:+.2f}) and this residual is in the "
                      f"{p:.2g} tail")
        if "given" in feature.extra:  # judged within its category's own level
            given = feature.extra["given"]
            g = batch.column(feature.inputs[2])[i].as_py()
            out["value"][given.columns[0]] = json_value(g)
            out["why"] += (f" of {given.columns[0]}={g!r} (each {given.columns[0]} has its own level: "
                           f"{feature.extra['eta2']:.0%} of the residual's variance)")
    elif feature.signal == "conditional":
        given, y_feature = feature.extra["given"], feature.extra["y"]
        g, y = value, batch.column(feature.inputs[1])[i].as_py()
        index = int(given.model.index(pa.array([g], given.model.values.type))[0])
        centre = float(feature.extra["centre"][index])
        typical = math.exp(centre) if y_feature.model.log else centre
        out["column"] = y_feature.columns[0]
        out["value"] = {y_feature.columns[0]: json_value(y), given.columns[0]: json_value(g)}
        out["why"] = (f"{y_feature.columns[0]}={_fmt(y) if isinstance(y, float) else y} is unusual for "
                      f"{given.columns[0]}={g!r} (typical {_fmt(typical)} there; the category explains "
                      f"{feature.extra['eta2']:.0%} of its {'log ' if y_feature.model.log else ''}variance)")
    elif feature.signal == "combination":
        given, other = feature.extra["given"], feature.extra["other"]
        g, o = value, batch.column(feature.inputs[1])[i].as_py()
        ig = given.model.index(pa.array([g], given.model.values.type))[0]
        io = other.model.index(pa.array([o], other.model.values.type))[0]
        together = int(feature.extra["counts"][ig, io]) if ig >= 0 and io >= 0 else 0
        with_given = int(feature.extra["counts"][ig].sum()) if ig >= 0 else 0
        out["column"] = other.columns[0]
        out["value"] = {other.columns[0]: json_value(o), given.columns[0]: json_value(g)}
        usual = ""
        if ig >= 0:
            best = int(np.argmax(feature.extra["counts"][ig]))
            usual = (f"; usually {other.columns[0]}={other.model.values[best].as_py()!r} "
                     f"({feature.extra['counts'][ig, best] / max(with_given, 1):.0%})")
        out["why"] = (f"{other.columns[0]}={o!r} with {given.columns[0]}={g!r}: seen together in {together:,} of "
                      f"{with_given:,} history rows with {given.columns[0]}={g!r}{usual}")
    if feature.extra.get("refit") == "moved":
        out["why"] = (out["why"].replace("the history's range", "the history's range moved to this partition's level")
                      + "; the column's level changed as a whole in this partition")
    elif feature.extra.get("refit"):
        out["why"] = (out["why"].replace("the history", "this partition")
                      + "; judged against this partition, whose column changed as a whole")
    return out
