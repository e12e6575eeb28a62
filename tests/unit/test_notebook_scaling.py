"""The notebook's bookkeeping (dependency graph, staleness) costs what a change affects, not the notebook's size.

Costs are counted, not timed: ``Notebook.work`` counts the dependency graph's steps, and a ``cells`` dict that counts
passes over itself shows that no change walks the whole notebook. A randomised comparison with the whole-graph
algorithm (``dependencies.dependency_graph`` / ``downstream``, what the notebook used before) shows the
incremental graph gives the same answers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import lru_cache

import pytest

from gateway.notebook import Cell, Notebook
from gateway.notebook.dependencies import analyse, dependency_graph, downstream, upstream


class CountingCells(dict[int, Cell]):
    """A ``cells`` dict that counts the passes made over all of it."""

    passes = 0

    def __iter__(self) -> Iterator[int]:
        CountingCells.passes += 1
        return super().__iter__()

    def items(self):  # type: ignore[override]
        CountingCells.passes += 1
        return super().items()

    def values(self):  # type: ignore[override]
        CountingCells.passes += 1
        return super().values()

    def keys(self):  # type: ignore[override]
        CountingCells.passes += 1
        return super().keys()


@pytest.fixture
def counted() -> Notebook:
    notebook = Notebook(CountingCells())
    CountingCells.passes = 0
    return notebook


def run(notebook: Notebook, number: int) -> None:
    cell = notebook.get(number)
    cell.status = "ok"
    notebook.ran(cell)


def test_20000_one_line_cells_cost_the_same_per_cell(counted: Notebook) -> None:
    costs = []
    for number in range(1, 20_001):  # a chain: every cell uses the x of the one before and defines a new one
        before = counted.work
        counted.add(number, "x = x + 1" if number % 2 else f"y{number} = x")
        costs.append(counted.work - before)
    assert CountingCells.passes == 0
    assert max(costs) <= 8, max(costs)  # a few index steps per name, whatever the notebook's size
    assert costs[-100:] == costs[100:200]  # the last adds cost what the early ones did


def test_2000_adds_to_a_notebook_that_ran_then_edits_and_deletes(counted: Notebook) -> None:
    for number in range(1, 2001):
        counted.add(number, f"v{number} = {number}")
        run(counted, number)
    mark, before = counted.stale_mark(), counted.work
    counted.edit(1000, "v1000 = 0")
    counted.delete(1500)
    counted.add(1500, "v1500 = v1000 + 1")
    run(counted, 1500)
    counted.edit(1000, "v1000 = 2")
    assert counted.work - before <= 40
    assert counted.stale_changes_since(mark) == {1000: True, 1500: True}
    assert CountingCells.passes == 0


def test_an_edit_costs_the_cells_downstream_of_it(counted: Notebook) -> None:
    for number in range(1, 1001):
        counted.add(number, "x = 0" if number == 1 else "x = x + 1")
        run(counted, number)
    before = counted.work
    counted.edit(990, "x = x + 2")  # 10 cells downstream of it
    assert counted.work - before <= 20 * 10
    assert [c.number for c in counted.not_up_to_date()] == list(range(990, 1001))


def test_stale_changes_since_a_mark_cost_only_the_changes(counted: Notebook) -> None:
    for number in range(1, 5001):
        counted.add(number, f"a{number} = 1")
    counted.add(5001, "b = a1")
    run(counted, 5001)
    mark = counted.stale_mark()
    assert counted.stale_changes_since(mark) == {}
    counted.edit(1, "a1 = 2")
    assert counted.stale_changes_since(mark) == {5001: True}
    run(counted, 5001)
    assert counted.stale_changes_since(mark) == {5001: False}  # back and forth: its flag now
    assert CountingCells.passes == 0


# --- the same answers as the whole-graph algorithm ------------------------------------------------------------

SNIPPETS = [
    "a = 1",
    "b = a + 1",
    "a = a + b",
    "print(c)",
    "c = b * 2",
    "del a",
    "def f():\n    return d",
    "d = f()",
    "import os as c",
    "x.append(b)",
    "x = [a, c]",
    "for a in x: pass",
    "syntax error here (",
]


names_of = lru_cache(maxsize=None)(analyse)


class Reference:
    """The notebook's rules, computed the old way: the whole graph rebuilt for every question."""

    def __init__(self) -> None:
        self.codes: dict[int, str] = {}
        self.stale: dict[int, bool] = {}
        self.ran: set[int] = set()

    def graph(self) -> dict[int, frozenset[int]]:
        return dependency_graph({number: names_of(code) for number, code in self.codes.items()})

    def dependents(self, number: int) -> set[int]:
        return {n for n in downstream(self.graph(), number) if n in self.codes and n != number}

    def mark(self, numbers: set[int]) -> None:
        for number in numbers & self.ran:
            self.stale[number] = True

    def add(self, number: int, code: str) -> None:
        self.codes[number], self.stale[number] = code, False
        self.mark(self.dependents(number))

    def edit(self, number: int, code: str) -> None:
        before = self.dependents(number)
        self.codes[number] = code
        self.mark(before | self.dependents(number))
        if number in self.ran:
            self.stale[number] = True

    def delete(self, number: int) -> None:
        dependents = self.dependents(number)
        del self.codes[number], self.stale[number]
        self.ran.discard(number)
        self.mark(dependents)

    def run(self, number: int) -> None:
        self.ran.add(number)
        self.stale[number] = False
        self.mark(self.dependents(number))


@pytest.mark.parametrize("seed", range(20))
def test_incremental_graph_agrees_with_the_whole_graph(seed: int) -> None:
    rng = random.Random(seed)
    notebook, reference = Notebook(), Reference()
    for _ in range(150):
        number, code = rng.randrange(1, 13), rng.choice(SNIPPETS)
        mark, stale_before = notebook.stale_mark(), dict(reference.stale)
        action = rng.choice(["add", "edit", "delete", "run", "run"])
        if number not in reference.codes:
            notebook.add(number, code)
            reference.add(number, code)
        elif action == "edit":
            notebook.edit(number, code)
            reference.edit(number, code)
        elif action == "delete":
            notebook.delete(number)
            reference.delete(number)
        else:
            run(notebook, number)
            reference.run(number)
        assert notebook.graph() == reference.graph()
        assert {n: c.stale for n, c in notebook.cells.items()} == reference.stale
        changes = notebook.stale_changes_since(mark)
        real = {n: v for n, v in reference.stale.items() if n in stale_before and stale_before[n] != v}
        assert real.items() <= changes.items()  # every change reported, and what is reported is the current flag
        assert all(reference.stale[n] == v for n, v in changes.items())
        for n in reference.codes:
            assert [c.number for c in notebook.dependencies(n)] == sorted(upstream(reference.graph(), n))


def test_a_notebook_built_from_stored_cells_has_their_graph() -> None:
    cells = {n: Cell(n, code, names=analyse(code)) for n, code in {1: "a = 1", 2: "b = a", 3: "print(b)"}.items()}
    notebook = Notebook(cells)
    assert notebook.graph() == {1: frozenset(), 2: frozenset({1}), 3: frozenset({2})}
    assert [c.number for c in notebook.dependencies(3)] == [1, 2]
