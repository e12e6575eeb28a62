"""A kernel's notebook as a Jupyter ``.ipynb`` document (nbformat v4.5, built and validated with ``nbformat``), and
cells read back from one.

Export keeps each cell's number in ``metadata.jupycell.cell_number`` so an import recreates the same numbers.
Outputs come from the kernel, so they are untrusted: a value nbformat does not allow (``{"text/plain": 5}``) is
written as its JSON text rather than making the document invalid.

Import reads code cells only (markdown and raw cells have no place in a kernel's cell list); cells without a
JupyCell number are numbered after the highest number in use. Outputs in an imported document are not kept: they
were not produced by this kernel. The parts an import uses (``nbformat``, ``cells``, each cell's ``cell_type``,
``source`` and JupyCell number) must be right; for the rest the document is read as Jupyter reads notebooks:
what the nbformat schema finds wrong there is reported (``ImportedCells.warnings``), not refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nbformat import NotebookNode, v4, validator
from nbformat.validator import ValidationError

from gateway.errors import CellNumbersTaken, InvalidNotebook
from gateway.notebook.model import Cell, Notebook
from gateway.notebook.outputs import Output

NBFORMAT = 4
NBFORMAT_MINOR = 5

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (JupyCell sandbox)", "language": "python"}

MAX_WARNINGS = 5  # schema problems reported per import

# nbformat has no type annotations: its functions, typed as this module uses them.
new_notebook: Callable[..., NotebookNode] = v4.new_notebook
new_code_cell: Callable[..., NotebookNode] = v4.new_code_cell
new_output: Callable[..., NotebookNode] = v4.new_output
validate: Callable[..., None] = validator.validate
iter_validate: Callable[..., Iterator[ValidationError]] = validator.iter_validate


def to_ipynb(notebook: Notebook, kernel_id: int) -> NotebookNode:
    """The notebook's cells, outputs and execution counts as a valid nbformat v4.5 document (a dict)."""
    return cells_to_ipynb(notebook.in_order(), kernel_id, notebook.version)


def cells_to_ipynb(cells: list[Cell], kernel_id: int, version: int | None = None) -> NotebookNode:
    """``to_ipynb`` for a list of cells taken from a notebook (so it can be built in another thread)."""
    document = new_notebook(
        metadata={
            "kernelspec": KERNELSPEC,
            "language_info": {"name": "python"},
            "jupycell": {"kernel_id": kernel_id, "version": version},
        },
        cells=[_code_cell(cell) for cell in cells],
    )
    validate(document)
    return document


def _code_cell(cell: Cell) -> NotebookNode:
    return new_code_cell(
        cell.code,
        id=f"cell-{cell.number}",
        metadata={"jupycell": _cell_metadata(cell)},
        execution_count=_count(cell.execution_count),
        outputs=[_output(output) for output in cell.outputs],
    )


def _cell_metadata(cell: Cell) -> dict[str, Any]:
    metadata: dict[str, Any] = {"cell_number": cell.number, "status": cell.status, "stale": cell.stale}
    if cell.usage:
        metadata["usage"] = cell.usage  # the last run's peak memory and CPU seconds
    return metadata


def _count(value: Any) -> int | None:
    """An execution count nbformat accepts (a kernel may have sent anything)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _output(output: Output) -> NotebookNode:
    """The output as nbformat shapes it; anything it cannot hold becomes a ``stderr`` note saying so."""
    kind = output.get("output_type")
    try:
        if kind == "stream":
            return new_output("stream", name=str(output.get("name", "stdout")), text=str(output.get("text", "")))
        if kind == "error":
            return new_output(
                "error",
                ename=str(output.get("ename", "")),
                evalue=str(output.get("evalue", "")),
                traceback=[str(line) for line in output.get("traceback", [])],
            )
        if kind in ("display_data", "execute_result"):
            extra = {"execution_count": _count(output.get("execution_count"))} if kind == "execute_result" else {}
            metadata = output.get("metadata")
            return new_output(
                kind,
                data=_mime_bundle(output.get("data")),
                metadata=metadata if isinstance(metadata, dict) else {},
                **extra,
            )
        problem = f"output type {kind!r} is not an nbformat output"
    except ValidationError as error:
        problem = error.message
    return new_output("stream", name="stderr", text=f"[JupyCell: an output was left out of this export: {problem}]\n")


def _mime_bundle(data: Any) -> dict[str, Any]:
    """``data`` with every value nbformat requires to be text (all but JSON mime types) made text."""
    if not isinstance(data, dict):
        return {}
    return {
        str(mime): value if _json_mime(str(mime)) or _text(value) else _as_text(value) for mime, value in data.items()
    }


def _json_mime(mime: str) -> bool:
    return mime.startswith("application/") and mime.endswith("json")


def _text(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(line, str) for line in value))


def _as_text(value: Any) -> str:
    return json.dumps(value, default=str)


# --- import -----------------------------------------------------------------------------------------------------


@dataclass
class ImportedCells:
    """Code cells read from a document, with their numbers, what was left out, and what is wrong with the rest."""

    cells: list[tuple[int, str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # cell type -> how many were not imported
    warnings: list[str] = field(default_factory=list)  # schema problems in the parts an import does not use


def from_ipynb(document: Any, taken: set[int]) -> ImportedCells:
    """The code cells of an nbformat v4 document, numbered; ``taken`` are the numbers already in use.

    Raises InvalidNotebook (with what is wrong and where) for anything that is not a v4 notebook or has two cells
    with the same number, and CellNumbersTaken for a number the kernel already has. Nothing is changed here, and the
    cost is one pass over the cells: the schema is checked separately (``schema_warnings``).
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
    numbered = list(explicit)
    for position, code in unnumbered:
        numbered.append((position, next_number, code))
        next_number += 1
    imported.cells = [(number, code) for _, number, code in sorted(numbered)]
    return imported


def schema_warnings(document: dict[str, Any]) -> list[str]:
    """What the nbformat v4 schema finds wrong in a document ``from_ipynb`` accepted (at most ``MAX_WARNINGS``,
    each ``where: what``), outputs left aside: an import does not keep them."""
    without_outputs = {
        **document,
        "cells": [{**cell, "outputs": []} if "outputs" in cell else cell for cell in document["cells"]],
    }
    minor = document.get("nbformat_minor")
    if not isinstance(minor, int) or isinstance(minor, bool) or not 0 <= minor <= NBFORMAT_MINOR:
        minor = NBFORMAT_MINOR
    warnings = []
    for error in iter_validate(without_outputs, version=NBFORMAT, version_minor=minor):
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
        warnings.append(f"{where.lstrip('.') or 'notebook'}: {error.message}")
        if len(warnings) == MAX_WARNINGS:
            break
    return warnings


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
