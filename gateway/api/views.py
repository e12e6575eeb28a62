"""How cells and runs look in responses: run records with ISO times, outputs optionally without ANSI codes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.kernels.kernel import RunResult
from gateway.notebook import Cell
from gateway.notebook.outputs import Output, strip_ansi


def iso_time(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def shown_outputs(outputs: list[Output], without_ansi: bool) -> list[Output]:
    return strip_ansi(outputs) if without_ansi else outputs


def run_record(cell: Cell) -> dict[str, Any]:
    """The record of the cell's last run (all null if it never ran)."""
    duration = cell.duration
    return {
        "execution_count": cell.execution_count,
        "started": iso_time(cell.started),
        "ended": iso_time(cell.ended),
        "duration": None if duration is None else round(duration, 6),
        "stale": cell.stale,
        "usage": cell.usage,  # issue 14
    }


def cell_view(cell: Cell, without_ansi: bool = False) -> dict[str, Any]:
    """A cell in the cell listing: code, last outputs, status and run record."""
    return {
        "number": cell.number,
        "code": cell.code,
        "outputs": shown_outputs(cell.outputs, without_ansi),
        "status": cell.status,
        **run_record(cell),
    }


def run_view(result: RunResult, without_ansi: bool = False) -> dict[str, Any]:
    """One run's outcome (the fields of RunResponse / CellRunOutputs)."""
    return {
        **result.as_dict(),
        **run_record(result.cell),
        "execution_count": result.execution_count,
        "outputs": shown_outputs(result.outputs, without_ansi),
        "cell_number": result.cell.number,
    }
