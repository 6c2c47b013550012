"""The profile stage: per-column statistics of a partition, kept as history in qa.column_profiles.

`qa.column_profiles` is long: one row per (dataset, partition, run, column, metric), every run
kept. Numeric metrics go in `value`; structured ones (semantic type, histogram, top values,
shapes, normality, alerts, distinct method, correlations) as JSON text in `detail`. Dataset-level
metrics have `column_name` NULL.

`TableProfile.to_dict()` and `read_profile()` return the same shape:

    {"dataset", "partition_key", ["run_id", "profiled_at"],
     "metrics": {"row_count", "column_count", "duplicate_rows", "bytes", "alert_count",
                 "max_null_share"},
     "correlations": {"pearson": {a: {b: r}}, "spearman": {...}, "columns_capped_at": n},
     "alerts": [{"alert", "column", "detail"}],            # dataset-level (e.g. duplicate rows)
     "columns": [{"name", "index", "metrics": {metric: value | None},
                  "semantic_type": {"type", "storage_type", "stored_as_text", "mixed_types"},
                  "distinct_method", "histogram", "top_values", "shapes", "normality",
                  "monotonicity", "alerts"}]}
"""

from quality_assets.profile.history import (
           ensure_profile_tables,
           metric_history,
           read_profile,
           write_profile,
)
from quality_assets.profile.kernels import normality_test
from quality_assets.profile.model import COLUMN_METRICS, ColumnProfile, TableProfile
from quality_assets.profile.stage import profile_partition
from quality_assets.profile.state import GAUSSIAN_TESTS, ProfileOptions

__all__ = ["COLUMN_METRICS", "GAUSSIAN_TESTS", "ColumnProfile", "ProfileOptions", "TableProfile", "ensure_profile_tables",
           "metric_history", "normality_test", "profile_partition", "read_profile", "write_profile"]
