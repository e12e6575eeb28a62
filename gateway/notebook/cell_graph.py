"""The dependency graph between a notebook's cells, kept up to date one cell at a time.

The same graph as ``dependencies.dependency_graph`` (a cell depends on the latest earlier cell that defines a name it
uses), but indexed by name instead of rebuilt: for each name, the sorted numbers of the cells that define it and of
the cells that use it. Then

- a cell's direct dependencies are, for each name it uses, one binary search among that name's definers;
- a cell's direct dependents are, for each name it defines, the users of that name between it and the next cell
  that defines the name again (that cell included: ``x = x + 1`` uses the ``x`` from before it);

so adding, changing or removing a cell, and finding what it affects, costs a few binary searches per name of the cell
plus the cells found, never a pass over the whole notebook.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable

from gateway.notebook.dependencies import CellNames


class CellGraph:
    """Cell number -> names, indexed both ways. ``work`` counts the steps taken (cells looked at, binary searches,
    cells found), so tests can check the cost of an operation without timing it."""

    def __init__(self) -> None:
        self._names: dict[int, CellNames] = {}
        self._definers: dict[str, list[int]] = {}  # name -> sorted numbers of the cells that define it
        self._users: dict[str, list[int]] = {}  # name -> sorted numbers of the cells that use it
        self.work = 0

    def __contains__(self, number: int) -> bool:
        return number in self._names

    def put(self, number: int, names: CellNames) -> None:
        """Add cell ``number`` with ``names``, or change its names."""
        self.remove(number)
        self._names[number] = names
        for name in names.defines:
            self._insert(self._definers, name, number)
        for name in names.uses:
            self._insert(self._users, name, number)

    def remove(self, number: int) -> None:
        """Forget cell ``number`` (nothing happens if it is not here)."""
        names = self._names.pop(number, None)
        if names is None:
            return
        for name in names.defines:
            self._delete(self._definers, name, number)
        for name in names.uses:
            self._delete(self._users, name, number)

    # --- queries --------------------------------------------------------------------------------------------

    def dependencies(self, number: int) -> set[int]:
        """The cells ``number`` depends on directly: for each name it uses, the latest earlier cell defining it."""
        found: set[int] = set()
        self.work += 1
        for name in self._names.get(number, CellNames()).uses:
            definers = self._definers.get(name, [])
            self.work += 1
            position = bisect_left(definers, number)
            if position:
                found.add(definers[position - 1])
        return found

    def dependents(self, number: int) -> set[int]:
        """The cells that depend on ``number`` directly."""
        found: set[int] = set()
        self.work += 1
        for name in self._names.get(number, CellNames()).defines:
            definers, users = self._definers[name], self._users.get(name, [])
            self.work += 2
            after = bisect_right(definers, number)
            first = bisect_right(users, number)
            last = bisect_right(users, definers[after]) if after < len(definers) else len(users)
            self.work += last - first
            found.update(users[first:last])
        return found

    def upstream(self, number: int) -> set[int]:
        """Every cell ``number`` depends on, directly or through others."""
        return self._closure(number, self.dependencies)

    def downstream(self, number: int) -> set[int]:
        """Every cell that depends on ``number``, directly or through others."""
        return self._closure(number, self.dependents)

    def as_dict(self) -> dict[int, frozenset[int]]:
        """The whole graph, cell number -> direct dependencies (what ``dependency_graph`` returns)."""
        return {number: frozenset(self.dependencies(number)) for number in sorted(self._names)}

    # --- internals --------------------------------------------------------------------------------------------

    def _closure(self, number: int, step: Callable[[int], Iterable[int]]) -> set[int]:
        seen: set[int] = set()
        pending = list(step(number))
        while pending:
            current = pending.pop()
            if current not in seen:
                seen.add(current)
                self.work += 1
                pending.extend(step(current))
        seen.discard(number)
        return seen

    def _insert(self, index: dict[str, list[int]], name: str, number: int) -> None:
        self.work += 1
        insort(index.setdefault(name, []), number)

    def _delete(self, index: dict[str, list[int]], name: str, number: int) -> None:
        numbers = index[name]
        self.work += 1
        del numbers[bisect_left(numbers, number)]
        if not numbers:
            del index[name]
