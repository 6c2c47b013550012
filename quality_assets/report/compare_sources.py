"""The two sides of a comparison: two partitions read from the warehouse, or two files loaded
as the pipeline would into a throw-away one."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from quality_assets.anomalies import read_anomalies
from quality_assets.catalog import latest_load_files
from quality_assets.contract import parse_contract
from quality_assets.contract.document import dataset_name_for, dump_contract, template_spec
from quality_assets.ingest import load_file
from quality_assets.profile import profile_partition, read_profile
from quality_assets.report.compare import Comparison, Side, compare_profiles
from quality_assets.warehouse import Warehouse


def compare_partitions(warehouse: Warehouse, dataset: str, key_a: str, key_b: str) -> Comparison:
    """Two partitions of a dataset: stored profiles (computed from raw when missing) and B's drift."""
    with warehouse.connect() as con:
        sides = []
        for key in (key_a, key_b):
            load = _newest_load(con, dataset, key)
            profile = read_profile(con, dataset, key)
            profiled_now = profile is None
            if profile is None:
                if load is None:
                    raise LookupError(f"dataset {dataset!r} has no partition {key!r} in the warehouse")
                profile = profile_partition(con, dataset, key).to_dict()
            sides.append(Side(key, profile, load, profiled_now))
        anomalies = read_anomalies(con, dataset, key_b)
    drift = anomalies.get("drift") or []
    references = {d.get("reference_partition") for d in drift}
    if not drift:
        note = f"No drift results for B ({key_b}): the anomalies stage has not run on it, or it had no reference."
    elif references == {key_a}:
        note = "B's drift against A, from the anomalies stage."
    else:
        note = (f"B's drift results from the anomalies stage, against its own reference "
                f"({', '.join(sorted(str(r) for r in references))}), not necessarily A.")
    return compare_profiles(dataset, sides[0], sides[1], drift, note)


def compare_files(path_a: Path, path_b: Path, template=None) -> Comparison:
    """Two files loaded as the pipeline would (a dataset's format and options when `template` is
    given), profiled in a throw-away warehouse."""
    name = template.name if template else dataset_name_for(path_a)
    spec = template_spec(template) if template else {"landing": str(path_a.parent)}
    source = parse_contract(dump_contract({"datasets": {name: spec}}), path_a.parent / "quality.yaml").dataset(name)
    work = Path(tempfile.mkdtemp(prefix="qa-compare-"))
    try:
        warehouse = Warehouse(work / "compare.duckdb", lock_timeout_s=30)
        sides = []
        for label, path in (("A", path_a), ("B", path_b)):
            key = f"{label}/{path.name}"
            audit = load_file(warehouse, path, source, key, f"compare-{uuid.uuid4().hex[:8]}", force=True)
            if audit.status == "rejected":
                raise ValueError(f"{path}: {audit.message}")
            with warehouse.connect() as con:
                load = _newest_load(con, name, key)
                profile = profile_partition(con, source, key).to_dict()
            sides.append(Side(path.name if path_a.name != path_b.name else str(path), profile, load, True))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return compare_profiles(name, sides[0], sides[1], [],
                            "Drift is computed by the anomalies stage for partitions in the warehouse; "
                            "for two files the metric deltas above are the comparison.")


def _newest_load(con, dataset: str, key: str) -> dict | None:
    """The partition's newest qa.files row that changed it."""
    rows = latest_load_files(con, dataset, key)
    return rows[-1] if rows else None
