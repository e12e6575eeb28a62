"""Which names each cell defines and uses, and the dependency graph between cells that follows from them.

Pure static analysis with ``ast`` and ``symtable``; nothing is executed. It is deliberately approximate where Python
is dynamic: ``exec``, ``globals()[...]``, star imports and mutation through method calls (``xs.append(1)``) are not
seen. What it does see:

- defines: assignment targets (also in ``for``, ``with ... as``, ``except ... as``, ``match`` captures, walrus),
  augmented assignment, ``del``, imports, ``def`` and ``class``, ``global`` names assigned inside functions, and
  item/attribute assignment (``df["c"] = ...`` defines *and* uses ``df``: it changes an object made elsewhere);
- uses: names read at module level before the cell itself defines them, and global names read inside functions,
  classes, lambdas and comprehensions (unless the cell defines them itself).

A cell depends on the latest earlier cell (lower number) that defines a name it uses.
"""

from __future__ import annotations

import ast
import re
import symtable
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# IPython-only syntax (magics, shell escapes, help) is blanked out before parsing.
_IPYTHON_LINE = re.compile(r"^(\s*)(?:[%!?]|[\w.,\s]+=\s*[%!])")

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass(frozen=True)
class CellNames:
    """The global names one cell defines and the ones it uses from earlier cells."""

    defines: frozenset[str] = frozenset()
    uses: frozenset[str] = frozenset()


def _python_source(code: str) -> str:
    return "\n".join(
        _IPYTHON_LINE.sub(lambda m: m.group(1) + "pass  # ", line) if _IPYTHON_LINE.match(line) else line
        for line in code.splitlines()
    )


def analyse(code: str) -> CellNames:
    """The names ``code`` defines and uses. Code that does not parse, or is nested too deeply to analyse
    (``a+a+...+a`` a few thousand terms long: a RecursionError or the parser's MemoryError), defines and uses
    nothing."""
    source = _python_source(code)
    try:
        tree = ast.parse(source)
        table = symtable.symtable(source, "<cell>", "exec")
        walker = _ModuleWalker()
        for statement in tree.body:
            walker.statement(statement)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return CellNames()
    nested_uses, nested_defines = _nested_globals(table)
    defines = walker.defined | nested_defines
    return CellNames(frozenset(defines), frozenset(walker.uses | (nested_uses - defines)))


def _nested_globals(table: symtable.SymbolTable) -> tuple[set[str], set[str]]:
    """Global names read, and ``global`` names assigned, in every scope nested in the module."""
    uses: set[str] = set()
    defines: set[str] = set()
    pending = list(table.get_children())
    while pending:
        scope = pending.pop()
        pending.extend(scope.get_children())
        for symbol in scope.get_symbols():
            if not symbol.is_global():
                continue
            if symbol.is_referenced():
                uses.add(symbol.get_name())
            if symbol.is_declared_global() and symbol.is_assigned():
                defines.add(symbol.get_name())
    return uses, defines


class _ModuleWalker:
    """Walks module-level statements in order: a name read before the cell defines it is a use."""

    def __init__(self) -> None:
        self.defined: set[str] = set()
        self.uses: set[str] = set()

    def use(self, name: str) -> None:
        if name not in self.defined:
            self.uses.add(name)

    def define(self, name: str) -> None:
        self.defined.add(name)

    # --- expressions --------------------------------------------------------------------------------------

    def read(self, node: ast.AST | None) -> None:
        """Every name ``node`` reads in this scope (nested scopes are left to symtable)."""
        if node is None:
            return
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.use(node.id)
            return
        if isinstance(node, ast.NamedExpr):
            self.read(node.value)
            self.store(node.target)
            return
        if isinstance(node, ast.Lambda):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                self.read(default)
            return
        if isinstance(node, _COMPREHENSIONS):
            self.read(node.generators[0].iter)  # the only part evaluated in the enclosing scope
            return
        for child in ast.iter_child_nodes(node):
            self.read(child)

    def store(self, target: ast.AST) -> None:
        if isinstance(target, ast.Name):
            self.define(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.store(element)
        elif isinstance(target, ast.Starred):
            self.store(target.value)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            self.read(target)  # the object, and any index expression
            base: ast.expr = target
            while isinstance(base, (ast.Attribute, ast.Subscript)):
                base = base.value
            if isinstance(base, ast.Name):
                self.define(base.id)

    # --- statements ---------------------------------------------------------------------------------------

    def block(self, statements: Iterable[ast.stmt]) -> None:
        for statement in statements:
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:  # noqa: C901 - one branch per statement kind
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for expression in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
                self.read(expression)
            self.define(node.name)
        elif isinstance(node, ast.ClassDef):
            for expression in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
                self.read(expression)
            self.define(node.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                self.define(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    self.define(alias.asname or alias.name)
        elif isinstance(node, ast.Assign):
            self.read(node.value)
            for target in node.targets:
                self.store(target)
        elif isinstance(node, ast.AnnAssign):
            self.read(node.value)
            if node.value is not None:
                self.store(node.target)
        elif isinstance(node, ast.AugAssign):
            self.read(node.value)
            if isinstance(node.target, ast.Name):
                self.use(node.target.id)
            self.store(node.target)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                self.read(target) if not isinstance(target, ast.Name) else self.use(target.id)
                self.store(target)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.read(node.iter)
            self.store(node.target)
            self.block(node.body)
            self.block(node.orelse)
        elif isinstance(node, (ast.While, ast.If)):
            self.read(node.test)
            self.block(node.body)
            self.block(node.orelse)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.read(item.context_expr)
                if item.optional_vars is not None:
                    self.store(item.optional_vars)
            self.block(node.body)
        elif isinstance(node, ast.Try | ast.TryStar):
            self.block(node.body)
            for handler in node.handlers:
                self.read(handler.type)
                if handler.name:
                    self.define(handler.name)
                self.block(handler.body)
            self.block(node.orelse)
            self.block(node.finalbody)
        elif isinstance(node, ast.Match):
            self.read(node.subject)
            for case in node.cases:
                self._pattern(case.pattern)
                self.read(case.guard)
                self.block(case.body)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            pass
        else:  # Expr, Return, Raise, Assert, ...
            self.read(node)

    def _pattern(self, pattern: ast.AST) -> None:
        for node in ast.walk(pattern):
            if isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                self.define(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                self.define(node.rest)
            elif isinstance(node, ast.MatchValue):
                self.read(node.value)
            elif isinstance(node, ast.MatchClass):
                self.read(node.cls)


# --- the graph between cells ----------------------------------------------------------------------------------


def dependency_graph(cells: Mapping[int, CellNames]) -> dict[int, frozenset[int]]:
    """For each cell number, the cells it depends on directly: for each name it uses, the latest earlier cell
    that defines it."""
    latest_definer: dict[str, int] = {}
    graph: dict[int, frozenset[int]] = {}
    for number in sorted(cells):
        names = cells[number]
        graph[number] = frozenset(latest_definer[name] for name in names.uses if name in latest_definer)
        for name in names.defines:
            latest_definer[name] = number
    return graph


def upstream(graph: Mapping[int, Iterable[int]], number: int) -> set[int]:
    """Every cell ``number`` depends on, directly or through others."""
    seen: set[int] = set()
    pending = list(graph.get(number, ()))
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(graph.get(current, ()))
    return seen


def downstream(graph: Mapping[int, Iterable[int]], number: int) -> set[int]:
    """Every cell that depends on ``number``, directly or through others."""
    dependents: dict[int, set[int]] = {}
    for cell, dependencies in graph.items():
        for dependency in dependencies:
            dependents.setdefault(dependency, set()).add(cell)
    seen: set[int] = set()
    pending = list(dependents.get(number, ()))
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(dependents.get(current, ()))
    return seen
