"""The YAML contract: which datasets exist, where their files land and in what format, their
columns, key and rules.

- `model.py`: Contract, Dataset, Column, Rule (and the blocks' models from `blocks.py`).
- `blocks.py`: the fixed-shape blocks (landing, csv, daily, a column) as pydantic models.
- `lines.py`: YAML with line numbers, and the list of problems.
- `parse.py`: loading and the checks across fields and datasets.
- `document.py`: writing a contract document back as YAML (`suggest`, `compare` on files).
"""

from quality_assets.contract.blocks import CsvOptions, DailySpec
from quality_assets.contract.model import Column, Contract, ContractError, Dataset, Rule
from quality_assets.contract.parse import (
    DATASET_NAME,
    RULE_KINDS,
    load_contract,
    parse_contract,
)
from quality_assets.vocabulary import COLUMN_TYPES, duckdb_type, parse_duration

__all__ = [
    "COLUMN_TYPES", "DATASET_NAME", "RULE_KINDS", "Column", "Contract", "ContractError",
    "CsvOptions", "DailySpec", "Dataset", "Rule", "duckdb_type", "load_contract", "parse_contract", "parse_duration",
]
