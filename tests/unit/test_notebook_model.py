import pytest

from gateway.errors import CellExists, CellNotFound
from gateway.notebook import Notebook


def test_add_edit_delete_and_order() -> None:
    notebook = Notebook()
    notebook.add(3, "c")
    notebook.add(1, "a")
    notebook.add(2, "b")
    assert [c.number for c in notebook.in_order()] == [1, 2, 3]
    notebook.edit(2, "B")
    assert notebook.get(2).code == "B"
    notebook.delete(1)
    assert [c.code for c in notebook.in_order()] == ["B", "c"]


def test_errors_leave_the_notebook_unchanged() -> None:
    notebook = Notebook()
    notebook.add(1, "original")
    with pytest.raises(CellExists, match="Cell 1 already exists"):
        notebook.add(1, "other")
    with pytest.raises(CellNotFound, match="Cell 2 not found"):
        notebook.edit(2, "x")
    with pytest.raises(CellNotFound):
        notebook.delete(2)
    assert [(c.number, c.code) for c in notebook.in_order()] == [(1, "original")]
