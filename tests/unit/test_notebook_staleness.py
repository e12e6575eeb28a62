"""Staleness: edits, re-runs and deletions upstream mark the cells that depend on them."""

from __future__ import annotations

from gateway.notebook import Notebook


def ran_notebook(*codes: str) -> Notebook:
    notebook = Notebook()
    for number, code in enumerate(codes, start=1):
        notebook.add(number, code)
    for cell in notebook.in_order():
        cell.status = "ok"
        notebook.ran(cell)
    return notebook


def stale(notebook: Notebook) -> list[int]:
    return [cell.number for cell in notebook.in_order() if cell.stale]


def test_running_in_order_leaves_nothing_stale() -> None:
    assert stale(ran_notebook("x = 10", "y = x * 2", "print(y)", "z = 1")) == []


def test_edit_marks_the_cell_and_its_dependents_transitively() -> None:
    notebook = ran_notebook("x = 10", "y = x * 2", "print(y)", "z = 1")
    notebook.edit(1, "x = 20")
    assert stale(notebook) == [1, 2, 3]
    assert [c.number for c in notebook.not_up_to_date()] == [1, 2, 3]


def test_rerun_marks_dependents_only() -> None:
    notebook = ran_notebook("x = 10", "y = x * 2", "print(y)", "z = 1")
    notebook.ran(notebook.get(2))
    assert stale(notebook) == [3]


def test_edit_that_stops_defining_a_name_still_marks_its_old_users() -> None:
    notebook = ran_notebook("x = 10", "print(x)")
    notebook.edit(1, "w = 10")
    assert stale(notebook) == [1, 2]


def test_delete_marks_dependents() -> None:
    notebook = ran_notebook("x = 10", "y = x * 2", "print(y)")
    notebook.delete(1)
    assert stale(notebook) == [2, 3]


def test_added_cell_that_shadows_a_definition_marks_later_users() -> None:
    notebook = ran_notebook("x = 10", "pass", "print(x)")
    notebook.delete(2)
    notebook.add(2, "x = 5")  # cell 3 now reads x from cell 2, which it did not when it ran
    assert stale(notebook) == [3]
    notebook.add(4, "print(x)")  # never ran: nothing to be stale
    assert stale(notebook) == [3]


def test_dependencies_in_run_order_and_never_run_cells_are_not_stale() -> None:
    notebook = Notebook()
    notebook.add(1, "a = 1")
    notebook.add(2, "b = a + 1")
    notebook.add(3, "c = 3")
    notebook.add(4, "print(b)")
    assert [c.number for c in notebook.dependencies(4)] == [1, 2]
    notebook.edit(1, "a = 2")
    assert stale(notebook) == []
    assert [c.number for c in notebook.not_up_to_date()] == [1, 2, 3, 4]
