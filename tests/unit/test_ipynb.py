"""Export to and import from nbformat v4 documents."""

from __future__ import annotations

import nbformat
import pytest

from gateway.errors import CellNumbersTaken, InvalidNotebook
from gateway.notebook import Notebook
from gateway.notebook.ipynb import from_ipynb, schema_warnings, to_ipynb


def sample_notebook() -> Notebook:
    notebook = Notebook()
    notebook.add(1, "x = 10")
    notebook.add(5, "print(x)\n1/0")
    cell = notebook.get(5)
    cell.status, cell.execution_count = "error", 2
    cell.outputs = [
        {"output_type": "stream", "name": "stdout", "text": "10\n"},
        {"output_type": "execute_result", "execution_count": 2, "data": {"text/plain": "3"}, "metadata": {}},
        {"output_type": "display_data", "data": {"image/png": "iVBOR"}, "metadata": {}},
        {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": ["tb"]},
    ]
    return notebook


def test_export_is_a_valid_v4_notebook_with_outputs() -> None:
    document = to_ipynb(sample_notebook(), kernel_id=42)
    node = nbformat.from_dict(document)
    nbformat.validate(node)
    assert [c.source for c in node.cells] == ["x = 10", "print(x)\n1/0"]
    assert node.cells[1].execution_count == 2 and len(node.cells[1].outputs) == 4
    assert node.cells[1].metadata["jupycell"]["cell_number"] == 5


def test_round_trip_keeps_numbers_and_code() -> None:
    document = to_ipynb(sample_notebook(), kernel_id=42)
    assert from_ipynb(document, taken=set()).cells == [(1, "x = 10"), (5, "print(x)\n1/0")]


def test_foreign_notebook_cells_numbered_after_the_last_and_markdown_skipped() -> None:
    document = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# title"),
            nbformat.v4.new_code_cell("a = 1"),
            nbformat.v4.new_code_cell(["b = a\n", "print(b)"]),
        ]
    )
    imported = from_ipynb(dict(document), taken={1, 7})
    assert imported.cells == [(8, "a = 1"), (9, "b = a\nprint(b)")]
    assert imported.skipped == {"markdown": 1}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "must be a JSON object"),
        ({"nbformat": 3, "cells": []}, "nbformat must be 4"),
        ({"nbformat": 4, "cells": {}}, "'cells' must be a list"),
        ({"nbformat": 4, "cells": [{"source": "x"}]}, "cells[0] must be an object with a 'cell_type'"),
        ({"nbformat": 4, "cells": [{"cell_type": "code", "source": 3}]}, "cells[0].source must be"),
        (
            {
                "nbformat": 4,
                "cells": [
                    {"cell_type": "code", "source": "", "metadata": {"jupycell": {"cell_number": 2}}},
                    {"cell_type": "code", "source": "", "metadata": {"jupycell": {"cell_number": 2}}},
                ],
            },
            "cells[0] and cells[1] both have cell number 2",
        ),
        (
            {
                "nbformat": 4,
                "cells": [{"cell_type": "code", "source": "", "metadata": {"jupycell": {"cell_number": -1}}}],
            },
            "cell_number must be an integer",
        ),
    ],
)
def test_invalid_documents_say_what_is_wrong(document: object, message: str) -> None:
    with pytest.raises(InvalidNotebook, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        from_ipynb(document, taken=set())


def test_number_clash_with_the_kernel_is_a_conflict() -> None:
    document = to_ipynb(sample_notebook(), kernel_id=42)
    with pytest.raises(CellNumbersTaken, match="Cell number\\(s\\) 5 already exist"):
        from_ipynb(document, taken={5, 6})


def test_outputs_nbformat_cannot_hold_are_made_valid_not_a_broken_export() -> None:
    notebook = Notebook()
    cell = notebook.add(1, "display(...)")
    cell.status, cell.execution_count = "ok", -3  # a kernel may send anything
    cell.outputs = [
        {"output_type": "display_data", "data": {"text/plain": 5, "application/json": {"a": [1]}}, "metadata": "x"},
        {"output_type": "execute_result", "execution_count": "7", "data": {"text/html": ["<b>", "x</b>"]}},
        {"output_type": "no-such-type"},
    ]
    document = to_ipynb(notebook, kernel_id=1)
    nbformat.validate(nbformat.from_dict(document))
    first, second, third = document["cells"][0]["outputs"]
    assert document["cells"][0]["execution_count"] is None
    assert first["data"] == {"text/plain": "5", "application/json": {"a": [1]}} and first["metadata"] == {}
    assert second["execution_count"] is None and second["data"] == {"text/html": ["<b>", "x</b>"]}
    assert third["name"] == "stderr" and "'no-such-type' is not an nbformat output" in third["text"]


def test_import_reads_what_it_uses_and_reports_schema_problems_elsewhere() -> None:
    minimal = {"nbformat": 4, "cells": [{"cell_type": "code", "source": "y = 2", "outputs": [{"junk": 1}]}]}
    assert from_ipynb(minimal, taken=set()).cells == [(1, "y = 2")]
    warnings = schema_warnings(minimal)
    assert "notebook: 'metadata' is a required property" in warnings
    assert not any("junk" in warning for warning in warnings)  # outputs are not imported, so not checked
    assert schema_warnings(dict(to_ipynb(sample_notebook(), kernel_id=42))) == []
