"""A kernel's notebook as a Jupyter ``.ipynb`` document (nbformat v4.5), and cells read back from one.

Export keeps each cell's number in ``metadata.jupycell.cell_number`` so an import recreates the same numbers.
Import reads code cells only (markdown and raw cells have no place in a kernel's cell list); cells without a
JupyCell number are numbered after the highest number in use. Outputs in an imported document are not kept: they
were not produced by this kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import CellNumbersTaken, InvalidNotebook
from gateway.notebook.model import Notebook

NBFORMAT = 4
NBFORMAT_MINOR = 5

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (JupyCell sandbox)", "language": "python"}


def to_ipynb(notebook: Notebook, kernel_id: int) -> dict[str, Any]:
    """The notebook's cells, outputs and execution counts as an nbformat v4 document."""
    return {
        "nbformat": NBFORMAT,
        "nbformat_minor": NBFORMAT_MINOR,
        "metadata": {
            "kernelspec": KERNELSPEC,
            "language_info": {"name": "python"},
            "jupycell": {"kernel_id": kernel_id, "version": notebook.version},  # version: issue 12
        },
        "cells": [
            {
                "id": f"cell-{cell.number}",
                "cell_type": "code",
                "metadata": {"jupycell": {"cell_number": cell.number, "status": cell.status, "stale": cell.stale}},
                "execution_count": cell.execution_count,
                "source": cell.code,
                "outputs": [_nbformat_output(output) for output in cell.outputs],
            }
            for cell in notebook.in_order()
        ],
    }


def _nbformat_output(output: dict[str, Any]) -> dict[str, Any]:
    """An output with exactly the keys nbformat allows for its type."""
    kind = output.get("output_type")
    if kind == "stream":
        return {"output_type": "stream", "name": output.get("name", "stdout"), "text": output.get("text", "")}
    if kind == "error":
        return {
            "output_type": "error",
            "ename": output.get("ename", ""),
            "evalue": output.get("evalue", ""),
            "traceback": list(output.get("traceback", [])),
        }
    shaped = {"output_type": kind, "data": dict(output.get("data", {})), "metadata": dict(output.get("metadata", {}))}
    if kind == "execute_result":
        shaped["execution_count"] = output.get("execution_count")
    return shaped


@dataclass
class ImportedCells:
    """Code cells read from a document, with their numbers, and what was left out."""

    cells: list[tuple[int, str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # cell type -> how many were not imported


def from_ipynb(document: Any, taken: set[int]) -> ImportedCells:
    """The code cells of an nbformat v4 document, numbered; ``taken`` are the numbers already in use.

    Raises InvalidNotebook (with what is wrong and where) for anything that is not a v4 notebook or has two cells
    with the same number, and CellNumbersTaken for a number the kernel already has. Nothing is changed here.
    """
    if not isinstance(document, dict):
        raise InvalidNotebook("Invalid notebook: the document must be a JSON object (an .ipynb file).")
    if document.get("nbformat") != NBFORMAT:
        raise InvalidNotebook(
            f"Invalid notebook: nbformat must be {NBFORMAT}, got {document.get('nbformat')!r} "
            "(convert older notebooks with `jupyter nbconvert --to notebook`)."
        )
    cells = document.get("cells")
    if not isinstance(cells, list):
        raise InvalidNotebook("Invalid notebook: 'cells' must be a list.")

    imported = ImportedCells()
    explicit: list[tuple[int, int, str]] = []  # (position, number, code)
    unnumbered: list[tuple[int, str]] = []  # (position, code)
    for position, cell in enumerate(cells):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise InvalidNotebook(f"Invalid notebook: cells[{position}] must be an object with a 'cell_type'.")
        if cell["cell_type"] != "code":
            imported.skipped[cell["cell_type"]] = imported.skipped.get(cell["cell_type"], 0) + 1
            continue
        code = _source(cell.get("source"), position)
        number = _jupycell_number(cell, position)
        if number is None:
            unnumbered.append((position, code))
        else:
            explicit.append((position, number, code))

    seen: dict[int, int] = {}
    for position, number, _ in explicit:
        if number in seen:
            raise InvalidNotebook(
                f"Invalid notebook: cells[{seen[number]}] and cells[{position}] both have cell number {number}."
            )
        seen[number] = position
    clashes = sorted(set(seen) & taken)
    if clashes:
        raise CellNumbersTaken(
            f"Cell number(s) {', '.join(map(str, clashes))} already exist in this kernel; delete them first "
            "or import into another kernel."
        )
    next_number = max([*taken, *seen, 0]) + 1
    numbered = [(position, number, code) for position, number, code in explicit]
    for position, code in unnumbered:
        numbered.append((position, next_number, code))
        next_number += 1
    imported.cells = [(number, code) for _, number, code in sorted(numbered)]
    return imported


def _source(source: Any, position: int) -> str:
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source)
    raise InvalidNotebook(f"Invalid notebook: cells[{position}].source must be a string or a list of strings.")


def _jupycell_number(cell: dict[str, Any], position: int) -> int | None:
    metadata = cell.get("metadata")
    jupycell = metadata.get("jupycell") if isinstance(metadata, dict) else None
    number = jupycell.get("cell_number") if isinstance(jupycell, dict) else None
    if number is None:
        return None
    if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= 10**9:
        raise InvalidNotebook(
            f"Invalid notebook: cells[{position}].metadata.jupycell.cell_number must be an integer from 0 to 10^9."
        )
    return number
