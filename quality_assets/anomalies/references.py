"""Which earlier partitions a partition is compared with: partitions that raised an alarm are
left out, until the change they show has persisted (the new normal)."""

from __future__ import annotations

PERSIST = 2  # a change alarmed in this many partitions in a row is the new normal (re-learnt from there)


def reference_history(history: list[str], alarmed: set[str]) -> list[str]:
    """The history without partitions that raised an alarm. A change alarmed in PERSIST partitions
    in a row persisted: it is the new normal, and the reference starts where it began (the latest
    such run; alarms after it are left out again)."""
    start, run, regime = 0, 0, set()
    for i, key in enumerate(history):
        run = run + 1 if key in alarmed else 0
        if run >= PERSIST:
            start, regime = i - run + 1, set(history[i - run + 1: i + 1])
    return [k for k in history[start:] if k not in alarmed or k in regime]
