"""`quality-assets`: run the pipeline in-process, validate a contract, or try the demo.

Exit status: 0 when everything ran and no error-severity check failed, 1 when one did (or a run
failed), 2 on bad usage or a bad contract.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from quality_assets.config import VARIABLES, SettingsError, settings_from_env
from quality_assets.contract import Contract, ContractError, Dataset, load_contract
from quality_assets.landing import LandedFile, list_landed, partition_key

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


@dataclass
class FileOutcome:
    dataset: str
    key: str
    rows: int | None = None
    quarantined: int | None = None
    status: str = ""
    failed_checks: list[str] = field(default_factory=list)
    error_failed: bool = False
    seconds: float = 0.0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.contracts:
            os.environ["QA_CONTRACTS"] = str(Path(args.contracts).resolve())
        return args.handler(args)
    except ContractError as exc:
        print(f"error: the contract {exc.path} has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quality-assets",
        description="Data-quality pipeline on Dagster: load, quarantine and audit landed files.",
        epilog="Environment: " + ", ".join(f"{k} (default {v[0]})" for k, v in VARIABLES.items()),
    )
    parser.add_argument("--contracts", help="contract file (default: $QA_CONTRACTS or ./quality.yaml)")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run new or changed landed files (or the given files) through the pipeline")
    run.add_argument("files", nargs="*", type=Path, help="files to run; default: every new or changed file in the landing folders")
    run.add_argument("--dataset", help="only this dataset; files outside a landing folder are copied into its folder")
    run.add_argument("--force", action="store_true", help="reload files even when their content is unchanged")
    run.set_defaults(handler=cmd_run)

    validate = sub.add_parser("validate", help="check a contract and print what it declares")
    validate.set_defaults(handler=cmd_validate)

    demo = sub.add_parser("demo", help="write a sample landing folder with typical faults and run the pipeline on it")
    demo.add_argument("--dir", type=Path, default=Path("quality_demo"), help="where to write it (default ./quality_demo)")
    demo.set_defaults(handler=cmd_demo)

    from quality_assets.cli_ops import add_operations_commands
    from quality_assets.report.compare import add_compare_command
    from quality_assets.suggest import add_suggest_command
    from quality_assets.ui import add_ui_command

    add_operations_commands(sub)
    add_suggest_command(sub)
    add_compare_command(sub)
    add_ui_command(sub)
    return parser


# ---------------------------------------------------------------------------------------------


def cmd_validate(args) -> int:
    settings = settings_from_env()
    contract = load_contract(settings.contracts)
    print(f"{contract.path}: valid, {len(contract.datasets)} dataset(s)")
    for ds in contract.datasets:
        print(
            f"  {ds.name}: {ds.format} files '{ds.glob}' in {ds.landing_dir}, "
            f"{len(ds.columns)} column(s), {len(ds.rules)} rule(s), "
            + (f"partitioned daily from {ds.daily.start}" if ds.daily else f"partitioned per {ds.partitioning}")
        )
    return EXIT_OK


def cmd_demo(args) -> int:
    from quality_assets.demo import write_demo

    root = args.dir.resolve()
    if (root / "quality.yaml").exists():
        print(f"refreshing the demo in {root}", file=sys.stderr)
        for folder in ("landing", "warehouse", "output"):
            shutil.rmtree(root / folder, ignore_errors=True)
    write_demo(root)
    os.environ["QA_CONTRACTS"] = str(root / "quality.yaml")
    for name in ("QA_DUCKDB_PATH", "QA_OUTPUT_DIR"):
        os.environ.pop(name, None)  # the demo keeps everything inside its folder
    print(f"wrote a sample contract and landing folder to {root}", file=sys.stderr)
    status = cmd_run(argparse.Namespace(files=[], dataset=None, force=False))
    settings = settings_from_env()
    print()
    print("Where to look:")
    print(f"  contract:   {settings.contracts}")
    print(f"  warehouse:  {settings.duckdb_path}  (tables raw.*, published.*, qa.files, qa.quarantine, "
          "qa.check_results, qa.failing_rows, qa.column_profiles, qa.row_anomalies, qa.metric_anomalies, qa.drift)")
    print(f"  outputs:    {settings.output_dir}  (per dataset and file: report.html, profile.json, metrics.csv, "
          "audit.log.json, metrics.prom)")
    reports = sorted(settings.output_dir.glob("*/*/report.html"))
    if reports:
        print(f"  a report:   {reports[-1]}  (open it in a browser; {len(reports)} written)")
    print(f"  quarantine: duckdb {settings.duckdb_path} -c \"SELECT * FROM qa.quarantine\"")
    print(f"  the UI:     QA_CONTRACTS={settings.contracts} dagster dev -m quality_assets.defs")
    if status == EXIT_CHECK_FAILED:  # the demo's last orders file breaks an error rule on purpose
        print("  blocked:    a file failed an error rule, as the demo intends: its rows stay out of published.*;"
              f" see duckdb {settings.duckdb_path} -c \"SELECT * FROM qa.failing_rows\"")
        return EXIT_OK
    return status


def cmd_run(args) -> int:
    settings = settings_from_env()
    contract = load_contract(settings.contracts)
    work = _select_work(contract, args.files, args.dataset)
    if not work:
        print("nothing to do: no new or changed files in the landing folders", file=sys.stderr)
        return EXIT_OK
    outcomes = _execute(contract, settings, work, force=args.force)
    print(summary_table(outcomes))
    errors = sum(o.error_failed for o in outcomes)
    warned = sum(bool(o.failed_checks) and not o.error_failed for o in outcomes)
    print(f"\n{len(outcomes)} file(s): {len(outcomes) - errors - warned} clean, {warned} with warnings, {errors} failed an error check")
    return EXIT_CHECK_FAILED if errors else EXIT_OK


def _select_work(contract: Contract, files: list[Path], only: str | None) -> list[tuple[Dataset, LandedFile]]:
    try:
        datasets = [contract.dataset(only)] if only else list(contract.datasets)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if files:
        return _by_day([_landed_for(datasets, path.resolve(), only) for path in files])
    work = []
    loaded = _loaded_versions(contract)
    for ds in datasets:
        landed, unusable = list_landed(ds)
        for relative in unusable:
            print(f"skipping {ds.name}/{relative!r}: the name cannot be a partition key", file=sys.stderr)
        for item in landed:
            if not _same_version(loaded.get((ds.name, str((ds.landing_dir / item.key).resolve()))), item, ds.fingerprint()):
                work.append((ds, item))
    return _by_day(work)


def _same_version(previous: tuple | None, item: LandedFile, fingerprint: str) -> bool:
    if previous is None:
        return False
    size, mtime_us, loaded_fingerprint = previous
    # qa.files keeps mtime in microseconds (UTC); allow for float rounding.
    return size == item.size and loaded_fingerprint == fingerprint and abs(mtime_us - item.mtime_ns / 1000) <= 2


def _landed_for(datasets: list[Dataset], path: Path, only: str | None) -> tuple[Dataset, LandedFile]:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    for ds in datasets:
        root = ds.landing_dir.resolve()
        if root in path.parents:
            relative = path.relative_to(root).as_posix()
            return ds, _landed(relative, path)
    if only is None:
        raise UsageError(f"{path} is not in any dataset's landing folder; name the dataset with --dataset")
    ds = datasets[0]
    target = ds.landing_dir / path.name
    ds.landing_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    print(f"landed {path} as {ds.name}/{path.name}", file=sys.stderr)
    return ds, _landed(path.name, target)


def _landed(relative: str, path: Path) -> LandedFile:
    key = partition_key(relative)
    if key is None:
        raise UsageError(f"{relative!r} cannot be a partition key (control characters or '...'); rename the file")
    stat = path.stat()
    return LandedFile(key, path, stat.st_size, stat.st_mtime_ns)


def _loaded_versions(contract: Contract) -> dict[tuple[str, str], tuple]:
    """(dataset, source path) -> (bytes, mtime in µs, contract fingerprint) of the last load, or of
    the file's last load before retention removed its partition."""
    settings = settings_from_env()
    if not settings.duckdb_path.exists():
        return {}
    from quality_assets.warehouse import Warehouse

    warehouse = Warehouse(settings.duckdb_path, lock_timeout_s=settings.lock_timeout_s, memory_limit=settings.memory_limit)
    from quality_assets.retention import removed_versions

    with warehouse.connect() as con:
        rows = con.execute(
            "SELECT dataset, source_path, bytes, epoch_us(mtime), contract_fingerprint FROM qa.files "
            "WHERE status <> 'unchanged' QUALIFY row_number() OVER (PARTITION BY dataset, source_path ORDER BY finished DESC) = 1"
        ).fetchall()
        removed = removed_versions(con)
    versions = {(d, path): (b, m, f) for d, _key, path, b, m, f in removed}
    versions.update({(d, path): (b, m, f) for d, path, b, m, f in rows})
    return versions


def _by_day(work: list[tuple[Dataset, LandedFile]]) -> list[tuple[Dataset, LandedFile]]:
    """Daily datasets run per day: their files become one work item per closed day."""
    from quality_assets.daily import file_day, is_partition_day

    result: list[tuple[Dataset, LandedFile]] = []
    days: dict[tuple[str, str], tuple[Dataset, list[LandedFile]]] = {}
    for ds, item in work:
        if ds.partitioning != "daily":
            result.append((ds, item))
        elif ds.daily.column:
            print(f"skipping {ds.name}/{item.key}: {ds.name} takes its days from column {ds.daily.column!r}; "
                  "its days run on its schedule or as a backfill", file=sys.stderr)
        elif (day := file_day(ds, item.key)) is None:
            print(f"skipping {ds.name}/{item.key}: no date matching {ds.daily.file_pattern!r} in the name", file=sys.stderr)
        elif not is_partition_day(ds, day):
            print(f"skipping {ds.name}/{item.key}: day {day} is before {ds.daily.start} or has not closed yet", file=sys.stderr)
        else:
            days.setdefault((ds.name, day), (ds, []))[1].append(item)
    for (_, day), (ds, items) in sorted(days.items()):
        result.append((ds, LandedFile(day, items[0].path, sum(i.size for i in items), max(i.mtime_ns for i in items))))
    return result


def _execute(contract: Contract, settings, work: list[tuple[Dataset, LandedFile]], force: bool) -> list[FileOutcome]:
    import dagster as dg

    from quality_assets.defs.definitions import build_definitions, dataset_job_name
    from quality_assets.defs.raw import files_partitions

    defs = build_definitions(contract, settings)
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    outcomes = []
    progress = Progress(len(work))
    for ds, landed in work:
        partitions = files_partitions(ds)
        if ds.partitioning == "file" and not instance.has_dynamic_partition(partitions.name, landed.key):
            instance.add_dynamic_partitions(partitions.name, [landed.key])
        progress.start(f"{ds.name}/{landed.key}")
        started = time.perf_counter()
        job = defs.resolve_job_def(dataset_job_name(ds.name))
        result = job.execute_in_process(
            partition_key=landed.key,
            instance=instance,
            raise_on_error=False,
            run_config={
                "ops": {f"{ds.name}__raw": {"config": {"force": force}}},
                # failures are in the summary table; Dagster's own error log would add stack traces
                "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
            },
            tags={"quality_assets/source": "cli"},
        )
        outcome = _outcome(ds.name, landed.key, result)
        outcome.seconds = time.perf_counter() - started
        outcomes.append(outcome)
        progress.done(f"{outcome.status}, {outcome.rows if outcome.rows is not None else '-'} rows")
    progress.finish()
    return outcomes


def _outcome(dataset: str, key: str, result) -> FileOutcome:
    import dagster as dg

    outcome = FileOutcome(dataset, key)
    published = False
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key == dg.AssetKey([dataset, "raw"]):
            meta = materialization.metadata
            outcome.rows = meta["dagster/row_count"].value
            outcome.quarantined = meta["rows_quarantined"].value
            outcome.status = meta["status"].value
        published = published or materialization.asset_key == dg.AssetKey([dataset, "published"])
    blockers: list[str] = []  # the rules (or file_parsed) that kept the partition out of published
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            outcome.failed_checks.append(f"{evaluation.check_name}({evaluation.severity.value.lower()})")
            if evaluation.severity == dg.AssetCheckSeverity.ERROR:
                outcome.error_failed = True
                rules = evaluation.metadata.get("failed_rules")
                if evaluation.blocking:
                    blockers.append(str(rules.value) if rules is not None and rules.value else evaluation.check_name)
    if published and outcome.status:
        outcome.status += ", published"
    if not result.success:
        outcome.error_failed = True
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        if _is_blocking_check_failure(failure) and outcome.status:
            outcome.status += f" (not published: blocked by {', '.join(dict.fromkeys(blockers)) or 'a failed check'})"
        else:
            outcome.status = f"run failed: {_failure_message(failure)[:160]}"
    return outcome


def _is_blocking_check_failure(event) -> bool:
    if event is None or event.event_specific_data.error is None:
        return False
    error = event.event_specific_data.error
    while error.cause is not None:
        error = error.cause
    return error.cls_name == "DagsterAssetCheckFailedError"


def _failure_message(event) -> str:
    if event is None:
        return "run failed"
    data = event.event_specific_data
    if data.user_failure_data and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    while error.cause is not None:
        error = error.cause  # the user's exception, not Dagster's wrapper
    return error.message.strip().splitlines()[0]


def summary_table(outcomes: list[FileOutcome]) -> str:
    headers = ["dataset", "file", "rows", "quarantined", "failed checks", "status"]
    rows = [
        [o.dataset, o.key, _num(o.rows), _num(o.quarantined), ", ".join(o.failed_checks) or "-", o.status]
        for o in outcomes
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    right = {2, 3}

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _num(value) -> str:
    return "-" if value is None else f"{value:,}"


class Progress:
    """A one-line progress bar on stderr (a line per file when stderr is not a terminal)."""

    def __init__(self, total: int, width: int = 24):
        self.total, self.width, self.count = total, width, 0
        self.tty = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.label = ""

    def _bar(self) -> str:
        filled = int(self.width * self.count / max(self.total, 1))
        return "[" + "#" * filled + "." * (self.width - filled) + f"] {self.count}/{self.total}"

    def start(self, label: str) -> None:
        self.label = label
        if self.tty:
            sys.stderr.write(f"\r\033[K{self._bar()} {label} ...")
            sys.stderr.flush()

    def done(self, note: str) -> None:
        self.count += 1
        if self.tty:
            sys.stderr.write(f"\r\033[K{self._bar()} {self.label}: {note}")
        else:
            sys.stderr.write(f"{self._bar()} {self.label}: {note}\n")
        sys.stderr.flush()

    def finish(self) -> None:
        elapsed = time.perf_counter() - self.started
        if self.tty:
            sys.stderr.write("\n")
        sys.stderr.write(f"ran {self.total} file(s) in {elapsed:.1f}s\n")


if __name__ == "__main__":
    sys.exit(main())
