"""The command line's parser: every command and option, and for each command the module and
function that runs it (`module:function` in this package), imported only when the command runs,
so that `--help` and a mistyped option answer without loading DuckDB, Arrow or NumPy."""

from __future__ import annotations

import argparse
from pathlib import Path

from quality_assets.config import VARIABLES

CONTRACTS_HELP = "contract file (default: $QA_CONTRACTS or ./quality.yaml); before or after the command"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quality-assets",
        description="Data-quality pipeline on Dagster: load, quarantine and audit landed files.",
        epilog="Environment: " + ", ".join(f"{k} (default {v[0]})" for k, v in VARIABLES.items()),
    )
    parser.add_argument("--contracts", help=CONTRACTS_HELP)
    sub = parser.add_subparsers(dest="command")
    add_pipeline_commands(sub)
    add_operations_commands(sub)
    add_suggest_command(sub)
    add_compare_command(sub)
    add_ui_command(sub)
    for command in sub.choices.values():  # global options also after the subcommand
        command.add_argument("--contracts", default=argparse.SUPPRESS, help=CONTRACTS_HELP)
    return parser


def add_compare_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "compare", help="an HTML comparison of two partitions (or two files): schema changes, metric deltas, drift",
        description="Compare two partitions of a dataset (partition keys) or two files (paths).")
    parser.add_argument("a", help="partition key (or file) A, the reference")
    parser.add_argument("b", help="partition key (or file) B")
    parser.add_argument("--dataset", help="the dataset (needed when the keys exist in more than one)")
    parser.add_argument("--output", type=Path, help="HTML file to write (default <QA_OUTPUT_DIR>/compare/<dataset>/A__vs__B.html)")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON")
    parser.set_defaults(handler="compare:cmd_compare")


def add_operations_commands(sub) -> None:
    cleanup = sub.add_parser(
        "cleanup",
        help="remove partitions older than a cut-off from Dagster, the warehouse and the output folder",
        description=(
            "Removes partitions whose last load is older than --older-than (daily datasets: whose day is) "
            "from the warehouse (raw and qa tables), the output folder and Dagster (dynamic partition keys "
            "and materialization history). Landed source files stay unless --delete-landing is given."
        ),
    )
    cleanup.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h, 2w")
    cleanup.add_argument("--dry-run", action="store_true", help="report what would be removed, remove nothing")
    cleanup.add_argument("--dataset", help="only this dataset")
    cleanup.add_argument("--delete-landing", action="store_true", help="also delete the old partitions' landed files")
    cleanup.add_argument("--keep-snapshots", default="7d", metavar="AGE",
                         help="on a DuckLake: expire snapshots older than this and delete the data files only "
                              "they used (default 7d: time travel and long readers within it are kept)")
    cleanup.set_defaults(handler="operations:cmd_cleanup")

    backup = sub.add_parser("backup", help="back up the warehouse into a new folder: the DuckDB file with EXPORT "
                                           "DATABASE (Parquet); a DuckLake's catalog with pg_dump and its data path")
    backup.add_argument("target", type=Path, help="folder to create (must be new or empty)")
    backup.set_defaults(handler="operations:cmd_backup")

    restore = sub.add_parser("restore", help="rebuild the warehouse from a backup folder (stop the processes first)")
    restore.add_argument("source", type=Path, help="a folder written by `quality-assets backup`")
    restore.add_argument("--force", action="store_true", help="replace an existing warehouse file or lake data path")
    restore.set_defaults(handler="operations:cmd_restore")

    migrate = sub.add_parser("migrate", help="copy the embedded DuckDB warehouse (QA_DUCKDB_PATH) into a DuckLake",
                             description="Copies every table of the DuckDB file into the lake in one transaction; "
                                         "refuses a lake that already holds rows. Then set QA_WAREHOUSE to the lake.")
    migrate.add_argument("--to", required=True, metavar="LAKE", help="ducklake:postgres:<connection string>")
    migrate.add_argument("--data-path", help="the lake's data files (default QA_LAKE_DATA_PATH)")
    migrate.set_defaults(handler="operations:cmd_migrate")


def add_pipeline_commands(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run new or changed landed files (or the given files) through the pipeline")
    run.add_argument("files", nargs="*", type=Path, help="files to run; default: every new or changed file in the landing folders")
    run.add_argument("--dataset", help="only this dataset; files outside a landing folder are copied into its folder")
    run.add_argument("--force", action="store_true", help="reload files even when their content is unchanged")
    run.set_defaults(handler="pipeline:cmd_run")

    validate = sub.add_parser("validate", help="check a contract and print what it declares")
    validate.set_defaults(handler="pipeline:cmd_validate")

    demo = sub.add_parser("demo", help="write a sample landing folder with typical faults and run the pipeline on it")
    demo.add_argument("--dir", type=Path, default=Path("quality_demo"), help="where to write it (default ./quality_demo)")
    demo.set_defaults(handler="pipeline:cmd_demo")


def add_suggest_command(sub: argparse._SubParsersAction) -> None:
    suggest = sub.add_parser(
        "suggest", help="draft a contract from a file's (or a loaded dataset's) profile",
        description="Profile a file (loaded as the pipeline would) or a dataset's rows in the warehouse and print "
                    "a draft contract: types, not_null, a key, ranges, accepted values, regexes.",
    )
    suggest.add_argument("source", help="a file, or the name of a dataset in the contract")
    suggest.add_argument("--dataset", help="the dataset whose format and CSV options to read the file with")
    suggest.add_argument("--name", help="the drafted dataset's name (default: from the file name)")
    suggest.add_argument("--output", "-o", type=Path, help="write the draft here instead of to stdout")
    suggest.set_defaults(handler="suggest:cmd_suggest")


def add_ui_command(sub: argparse._SubParsersAction) -> None:
    ui = sub.add_parser(
        "ui", help="start the Dagster UI (dagster dev) on the contract with its own embedded instance",
        description="Run `dagster dev -m quality_assets.defs` with an embedded SQLite instance in --home; "
                    "Ctrl-C or SIGTERM stops it and its children within 10 s.",
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    ui.add_argument("--home", type=Path,
                    help="the instance folder (default: .dagster_home next to the contract file)")
    ui.set_defaults(handler="ui:cmd_ui")
