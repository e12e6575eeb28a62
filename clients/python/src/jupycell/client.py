"""The synchronous client: ``Client`` and the ``Kernel`` objects it hands out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeVar

import httpx

from jupycell import _api
from jupycell.errors import KernelNotFound
from jupycell.models import Cells, Execution, KernelInfo, Output

T = TypeVar("T")
OnText = Callable[[str], Any]
OnOutput = Callable[[Output], Any]


class Client:
    """A JupyCell gateway. ``url`` and ``api_key`` default to ``JUPYCELL_URL`` / ``JUPYCELL_API_KEY``.

    ``request_timeout`` (s) bounds each HTTP request that does not wait on the kernel; runs end at their own deadline
    (``timeout`` of ``execute`` and the run methods, enforced by the gateway), never cut short by the client; kernel
    starts and file transfers (queued behind runs) are bounded by the gateway too.
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *, request_timeout: float = 30.0) -> None:
        self.url, api_key = _api.resolve_config(url, api_key)
        self.request_timeout = request_timeout
        self._http = httpx.Client(base_url=self.url, headers=_api.headers(api_key))

    # --- plumbing -----------------------------------------------------------------------------------------

    def _call(self, call: _api.Call[T]) -> T:
        with _api.transport_errors(self.url):
            response = self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,
                content=call.content,
                timeout=_api.http_timeout(self.request_timeout, call.waits_on_kernel),
            )
        return call.parse(_api.checked(response))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- kernels ------------------------------------------------------------------------------------------

    def start_kernel(self, runtime: str | None = None) -> Kernel:
        """Start a kernel in a new sandbox; use it as a context manager to shut it down at the end."""
        return Kernel(self, self._call(_api.start(runtime)))

    def kernel(self, kernel_id: int) -> Kernel:
        """Re-attach to a running kernel (KernelNotFound if it does not exist or is not yours)."""
        self._call(_api.kernel_info(kernel_id))
        return Kernel(self, kernel_id)

    def kernels(self) -> list[KernelInfo]:
        """Your kernels (all of them for an admin key)."""
        return self._call(_api.kernels())


class Kernel(AbstractContextManager["Kernel"]):
    """One kernel: run code, edit its cells, move files. ``with client.start_kernel() as kernel:`` shuts it down
    on exit."""

    def __init__(self, client: Client, kernel_id: int) -> None:
        self.client = client
        self.id = kernel_id

    def __repr__(self) -> str:
        return f"Kernel({self.id})"

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self.shutdown()
        except KernelNotFound:
            pass

    def info(self) -> KernelInfo:
        return self.client._call(_api.kernel_info(self.id))

    # --- running code -------------------------------------------------------------------------------------

    def execute(
        self,
        code: str,
        timeout: float | None = None,
        *,
        wait: bool = True,
        expected_version: int | None = None,
        on_stdout: OnText | None = None,
        on_stderr: OnText | None = None,
        on_output: OnOutput | None = None,
    ) -> Execution:
        """Append ``code`` as a new cell and run it. ``timeout``: the run's deadline in seconds (default: the
        gateway's). With a callback the outputs are streamed to it as they come."""
        if on_stdout is None and on_stderr is None and on_output is None:
            return self.client._call(_api.execute(self.id, code, timeout, wait, expected_version))
        with self.stream(code, timeout, wait=wait, expected_version=expected_version) as run:
            for output in run:
                dispatch(output, on_stdout, on_stderr, on_output)
        return run.execution

    def stream(
        self, code: str, timeout: float | None = None, *, wait: bool = True, expected_version: int | None = None
    ) -> ExecutionStream:
        """``execute`` as an iterator of outputs (nbformat dicts) while the cell runs; ``.execution`` at the end."""
        return ExecutionStream(self.client, self.id, _api.execute_body(code, timeout, wait, expected_version))

    def run_cell(self, cell_number: int, timeout: float | None = None, *, with_dependencies: bool = False) -> Execution:
        return self.client._call(_api.run_cell(self.id, cell_number, timeout, with_dependencies))

    def run_all(self, timeout: float | None = None) -> list[Execution]:
        """Run every cell in order; stops after the first that does not end ok (the last of the list)."""
        return self.client._call(_api.run_many(self.id, "run_all", timeout))

    def run_stale(self, timeout: float | None = None) -> list[Execution]:
        """Run, in order, the cells that are stale or never ran."""
        return self.client._call(_api.run_many(self.id, "run_stale", timeout))

    def interrupt(self) -> None:
        self.client._call(_api.interrupt(self.id))

    def restart(self) -> None:
        """A fresh kernel process: memory is empty, cells are kept (not run)."""
        self.client._call(_api.restart(self.id))

    def shutdown(self) -> None:
        self.client._call(_api.shutdown(self.id))

    # --- cells (each change returns the notebook's new version) ------------------------------------------

    def add_cell(self, cell_number: int, code: str, *, expected_version: int | None = None) -> int:
        return self.client._call(_api.add_cell(self.id, cell_number, code, expected_version))

    def edit_cell(self, cell_number: int, code: str, *, expected_version: int | None = None) -> int:
        return self.client._call(_api.edit_cell(self.id, cell_number, code, expected_version))

    def delete_cell(self, cell_number: int, *, expected_version: int | None = None) -> int:
        return self.client._call(_api.delete_cell(self.id, cell_number, expected_version))

    def cells(self) -> Cells:
        """Every cell in run order, with the notebook's ``version``."""
        return self.client._call(_api.cells(self.id))

    def outputs(self, cell_number: int) -> Execution:
        """The outputs and status of the cell's last run."""
        return self.client._call(_api.outputs(self.id, cell_number))

    # --- files and notebooks -------------------------------------------------------------------------------

    def upload(self, path: str, data: bytes | str) -> int:
        """Write ``data`` to ``/work/{path}`` in the kernel; returns the size written."""
        return self.client._call(_api.upload(self.id, path, data))

    def download(self, path: str) -> bytes:
        return self.client._call(_api.download(self.id, path))

    def to_ipynb(self) -> dict[str, Any]:
        """The notebook (cells, outputs) as an nbformat v4 document."""
        return self.client._call(_api.to_ipynb(self.id))

    def import_ipynb(self, document: dict[str, Any] | str | bytes, *, expected_version: int | None = None) -> list[int]:
        """Add the code cells of an ``.ipynb`` document; returns their cell numbers."""
        return self.client._call(_api.import_ipynb(self.id, document, expected_version))


def dispatch(
    output: Output, on_stdout: OnText | None, on_stderr: OnText | None, on_output: OnOutput | None
) -> list[Any]:
    """Call the callbacks that want ``output``; their return values (awaitables, for the async client)."""
    called = []
    if output.get("output_type") == "stream":
        callback = on_stdout if output.get("name") == "stdout" else on_stderr
        if callback is not None:
            called.append(callback(str(output.get("text", ""))))
    if on_output is not None:
        called.append(on_output(output))
    return called


class ExecutionStream:
    """The outputs of a streamed run, in order; ``execution`` once they are all read. Use ``with`` (or iterate to
    the end) so the connection is closed."""

    def __init__(self, client: Client, kernel_id: int, body: dict[str, Any]) -> None:
        self._client, self._kernel_id, self._body = client, kernel_id, body
        self._context: AbstractContextManager[httpx.Response] | None = None
        self._response: httpx.Response | None = None
        self._reader = _api.StreamReader()

    def __enter__(self) -> ExecutionStream:
        client = self._client
        self._context = client._http.stream(
            "POST",
            _api.execute_stream_path(self._kernel_id),
            json=self._body,
            timeout=_api.http_timeout(client.request_timeout, waits_on_kernel=True),
        )
        with _api.transport_errors(client.url):
            self._response = self._context.__enter__()
        if not self._response.is_success:
            self._response.read()
            self.__exit__(None, None, None)
            _api.checked(self._response)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._context is not None:
            context, self._context = self._context, None
            context.__exit__(None, None, None)

    def __iter__(self) -> Iterator[Output]:
        if self._response is None:
            self.__enter__()
        assert self._response is not None
        try:
            with _api.transport_errors(self._client.url):
                for line in self._response.iter_lines():
                    output = self._reader.feed(line)
                    if output is not None:
                        yield output
            self._reader.feed("")
        finally:
            self.__exit__(None, None, None)

    @property
    def execution(self) -> Execution:
        """The run's result (after the outputs have been read)."""
        return self._reader.result()
