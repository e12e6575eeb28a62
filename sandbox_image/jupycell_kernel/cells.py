"""``lean_run_cell``: IPython prepares a cell once per request, not twice, with the same result.

For every ``execute_request`` ipykernel transforms the cell (``shell.transform_cell``: IPython's input transformers
and prefilter, ~80 µs for ``1+1``, most of it ``tokenize``) and asks ``shell.should_run_async`` (a ``compile`` of
the cell with top-level ``await`` allowed); when the answer is no, it calls ``shell.run_cell``, whose ``_run_cell``
does both again on the same string. ``CellPreparation`` (installed on the shell instance: its class, which some
libraries look at, is unchanged) removes the repeats without changing any answer:

- ``transform_cell``: during a request, on the main thread, the result for a cell is kept, and the next call with
  the very same string object (IPython's, which comes before any user code runs: nothing can have changed what the
  transformation reads) gets it once; any other call computes as usual. Only while every transformer is IPython's
  own (pure functions of the text and the namespace): with a user transformer or checker registered, or autocall
  on, nothing is kept. A failed transformation is never kept.
- ``should_run_async``: a transformed cell that is ASCII and contains neither ``await`` nor ``async`` cannot
  compile to a coroutine (top-level ``await``, ``async for``/``with`` and async comprehensions all need one of those
  keywords, which Python only reads in ASCII), so the answer is False without compiling it — the answer IPython's
  own check gives. Otherwise it is IPython's check.
- ``cached_signatures`` (its own switch): ipykernel asks ``inspect.signature`` of ``run_cell_async`` on every
  execute to learn whether it takes ``cell_id``/``cell_meta``; the answer is kept per function object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ipykernel.ipkernel
from ipykernel.kernelbase import _accepts_parameters

_IPYTHON = "IPython."


class CellPreparation:
    """Wraps one shell's ``transform_cell`` and ``should_run_async`` (see the module docstring)."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self._transform: Callable[[str], str] = shell.transform_cell
        self._should_run_async: Callable[..., bool] = shell.should_run_async
        self._main = threading.main_thread()
        self._armed = False
        self._kept: tuple[str, str] | None = None
        self._verified: tuple[Any, ...] | None = None
        shell.transform_cell = self.transform_cell
        shell.should_run_async = self.should_run_async

    @contextmanager
    def request(self) -> Iterator[None]:
        """The span of one ``do_execute``: only inside it is a transformation kept."""
        self._armed, self._kept = True, None
        try:
            yield
        finally:
            self._armed, self._kept = False, None

    def transform_cell(self, raw_cell: str) -> str:
        if not self._armed or threading.current_thread() is not self._main or not self._only_ipython_transforms():
            return self._transform(raw_cell)
        kept, self._kept = self._kept, None
        if kept is not None and kept[0] is raw_cell:
            return kept[1]
        transformed = self._transform(raw_cell)
        self._kept = (raw_cell, transformed)
        return transformed

    def should_run_async(
        self, raw_cell: str, *, transformed_cell: str | None = None, preprocessing_exc_tuple: Any = None
    ) -> bool:
        if (
            transformed_cell is not None
            and transformed_cell.isascii()
            and "await" not in transformed_cell
            and "async" not in transformed_cell
        ):
            return False
        answer = self._should_run_async(
            raw_cell, transformed_cell=transformed_cell, preprocessing_exc_tuple=preprocessing_exc_tuple
        )
        if answer:
            self._kept = None  # run as a coroutine: IPython will not transform this cell again
        return answer

    def _only_ipython_transforms(self) -> bool:
        """True while every input transformer, prefilter checker and handler is IPython's own and autocall is
        off; the lists last found so are kept, so an unchanged set is recognised by identity."""
        shell = self.shell
        manager = shell.input_transformer_manager
        prefilter = shell.prefilter_manager
        current = (
            shell.autocall,
            *shell.input_transformers_post,
            None,
            *manager.cleanup_transforms,
            *manager.line_transforms,
            *manager.token_transformers,
            None,
            *prefilter.transformers,
            None,
            *prefilter.checkers,
            None,
            *prefilter.handlers.values(),
        )
        if current == self._verified:
            return True
        transforms = [*manager.cleanup_transforms, *manager.line_transforms, *manager.token_transformers]
        verified = (
            not shell.autocall
            and not shell.input_transformers_post
            and all((getattr(t, "__module__", None) or "").startswith(_IPYTHON) for t in transforms)
            and not prefilter.transformers
            and all(type(c).__module__.startswith(_IPYTHON) for c in prefilter.checkers)
            and all(type(h).__module__.startswith(_IPYTHON) for h in prefilter.handlers.values())
        )
        self._verified = current if verified else None
        return verified


_signatures: dict[tuple[Any, tuple[str, ...]], dict[str, bool]] = {}


def _cached_accepts_parameters(meth: Any, param_names: list[str]) -> dict[str, bool]:
    """ipykernel's ``_accepts_parameters``, computed once per function object (a bound method's function)."""
    key = (getattr(meth, "__func__", meth), tuple(param_names))
    found = _signatures.get(key)
    if found is None:
        found = _signatures[key] = _accepts_parameters(meth, param_names)
    return dict(found)


def cache_signatures() -> None:
    """Make ipykernel's ``do_execute`` use ``_cached_accepts_parameters``."""
    ipykernel.ipkernel._accepts_parameters = _cached_accepts_parameters  # type: ignore[attr-defined]
