"""Writing contract documents: a dataset's loading part as it stands, drafted columns merged into
it, and the YAML text (used by `suggest` and by `compare` on two files)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from quality_assets.contract.model import Dataset


def dataset_name_for(path: Path) -> str:
    """A valid dataset name from a file's name (`2026 Events-v2.csv` -> `ds_2026_events_v2`)."""
    stem = path.name.split(".")[0].lower()
    name = re.sub(r"[^a-z0-9_]+", "_", stem).strip("_") or "data"
    if not name[0].isalpha():
        name = f"ds_{name}"
    return name[:63]


def template_spec(dataset: Dataset, columns: str | None = None, base: Path | None = None) -> dict:
    """The loading part of an existing dataset's contract (landing, format, csv, partitioning); with
    `columns="names"` also its columns' names and aliases (so headers map as they do now), no types."""
    base = (base or Path.cwd()).resolve()
    csv = {k: v for k, v in dataset.csv.__dict__.items()
           if v is not None and v != getattr(type(dataset.csv)(), k)}
    if "null_values" in csv:
        csv["null_values"] = list(csv["null_values"])
    spec: dict[str, Any] = {}
    if dataset.description:
        spec["description"] = dataset.description
    spec["landing"] = {"path": os.path.relpath(dataset.landing_dir, base), "glob": dataset.glob}
    if dataset.recursive:
        spec["landing"]["recursive"] = True
    if dataset.format != "auto":
        spec["format"] = dataset.format
    if csv:
        spec["csv"] = csv
    if dataset.partitioning != "file":
        spec["partitioning"] = dataset.partitioning
        spec["daily"] = {k: v for k, v in dataset.daily.__dict__.items() if v is not None}
    if columns == "names" and dataset.columns:
        spec["columns"] = {c.name: {"aliases": list(c.aliases)} if c.aliases else {} for c in dataset.columns}
    return spec


def merge_columns(block: dict, template: Dataset | None) -> dict:
    """Drafted columns, keeping an existing dataset's aliases, descriptions and formats."""
    if template is None:
        return block
    columns = {}
    for name, kind in block["columns"].items():
        existing = template.column(name)
        spec: dict[str, Any] = {"type": kind} if isinstance(kind, str) else {}
        if existing is not None:
            if existing.aliases:
                spec["aliases"] = list(existing.aliases)
            if existing.description:
                spec["description"] = existing.description
            if existing.format:
                spec["format"] = existing.format
        columns[name] = spec if set(spec) != {"type"} else kind
    return {**block, "columns": columns}


class _Dumper(yaml.SafeDumper):
    pass


def dump_contract(document: dict) -> str:
    """A contract document as YAML text, keys in the order given."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120)
