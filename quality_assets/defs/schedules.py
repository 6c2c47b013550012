"""Schedules: a daily dataset's previous day, and the scorecard's."""

import dagster as dg

from quality_assets.contract import Dataset

SCORECARD_SCHEDULE = "scorecard_schedule"


def build_daily_schedule(dataset: Dataset, job) -> dg.ScheduleDefinition:
    hour, minute = (int(part) for part in dataset.daily.schedule.split(":"))
    return dg.build_schedule_from_partitioned_job(
        job,
        name=f"{dataset.name}_daily_schedule",
        hour_of_day=hour,
        minute_of_hour=minute,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Loads the previous day of {dataset.name} at {dataset.daily.schedule} ({dataset.daily.timezone}).",
    )


def build_scorecard_schedule(job) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        job, name=SCORECARD_SCHEDULE, hour_of_day=6, minute_of_hour=0,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Summarises the previous day at 06:00, after the daily datasets' schedules.",
    )
