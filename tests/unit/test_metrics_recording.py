"""Recording a metric never fails the work it counts: Ray's counters refuse an increment
of 0, and an empty input or output is a real case (a task then ends in its own error)."""

from __future__ import annotations

from dragon import metrics


def test_an_empty_input_or_output_records_without_an_error() -> None:
    metrics.fetched(0)
    metrics.stored(0, "persistent")
    metrics.fetched(10)
    metrics.stored(10, "volatile")
