"""The static analysis of cells and the dependency graph between them."""

from __future__ import annotations

import sys

import pytest

from gateway.notebook.dependencies import CellNames, analyse, dependency_graph, downstream, upstream


def names(code: str) -> tuple[set[str], set[str]]:
    result = analyse(code)
    return set(result.defines), set(result.uses)


@pytest.mark.parametrize(
    ("code", "defines", "uses"),
    [
        ("x = 10", {"x"}, set()),
        ("y = x * 2", {"y"}, {"x"}),
        ("x = 1\nprint(x)", {"x"}, {"print"}),
        ("x += 1", {"x"}, {"x"}),
        ("a, (b, *c) = f()", {"a", "b", "c"}, {"f"}),
        ("import numpy as np, os.path\nfrom math import pi as PI, tau", {"np", "os", "PI", "tau"}, set()),
        ("def f(a, b=default):\n    return a + g + b\n", {"f"}, {"default", "g"}),
        ("def f():\n    global counter\n    counter = total + 1\n", {"f", "counter"}, {"total"}),
        ("class C(Base):\n    size = limit\n", {"C"}, {"Base", "limit"}),
        ("for i in items:\n    acc = i\n", {"i", "acc"}, {"items"}),
        ("with open(p) as fh:\n    data = fh.read()\n", {"fh", "data"}, {"open", "p"}),
        ("try:\n    pass\nexcept E as err:\n    msg = err\n", {"err", "msg"}, {"E"}),
        ("squares = [n * k for n in numbers]", {"squares"}, {"numbers", "k"}),
        ("f = lambda v: v * scale", {"f"}, {"scale"}),
        ("df['c'] = 1", {"df"}, {"df"}),
        ("obj.attr = value", {"obj"}, {"obj", "value"}),
        ("if (n := size()) > 3:\n    print(n)", {"n"}, {"size", "print"}),
        ("del x", {"x"}, {"x"}),
        ("match point:\n    case (a, b):\n        r = a\n", {"a", "b", "r"}, {"point"}),
        ("def f():\n    return helper()\ndef helper():\n    return 1\n", {"f", "helper"}, set()),
        ("%matplotlib inline\nimport os\n!ls\nz = os.sep", {"os", "z"}, set()),
        ("this is not python (", set(), set()),
    ],
)
def test_names_defined_and_used(code: str, defines: set[str], uses: set[str]) -> None:
    assert names(code) == (defines, uses)


def test_a_cell_depends_on_the_latest_earlier_definer() -> None:
    graph = dependency_graph(
        {
            1: analyse("x = 10"),
            2: analyse("y = x * 2"),
            3: analyse("x = 5"),
            4: analyse("print(x, y)"),
            5: analyse("z = 1"),
        }
    )
    assert graph == {1: frozenset(), 2: {1}, 3: frozenset(), 4: {2, 3}, 5: frozenset()}
    assert upstream(graph, 4) == {1, 2, 3}
    assert downstream(graph, 1) == {2, 4}
    assert downstream(graph, 5) == set()


def test_a_later_cell_is_never_a_dependency() -> None:
    graph = dependency_graph({1: analyse("print(x)"), 2: analyse("x = 1")})
    assert graph == {1: frozenset(), 2: frozenset()}


@pytest.mark.parametrize(
    "code",
    ["a+" * 1500 + "a", "x" + "[0]" * 3000, "-" * 100_000 + "1", "lambda: " * 10_000 + "1", "f" + "()" * 50_000],
    ids=["sum", "subscripts", "negations", "lambdas", "calls"],
)
def test_code_nested_too_deeply_to_analyse_defines_and_uses_nothing(code: str) -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # CPython's default, as in the gateway (importing jedi, as IPython does, raises it)
    try:
        assert analyse(code) == CellNames()  # not a RecursionError or MemoryError escaping into a request
    finally:
        sys.setrecursionlimit(limit)
