"""Text columns cast to their declared or inferred types; values that do not fit are quarantined.
Integers are whole-number text only: DuckDB's own cast would round `1.5` to 2.
"""

from __future__ import annotations

from quality_assets.contract import Dataset
from quality_assets.ingest.audit import QUARANTINE_LINE_CAP
from quality_assets.ingest.quarantine import cast_error_code
from quality_assets.warehouse import quote_ident, quote_literal

INTEGER_TYPES = ("BIGINT", "INTEGER", "SMALLINT")


STRICT_INTEGER = r"^\s*[-+]?[0-9]+\s*$"
FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")


def strict_integer_sql(text: str, integer_type: str) -> str:
    """SQL for the integer a text holds, NULL unless it is whole-number text (STRICT_INTEGER) in
    range: DuckDB's cast alone rounds '1.5' and reads '1_000', '1e3' and '0x10'. A value the cast
    gives back as the same text is whole already (checked first: DuckDB skips the regular
    expression for the rows where it holds, most of them)."""
    cast = f"TRY_CAST({text} AS {integer_type})"
    return (f"CASE WHEN CAST({cast} AS VARCHAR) = {text} "
            f"OR regexp_full_match({text}, {quote_literal(STRICT_INTEGER)}) THEN {cast} END")


def failure_code_sql(text: str, column_type: str) -> str:
    """SQL for the quarantine code of a value (its text) that failed its column's cast: a whole
    number past the integer type's range or a number past DOUBLE's is E_NUMERIC_RANGE."""
    code = cast_error_code(column_type)
    if column_type in INTEGER_TYPES:
        beyond = f"regexp_full_match({text}, {quote_literal(STRICT_INTEGER)})"
    elif column_type in FLOAT_TYPES:
        beyond = f"coalesce(isinf(TRY_CAST({text} AS DOUBLE)), false)"
    else:
        return quote_literal(code)
    return f"CASE WHEN {beyond} THEN 'E_NUMERIC_RANGE' ELSE {quote_literal(code)} END"


def number_failure(text: str, column_type: str) -> tuple[str, str]:
    """SQL for (code, message) of a number that failed its column's strict cast (text: its text)."""
    code = failure_code_sql(text, column_type)
    return code, (f"CASE WHEN {code} = 'E_NUMERIC_RANGE' THEN left({text}, 200) || ' is out of range for {column_type}' "
                  f"ELSE 'cannot cast ' || left({text}, 200) || ' to {column_type} (not a whole number)' END")


def failure_message_sql(text: str, column_type: str) -> str:
    """SQL for the message of that failure."""
    plain = f"'cannot cast ' || left({text}, 200) || ' to {column_type}'"
    if column_type not in INTEGER_TYPES + FLOAT_TYPES:
        return plain
    return (f"CASE WHEN {failure_code_sql(text, column_type)} = 'E_NUMERIC_RANGE' "
            f"THEN left({text}, 200) || ' is out of range for {column_type}' ELSE {plain} END")


INFER_ORDER = ("BIGINT", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP")


def cast_text_rows(con, dataset: Dataset, targets: list[str], table: str = "text_rows",
                    date_format: str | None = None) -> dict[str, str]:
    """Cast text columns to their declared (or inferred) types; failing rows go to quarantine.

    `date_format` is the file's sniffed date format, used when the contract names none.
    """
    declared = {c.name: c.type for c in dataset.columns if c.type}
    source_types = {row[0]: row[1] for row in con.execute(f"DESCRIBE {table}").fetchall()}
    types = {}
    to_infer = [t for t in targets if t not in declared and source_types.get(t) == "VARCHAR"]
    inferred = _infer_types(con, table, to_infer, dataset, date_format)
    for name in targets:
        types[name] = declared.get(name) or inferred.get(name) or source_types[name]
    casts, failures = [], []
    for name in targets:
        expr = _cast_expr(quote_ident(name), source_types[name], types[name], dataset, date_format)
        casts.append(f"{expr} AS {quote_ident(name)}")
        if expr != quote_ident(name):
            # An empty text (a quoted "") has no value in a typed column: NULL, not a failure.
            present = f"NULLIF(CAST({quote_ident(name)} AS VARCHAR), '')" if source_types[name] == "VARCHAR" else quote_ident(name)
            failures.append((name, f"({present} IS NOT NULL AND {expr} IS NULL)"))
    con.execute(
        f"CREATE TABLE rows AS SELECT _source_row, {', '.join(casts) or '1 AS _empty'} FROM {table}"
        + (f" WHERE NOT ({' OR '.join(f for _, f in failures)})" if failures else "")
        + " ORDER BY _source_row"
    )
    if failures:
        def case(then) -> str:  # the first failing column's `then(name)`
            return "CASE " + " ".join(f"WHEN {cond} THEN {then(name)}" for name, cond in failures) + " END"

        first_failure = case(quote_literal)
        code_case = case(lambda name: failure_code_sql(f"trim(CAST({quote_ident(name)} AS VARCHAR))", types[name]))
        value_case = case(lambda name: f"CAST({quote_ident(name)} AS VARCHAR)")
        message_case = case(lambda name: failure_message_sql(f"CAST({quote_ident(name)} AS VARCHAR)", types[name]))
        raw = "_raw_line" if "_raw_line" in source_types else "CAST(to_json(t) AS VARCHAR)"
        line = "_line" if "_line" in source_types else "NULL"
        con.execute(
            f"INSERT INTO quarantine SELECT _source_row, {line}, {first_failure}, {code_case}, "
            f"{message_case}, "
            f"left({value_case}, 1000), left({raw}, {QUARANTINE_LINE_CAP}), strlen({raw}) "
            f"FROM {table} t WHERE {' OR '.join(f for _, f in failures)}"
        )
    return {row[0]: row[1] for row in con.execute("DESCRIBE rows").fetchall()}


def _cast_expr(column_sql: str, source_type: str, target_type: str, dataset: Dataset,
               date_format: str | None = None) -> str:
    if source_type == target_type:
        return column_sql
    text = f"trim(CAST({column_sql} AS VARCHAR))" if source_type == "VARCHAR" else column_sql
    date_format = dataset.csv.date_format or (date_format if date_format != "%Y-%m-%d" else None)
    if source_type == "VARCHAR" and target_type == "DATE" and date_format:
        return f"CAST(try_strptime({text}, {quote_literal(date_format)}) AS DATE)"
    if source_type == "VARCHAR" and target_type.startswith("TIMESTAMP") and dataset.csv.timestamp_format:
        return f"try_strptime({text}, {quote_literal(dataset.csv.timestamp_format)})"
    if target_type in FLOAT_TYPES:
        # 1e400 reads as infinity: a number the type cannot hold, not a value to keep.
        cast = f"TRY_CAST({text} AS {target_type})"
        return f"CASE WHEN NOT isinf({cast}) THEN {cast} END"
    if source_type == "VARCHAR" and target_type in INTEGER_TYPES:
        # TRY_CAST would round '1.5' to 2: only whole-number text becomes an integer.
        return f"CASE WHEN regexp_full_match({text}, {quote_literal(INTEGER_TEXT)}) THEN TRY_CAST({text} AS {target_type}) END"
    return f"TRY_CAST({text} AS {target_type})"


INTEGER_TEXT = r"[+-]?[0-9]+"


LEADING_ZERO = r"^[+-]?0[0-9]"  # '01234' is a code (zip, account), not the number 1234


def _infer_types(con, table: str, columns: list[str], dataset: Dataset, date_format: str | None = None) -> dict[str, str]:
    if not columns:
        return {}
    probes = []
    for name in columns:
        col = quote_ident(name)
        probes.append(f"count(NULLIF(trim({col}), ''))")  # a quoted "" says nothing of the type
        for candidate in INFER_ORDER:
            expr = _cast_expr(col, "VARCHAR", candidate, dataset, date_format)
            if candidate == "DOUBLE":  # 1e400 is a number, if out of DOUBLE's range: quarantined by the cast
                expr = f"TRY_CAST(trim({col}) AS DOUBLE)"
            if candidate == "BIGINT":  # TRY_CAST rounds '1.5' to 2: only whole numbers are integers
                expr = f"CASE WHEN regexp_full_match(trim({col}), {quote_literal(INTEGER_TEXT)}) THEN {expr} END"
            if candidate in ("BIGINT", "DOUBLE"):  # as DuckDB's sniffer, keep leading zeros as text
                expr = f"CASE WHEN NOT regexp_matches(trim({col}), {quote_literal(LEADING_ZERO)}) THEN {expr} END"
            if candidate == "DATE":  # the DATE cast drops a time part ('2026-01-02T03:04:05'): a TIMESTAMP
                expr = f"CASE WHEN NOT contains({col}, ':') THEN {expr} END"
            probes.append(f"count({expr})")
    counts = con.execute(f"SELECT {', '.join(probes)} FROM {table}").fetchone()
    result = {}
    step = len(INFER_ORDER) + 1
    for i, name in enumerate(columns):
        present = counts[i * step]
        result[name] = "VARCHAR"
        if present == 0:
            continue
        for j, candidate in enumerate(INFER_ORDER):
            if counts[i * step + 1 + j] == present:
                result[name] = candidate
                break
    return result
