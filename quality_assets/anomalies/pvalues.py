"""p-values of the row detector's features for a batch of rows, and the values they judge."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quality_assets.anomalies.features import Categories, Feature
from quality_assets.anomalies.model import RowModel, numbers
from quality_assets.shapes import shapes


def category_index(categories: Categories, batch: pa.RecordBatch, name: str, indexes: dict | None) -> np.ndarray:
    """Categories.index of a batch's column, found once per batch (`indexes`) for the category and
    the pairs and numbers within categories that share it."""
    if indexes is None:
        return categories.index(batch.column(name))
    key = (id(categories), name)
    if key not in indexes:
        indexes[key] = categories.index(batch.column(name))
    return indexes[key]


def feature_p_values(feature: Feature, batch: pa.RecordBatch, indexes: dict | None = None) -> np.ndarray:
    """p-values of one feature for the rows of a batch (`indexes`: see category_index)."""
    column = batch.column(feature.inputs[0])
    if feature.signal == "null":
        nulls_ref, n = feature.model
        values = column
        is_null = np.asarray(pc.is_null(values, nan_is_null=True).to_numpy(zero_copy_only=False), dtype=bool) \
            if pa.types.is_floating(values.type) else np.asarray(pc.is_null(values).to_numpy(zero_copy_only=False), dtype=bool)
        p_null, p_present = (nulls_ref + 1) / (n + 2), (n - nulls_ref + 1) / (n + 2)
        return np.where(is_null, p_null, p_present).clip(max=1.0)
    if feature.signal in ("value", "date", "pair", "conditional"):
        return feature.model.p_values(judged_values(feature, batch, indexes))
    if feature.signal == "length":
        return feature.model.p_values(numbers(pc.utf8_length(column)))
    if feature.signal == "shape":
        return shape_p_values(feature, column)
    if feature.signal == "category":
        return feature.model.p_values_at(category_index(feature.model, batch, feature.inputs[0], indexes))
    if feature.signal == "calendar":
        low, high, p = feature.model
        values = numbers(column)
        with np.errstate(invalid="ignore"):
            outside = (values < low) | (values > high) | (values != np.floor(values))
        return np.where(outside & np.isfinite(values), p, 1.0)
    if feature.signal in ("duplicate", "period"):
        flags = np.asarray(column.to_numpy(zero_copy_only=False), dtype=bool)
        return np.where(flags, feature.model, 1.0)
    if feature.signal == "combination":
        return pair_p_values(feature, batch, indexes)[0]
    raise ValueError(f"unknown signal {feature.signal}")


def pair_p_values(feature: Feature, batch: pa.RecordBatch,
                  indexes: dict | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """A combination's p-values, its rows whose given value was never seen with this partner, and
    the expected number of them (the history's rate of new pairs over the rows with a known given
    value), for counting them as a cluster."""
    given, other = feature.extra["given"].model, feature.extra["other"].model
    ig = category_index(given, batch, feature.inputs[0], indexes)
    io = category_index(other, batch, feature.inputs[1], indexes)
    # the pair table with two more rows and columns, which the indexes -2 (null) and -1 (a value
    # the reference lacks) reach from the end: one look-up per row
    rows, columns = feature.model.shape
    never = np.zeros((rows + 2, columns + 2), dtype=bool)
    never[:rows, :columns] = feature.extra["counts"] == 0
    never[:rows, -1] = True  # a known given value with a partner the reference lacks
    table = np.ones((rows + 2, columns + 2), dtype=np.float64)
    table[:rows, :columns] = feature.model
    table[never] = feature.extra["unseen"]
    new = never[ig, io]
    return table[ig, io], new, float(feature.extra["unseen"] * (ig >= 0).sum())


def shape_p_values(feature: Feature, column: pa.Array) -> np.ndarray:
    """p of each value's character shape; for a category, only values it has never had are shaped
    (the category's own p judges the rest, and shaping every row is the costly part)."""
    known = feature.extra.get("known")
    if known is None:
        return feature.model.p_values(shapes(column, feature.extra["coarse"]))
    p = np.ones(len(column), dtype=np.float64)
    new = np.asarray(pc.and_(pc.is_valid(column), pc.invert(pc.is_in(column, value_set=known)))
                     .to_numpy(zero_copy_only=False), dtype=bool)
    if new.any():
        p[new] = feature.model.p_values(shapes(column.filter(pa.array(new)), feature.extra["coarse"]))
    return p


def judged_values(feature: Feature, batch: pa.RecordBatch, indexes: dict | None = None) -> np.ndarray:
    """The number a numeric feature's model judges: the value, the residual of a pair (NaN where
    either is missing: p = 1), or the value's distance from its category's centre."""
    column = batch.column(feature.inputs[0])
    if feature.signal in ("value", "date"):
        return numbers(column)
    y = _transformed(feature.extra["y"], numbers(batch.column(feature.inputs[1])))
    if feature.signal == "pair":
        x = _transformed(feature.extra["x"], numbers(column))
        residual = y - (feature.extra["slope"] * x + feature.extra["intercept"])
        if "given" not in feature.extra:
            return residual
        # within its category: a value the reference lacks takes the last (overall) level
        index = category_index(feature.extra["given"].model, batch, feature.inputs[2], indexes)
        groups = np.where(index >= 0, index, feature.extra["centre"].size - 1)
        return (residual - feature.extra["centre"][groups]) / feature.extra["scale"][groups]
    index = category_index(feature.extra["given"].model, batch, feature.inputs[0], indexes)
    known = index >= 0
    z = np.full(index.size, np.nan)
    z[known] = (y[known] - feature.extra["centre"][index[known]]) / feature.extra["scale"][index[known]]
    return z


def _transformed(feature: Feature, values: np.ndarray) -> np.ndarray:
    if feature.model.log:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(values > 0, np.log(np.where(values > 0, values, 1)), np.nan)
    return values


def batch_p_matrix(model: RowModel, batch: pa.RecordBatch, new_pairs: dict | None = None,
                   out: np.ndarray | None = None) -> np.ndarray:
    """Every feature's p-values for the batch's rows; `new_pairs`, when given, receives each
    combination's rows with a pair never seen and their expected number (see pair_p_values).
    `out`: a column-major buffer of at least the batch's rows, reused from batch to batch (a
    fresh matrix of every batch is tens of megabytes of new pages to fault in); the matrix
    returned is a view of it, valid until the next call."""
    rows, width = batch.num_rows, len(model.features)
    if out is None or out.shape[0] < rows or out.shape[1] != width:
        # one contiguous column per feature: writing a column of a row-major matrix strides over every row
        out = np.empty((rows, width), dtype=np.float64, order="F")
    matrix = out[:rows]
    indexes: dict = {}
    for j, feature in enumerate(model.features):
        if new_pairs is not None and feature.signal == "combination":
            matrix[:, j], *new_pairs[j] = pair_p_values(feature, batch, indexes)
        else:
            matrix[:, j] = feature_p_values(feature, batch, indexes)
    return matrix


def direction(feature: Feature, batch: pa.RecordBatch) -> np.ndarray:
    """+1 above the reference's median, -1 below, 0 for signals without a direction."""
    if feature.signal in ("value", "date"):
        values = numbers(batch.column(feature.inputs[0]))
    elif feature.signal == "length":
        values = numbers(pc.utf8_length(batch.column(feature.inputs[0])))
    else:
        return np.zeros(batch.num_rows, dtype=np.int8)
    return np.where(values > feature.model.median, 1, -1).astype(np.int8)
