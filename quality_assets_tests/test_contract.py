"""The contract loader: every mistake a user can make is reported with the file, the line, the
dataset and the field, all problems at once; a valid contract yields the expected Dataset."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from quality_assets.contract import (
    RULE_KINDS,
    Column,
    ContractError,
    CsvOptions,
    load_contract,
    parse_duration,
)

VALID_HEAD = """\
version: 1
datasets:
  orders:
    columns:
      id: bigint
      amount: double
      status: string
"""


def write_contract(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "quality.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def contract_problems(tmp_path: Path, text: str) -> tuple[Path, list[str]]:
    """Load a contract that must fail; returns its resolved path and the problems listed."""
    path = write_contract(tmp_path, text)
    with pytest.raises(ContractError) as info:
        load_contract(path)
    assert info.value.path == str(path.resolve())
    assert str(info.value) == "\n".join(info.value.problems)
    return path.resolve(), info.value.problems


def line_of(text: str, marker: str) -> int:
    """1-based number of the last line holding `marker` (for a duplicate, the repeat), found independently."""
    hits = [n for n, line in enumerate(textwrap.dedent(text).splitlines(), start=1) if marker in line]
    return hits[-1]


# One case per mistake: (id, contract text, marker on the offending line, where, what the message says)
SINGLE_MISTAKES = [
    ("unknown_top_key", VALID_HEAD + "colour: blue\n", "colour:", "colour", "unknown key"),
    ("unknown_dataset_key", VALID_HEAD + "    landingx: drops\n", "landingx", "dataset 'orders'",
     "unknown key 'landingx'"),
    ("unknown_column_key", VALID_HEAD + "      note: {type: string, colour: red}\n", "colour",
     "dataset 'orders', columns.note", "unknown key 'colour'"),
    ("unknown_csv_key", VALID_HEAD + "    csv:\n      delimiter: '|'\n      seperator: ';'\n", "seperator",
     "dataset 'orders', csv", "unknown key 'seperator'"),
    ("unknown_rule_key", VALID_HEAD + "    rules:\n      - not_null: id\n        priority: high\n", "priority",
     "dataset 'orders', rules[1]", "unknown key 'priority'"),
    ("unknown_rule_param", VALID_HEAD + "    rules:\n      - range: {column: amount, minimum: 0}\n", "minimum",
     "dataset 'orders', rules[1] (range)", "unknown key 'minimum'"),
    ("unknown_rule_kind", VALID_HEAD + "    rules:\n      - not_nul: id\n", "not_nul",
     "dataset 'orders', rules[1]", "expected exactly one rule kind"),
    ("unknown_type", VALID_HEAD + "      price: money\n", "price", "dataset 'orders', columns.price.type",
     "unknown type 'money'"),
    ("unknown_type_in_mapping", VALID_HEAD + "      price:\n        type: decimal(40, 2)\n", "type: decimal",
     "dataset 'orders', columns.price.type", "unknown type 'decimal(40, 2)'"),
    ("bad_severity", VALID_HEAD + "    rules:\n      - not_null: id\n        severity: fatal\n", "severity",
     "dataset 'orders', rules[1]", "severity must be 'warn' or 'error', got 'fatal'"),
    ("mostly_above_one", VALID_HEAD + "    rules:\n      - not_null: id\n        mostly: 1.5\n", "mostly",
     "dataset 'orders', rules[1]", "mostly must be a share between 0 and 1, got 1.5"),
    ("mostly_zero", VALID_HEAD + "    rules:\n      - not_null: id\n        mostly: 0\n", "mostly",
     "dataset 'orders', rules[1]", "mostly must be a share between 0 and 1, got 0"),
    ("mostly_negative", VALID_HEAD + "    rules:\n      - not_null: id\n        mostly: -0.2\n", "mostly",
     "dataset 'orders', rules[1]", "got -0.2"),
    ("mostly_text", VALID_HEAD + "    rules:\n      - not_null: id\n        mostly: most\n", "mostly",
     "dataset 'orders', rules[1]", "got 'most'"),
    ("bad_regex", VALID_HEAD + "    rules:\n      - regex: {column: status, pattern: '([a-z'}\n", "regex",
     "dataset 'orders', rules[1] (regex)", "invalid regular expression"),
    ("unknown_rule_column", VALID_HEAD + "    rules:\n      - not_null: ghost\n", "ghost",
     "dataset 'orders', rules[1] (not_null)", "unknown column 'ghost'"),
    ("unknown_unique_column", VALID_HEAD + "    rules:\n      - unique: [id, ghost]\n", "ghost",
     "dataset 'orders', rules[1] (unique)", "unknown column 'ghost'"),
    ("unknown_primary_key", VALID_HEAD + "    primary_key: [id, order_no]\n", "primary_key",
     "dataset 'orders', primary_key", "unknown column 'order_no'"),
    ("unknown_reference", VALID_HEAD + "    rules:\n      - references: {column: id, dataset: clients}\n",
     "references", "dataset 'orders', rule 'references_id'", "references unknown dataset 'clients'"),
    ("bad_compare_op", VALID_HEAD + "    rules:\n      - compare: {left: amount, op: '=>', right: '0'}\n",
     "compare", "dataset 'orders', rules[1] (compare)", "op must be one of"),
    ("bad_duration", VALID_HEAD + "    rules:\n      - freshness: 3 days\n", "freshness",
     "dataset 'orders', rules[1] (freshness)", "max_age: expected a duration"),
    ("missing_rule_field", VALID_HEAD + "    rules:\n      - accepted_values: {column: status}\n", "accepted_values",
     "dataset 'orders', rules[1] (accepted_values)", "missing 'values'"),
    ("values_not_a_list", VALID_HEAD + "    rules:\n      - accepted_values: {column: status, values: paid}\n",
     "accepted_values", "dataset 'orders', rules[1] (accepted_values)", "values: expected a list"),
    ("bad_delimiter", VALID_HEAD + "    csv:\n      delimiter: ',,'\n", "delimiter",
     "dataset 'orders', csv.delimiter", "expected a single character, got ',,'"),
    ("bad_encoding", VALID_HEAD + "    csv:\n      encoding: klingon\n", "encoding",
     "dataset 'orders', csv.encoding", "unknown encoding 'klingon'"),
    ("bad_format", VALID_HEAD + "    format: xml\n", "format", "dataset 'orders', format", "unknown format 'xml'"),
    ("bad_dataset_name", VALID_HEAD + "  Order-Lines:\n    columns: {id: bigint}\n", "Order-Lines",
     "dataset 'Order-Lines'", "name must be lower-case letters"),
    ("duplicate_dataset", VALID_HEAD + "  orders:\n    columns: {id: bigint}\n", "  orders:",
     "dataset 'orders'", "duplicate key 'orders' (first given on line 3)"),
    ("duplicate_column", VALID_HEAD + "      amount: bigint\n", "amount:",
     "dataset 'orders', columns.amount", "duplicate key 'amount' (first given on line 6)"),
    ("bad_version", VALID_HEAD.replace("version: 1", "version: 2"), "version", "version",
     "unsupported contract version 2"),
]


@pytest.mark.parametrize(
    "text, marker, where, message",
    [case[1:] for case in SINGLE_MISTAKES],
    ids=[case[0] for case in SINGLE_MISTAKES],
)
def test_each_mistake_names_file_line_dataset_and_field(tmp_path, text, marker, where, message):
    path, problems = contract_problems(tmp_path, text)
    line = line_of(text, marker)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:{line}: {where}: "), problems[0]
    assert message in problems[0]


@pytest.mark.parametrize("rule, where, message", [
    ("regex: {column: status, pattern: [a, b]}", "rules[1] (regex)", "pattern: expected text"),
    ("references: {column: id, dataset: [orders]}", "rules[1] (references)", "dataset: expected text"),
    ("unique: {columns: {id: 1}}", "rules[1] (unique)", "columns: expected a column name or a list"),
    ("unique: [[id]]", "rules[1] (unique)", "columns: expected a column name or a list"),
    ("not_null: id\n        name: [1]", "rules[1]", "name: expected text"),
    ("sql: {predicate: {amount: 0}}", "rules[1] (sql)", "predicate: expected text"),
], ids=["pattern", "dataset", "columns_mapping", "columns_nested", "name", "predicate"])
def test_wrongly_typed_rule_values_are_problems_not_tracebacks(tmp_path, rule, where, message):
    text = VALID_HEAD + f"    rules:\n      - {rule}\n"
    path, problems = contract_problems(tmp_path, text)
    assert len(problems) == 1, problems
    line = line_of(text, rule.splitlines()[-1].strip())  # the rule's line, or its 'name' key's
    assert problems[0].startswith(f"{path}:{line}: dataset 'orders', {where}: {message}"), problems[0]


def test_invalid_yaml_syntax_names_the_line(tmp_path):
    text = VALID_HEAD + "    rules:\n      - not_null: [id\n      - unique: id\n"
    path, problems = contract_problems(tmp_path, text)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:"), problems[0]
    assert "YAML: cannot parse" in problems[0]
    line = int(problems[0][len(str(path)) + 1:].split(":", 1)[0])
    assert line_of(text, "not_null") <= line <= line_of(text, "unique") + 1  # at or just after the open bracket


@pytest.mark.parametrize("bad, hint", [
    ('      glob: "*.csv', "a quoted value opened on line 8 runs on to line 28: is its closing quote missing?"),
    ("      glob: '*.csv", "a quoted value opened on line 8 runs on to line"),
    ("      glob: [a, b", "flow sequence opened here is still open on line 9"),
    ("      glob: {a: b", "flow mapping opened here is still open on line 9"),
], ids=["double-quote", "single-quote", "bracket", "brace"])
def test_a_quote_or_bracket_left_open_is_reported_where_it_opens(tmp_path, bad, hint):
    from quality_assets.demo import DEMO_CONTRACT

    lines = DEMO_CONTRACT.splitlines()
    assert lines[7] == '      glob: "*.csv"'
    lines[7] = bad
    path, problems = contract_problems(tmp_path, "\n".join(lines) + "\n")
    assert len(problems) == 1 and problems[0].startswith(f"{path}:8: YAML: cannot parse: "), problems
    assert hint in problems[0]


def test_tab_indentation_is_a_yaml_error_not_a_traceback(tmp_path):
    path, problems = contract_problems(tmp_path, "version: 1\ndatasets:\n\torders: {}\n")
    assert problems[0].startswith(f"{path}:3: YAML: cannot parse")


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nowhere" / "quality.yaml"
    with pytest.raises(ContractError) as info:
        load_contract(path)
    assert str(path) in info.value.problems[0]
    assert "not found" in info.value.problems[0]


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "quality.yaml"
    path.write_bytes(b"version: 1\ndatasets:\n  caf\xe9: {}\n")
    with pytest.raises(ContractError) as info:
        load_contract(path)
    assert str(path) in info.value.problems[0] and "not UTF-8" in info.value.problems[0]


@pytest.mark.parametrize("text", ["", "- orders\n- customers\n", "datasets: {}\n", "datasets: [orders]\n"],
                         ids=["empty", "list", "no_datasets", "datasets_list"])
def test_contract_without_datasets(tmp_path, text):
    _, problems = contract_problems(tmp_path, text)
    assert len(problems) == 1
    assert "datasets" in problems[0]


def test_all_problems_are_listed_at_once(tmp_path):
    text = """\
        version: 1
        extra_top: 1
        datasets:
          orders:
            landingx: foo
            csv:
              bogus: 1
            columns:
              id: {type: bigint, colour: red}
              amount: money
              amount: double
            primary_key: [id, nope]
            rules:
              - not_null: ghost
              - range: {column: amount, min: 0}
                severity: fatal
                mostly: 1.5
              - regex: {column: id, pattern: "([a-z"}
              - references: {column: id, dataset: nowhere}
          Bad-Name:
            columns: {a: string}
          customers:
            columns: {id: strng}
    """
    path, problems = contract_problems(tmp_path, text)
    expected = [
        (line_of(text, "extra_top"), "extra_top", "unknown key"),
        (line_of(text, "landingx"), "dataset 'orders'", "unknown key 'landingx'"),
        (line_of(text, "bogus"), "dataset 'orders', csv", "unknown key 'bogus'"),
        (line_of(text, "colour"), "dataset 'orders', columns.id", "unknown key 'colour'"),
        (line_of(text, "money"), "dataset 'orders', columns.amount.type", "unknown type 'money'"),
        (line_of(text, "amount: double"), "dataset 'orders', columns.amount", "duplicate key 'amount'"),
        (line_of(text, "primary_key"), "dataset 'orders', primary_key", "unknown column 'nope'"),
        (line_of(text, "ghost"), "dataset 'orders', rules[1] (not_null)", "unknown column 'ghost'"),
        (line_of(text, "severity"), "dataset 'orders', rules[2]", "severity must be"),
        (line_of(text, "mostly"), "dataset 'orders', rules[2]", "mostly must be"),
        (line_of(text, "regex"), "dataset 'orders', rules[3] (regex)", "invalid regular expression"),
        (line_of(text, "Bad-Name"), "dataset 'Bad-Name'", "name must be"),
        (line_of(text, "strng"), "dataset 'customers', columns.id.type", "unknown type 'strng'"),
    ]
    # checked across datasets, after each one is parsed, even though orders itself has problems
    expected.append((line_of(text, "references"), "dataset 'orders', rule 'references_id'",
                     "references unknown dataset 'nowhere'"))
    for line, where, message in expected:
        prefix = f"{path}:{line}: {where}: "
        assert any(p.startswith(prefix) and message in p for p in problems), (prefix, message, problems)
    assert len(problems) == len(expected), problems


def test_reference_to_a_declared_but_invalid_dataset_is_not_reported_as_unknown(tmp_path):
    text = """\
        datasets:
          orders:
            columns: {customer_id: bigint}
            rules:
              - references: {column: customer_id, dataset: customers}
          customers:
            columns: {customer_id: bigintt}
    """
    _, problems = contract_problems(tmp_path, text)
    assert len(problems) == 1, problems
    assert "dataset 'customers', columns.customer_id.type: unknown type 'bigintt'" in problems[0]


def test_unknown_reference_is_reported_with_the_rule_line(tmp_path):
    text = """\
        datasets:
          orders:
            columns: {customer_id: bigint}
            rules:
              - not_null: customer_id
              - references: {column: customer_id, dataset: clients}
          customers:
            columns: {customer_id: bigint}
    """
    path, problems = contract_problems(tmp_path, text)
    assert problems == [
        f"{path}:{line_of(text, 'references')}: dataset 'orders', rule 'references_customer_id': "
        "references unknown dataset 'clients'"
    ]


FULL_CONTRACT = """\
version: 1
datasets:
  customers:
    columns: {customer_id: bigint, email: string}
  orders:
    description: |
      Orders from the shop.
    landing: {path: drops/orders, glob: "*.csv", recursive: true}
    format: csv
    csv:
      delimiter: "\\t"
      quote: "'"
      escape: "\\\\"
      header: false
      encoding: cp1252
      null_values: [NA, ""]
      max_line_bytes: 4096
      date_format: "%d/%m/%Y"
      timestamp_format: "%d/%m/%Y %H:%M"
      skip_rows: 2
      comment: "#"
    columns:
      order_id: {type: integer, aliases: [OrderID, order-id], description: the key}
      customer_id: bigint
      order_date: {type: date, format: "%d/%m/%Y"}
      amount: decimal(12, 2)
      status: string
      note:
    primary_key: order_id
    rules:
      - not_null: order_id
      - unique: order_id
      - accepted_values: {column: status, values: [paid, shipped]}
      - range: {column: amount, min: 0, max: 1000, inclusive: true}
        severity: warn
        mostly: 0.99
      - regex: {column: status, pattern: "^[a-z]+$"}
      - length: {column: status, min: 1, max: 20}
      - type: {column: note, type: string}
      - row_count: {min: 1, max: 100000}
      - row_count_change: {max_drop: 0.5}
      - json: note
      - freshness: {max_age: 36h, column: order_date}
      - schema: {required: [order_id], allow_extra: false, types: {order_id: bigint}}
      - sql: {predicate: "amount >= 0"}
        name: amount_positive
        description: no negative amounts
      - assert: "order_id > 0"
      - compare: {left: amount, op: ">=", right: "0"}
      - conditional: {when: "status = 'paid'", then: "amount > 0"}
      - references: {column: customer_id, dataset: customers, to_column: customer_id}
    anomalies: {contamination: 0.01}
    allow_extra_columns: false
"""


def test_valid_contract_yields_the_expected_datasets(tmp_path):
    path = write_contract(tmp_path, FULL_CONTRACT)
    contract = load_contract(path)
    assert [d.name for d in contract.datasets] == ["customers", "orders"]
    orders = contract.dataset("orders")
    assert orders.description == "Orders from the shop."
    assert orders.landing_dir == (tmp_path / "drops" / "orders").resolve()
    assert (orders.glob, orders.recursive, orders.format) == ("*.csv", True, "csv")
    assert orders.csv == CsvOptions(
        delimiter="\t", quote="'", escape="\\", header=False, encoding="cp1252", null_values=("NA", ""),
        max_line_bytes=4096, date_format="%d/%m/%Y", timestamp_format="%d/%m/%Y %H:%M", skip_rows=2, comment="#",
    )
    assert orders.columns == (
        Column("order_id", "BIGINT", ("OrderID", "order-id"), "the key"),
        Column("customer_id", "BIGINT"),
        Column("order_date", "DATE", format="%d/%m/%Y"),
        Column("amount", "DECIMAL(12,2)"),
        Column("status", "VARCHAR"),
        Column("note", None),
    )
    assert orders.alias_map()["orderid"] == "order_id" and orders.alias_map()["order-id"] == "order_id"
    assert orders.primary_key == ("order_id",)
    assert orders.anomalies == {"contamination": 0.01}
    assert orders.allow_extra_columns is False
    assert {rule.kind for rule in orders.rules} == set(RULE_KINDS)  # every kind parses
    rules = {rule.kind: rule for rule in orders.rules}
    assert rules["unique"].params == {"columns": ["order_id"]}  # shorthand expanded
    assert rules["not_null"].params == {"column": "order_id"} and rules["not_null"].name == "not_null_order_id"
    assert rules["range"].severity == "warn" and rules["range"].mostly == 0.99
    assert rules["range"].params == {"column": "amount", "min": 0, "max": 1000, "inclusive": True}
    assert rules["sql"].name == "amount_positive" and rules["sql"].description == "no negative amounts"
    assert rules["assert"].params == {"expression": "order_id > 0"}
    assert rules["freshness"].params == {"max_age": "36h", "column": "order_date"}
    assert rules["references"].params["dataset"] == "customers"
    assert all(rule.severity == "error" for rule in orders.rules if rule.kind != "range")
    assert rules["regex"].line == line_of(FULL_CONTRACT, "- regex")
    assert len({rule.name for rule in orders.rules}) == len(orders.rules)  # names are unique


def test_defaults_and_landing_folder_shorthand(tmp_path):
    path = write_contract(tmp_path, "datasets:\n  events:\n    landing: incoming/events\n")
    events = load_contract(path).dataset("events")
    assert events.landing_dir == (tmp_path / "incoming" / "events").resolve()
    assert (events.format, events.glob, events.partitioning, events.columns, events.rules) == ("auto", "*", "file", (), ())
    assert events.csv == CsvOptions()


def test_same_rule_twice_gets_distinct_names(tmp_path):
    path = write_contract(tmp_path, VALID_HEAD + "    rules:\n      - not_null: id\n      - not_null: id\n")
    names = [rule.name for rule in load_contract(path).dataset("orders").rules]
    assert len(set(names)) == 2 and names[0] == "not_null_id"


def test_fingerprint_changes_with_what_changes_loading(tmp_path):
    base = load_contract(write_contract(tmp_path, VALID_HEAD)).dataset("orders")
    retyped = load_contract(write_contract(tmp_path, VALID_HEAD.replace("amount: double", "amount: string"))).dataset("orders")
    with_rule = load_contract(write_contract(tmp_path, VALID_HEAD + "    rules:\n      - not_null: id\n")).dataset("orders")
    assert base.fingerprint() != retyped.fingerprint()
    assert base.fingerprint() == with_rule.fingerprint()  # rules do not change how a file loads


def test_unknown_dataset_lookup_lists_the_known_ones(tmp_path):
    contract = load_contract(write_contract(tmp_path, VALID_HEAD))
    with pytest.raises(KeyError, match="known: orders"):
        contract.dataset("order")


@pytest.mark.parametrize("text, seconds", [("36h", 129600), ("2d", 172800), ("90m", 5400), ("1.5w", 907200),
                                           ("10s", 10), ("soon", None), ("3 days", None), ("", None)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds
