"""The command line, `quality-assets`: for people and CI. It runs the same Dagster jobs as the
UI, in-process; no module outside this package imports it."""

from quality_assets.cli.main import main

__all__ = ["main"]
