"""The asynchronous client: ``AsyncClient`` and ``AsyncKernel``, with the method names of the synchronous ones."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, TypeVar

import httpx

from jupycell import _api
from jupycell.client import OnOutput, OnText, dispatch
from jupycell.errors import KernelNotFound
from jupycell.models import Cells, Execution, KernelInfo, Output

T = TypeVar("T")


class AsyncClient:
    """``Client`` for asyncio: ``async with AsyncClient() as client: kernel = await client.start_kernel()``.

    Callbacks (``on_stdout``...) may be plain functions or coroutines."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *, request_timeout: float = 30.0) -> None:
        self.url, api_key = _api.resolve_config(url, api_key)
        self.request_timeout = request_timeout
        self._http = httpx.AsyncClient(base_url=self.url, headers=_api.headers(api_key))

    async def _call(self, call: _api.Call[T]) -> T:
        with _api.transport_errors(self.url):
            response = await self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,
                content=call.content,
                timeout=_api.http_timeout(self.request_timeout, call.waits_on_kernel),
            )
        return call.parse(_api.checked(response))

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start_kernel(self, runtime: str | None = None) -> AsyncKernel:
        return AsyncKernel(self, await self._call(_api.start(runtime)))

    async def kernel(self, kernel_id: int) -> AsyncKernel:
        await self._call(_api.kernel_info(kernel_id))
        return AsyncKernel(self, kernel_id)

    async def kernels(self) -> list[KernelInfo]:
        return await self._call(_api.kernels())


class AsyncKernel(AbstractAsyncContextManager["AsyncKernel"]):
    """``Kernel`` for asyncio; ``async with await client.start_kernel() as kernel:`` shuts it down on exit."""

    def __init__(self, client: AsyncClient, kernel_id: int) -> None:
        self.client = client
        self.id = kernel_id

    def __repr__(self) -> str:
        return f"AsyncKernel({self.id})"

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.shutdown()
        except KernelNotFound:
            pass

    async def info(self) -> KernelInfo:
        return await self.client._call(_api.kernel_info(self.id))

    async def execute(
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
        if on_stdout is None and on_stderr is None and on_output is None:
            return await self.client._call(_api.execute(self.id, code, timeout, wait, expected_version))
        async with self.stream(code, timeout, wait=wait, expected_version=expected_version) as run:
            async for output in run:
                for pending in dispatch(output, on_stdout, on_stderr, on_output):
                    if inspect.isawaitable(pending):
                        await pending
        return run.execution

    def stream(
        self, code: str, timeout: float | None = None, *, wait: bool = True, expected_version: int | None = None
    ) -> AsyncExecutionStream:
        return AsyncExecutionStream(self.client, self.id, _api.execute_body(code, timeout, wait, expected_version))

    async def run_cell(
        self, cell_number: int, timeout: float | None = None, *, with_dependencies: bool = False
    ) -> Execution:
        return await self.client._call(_api.run_cell(self.id, cell_number, timeout, with_dependencies))

    async def run_all(self, timeout: float | None = None) -> list[Execution]:
        return await self.client._call(_api.run_many(self.id, "run_all", timeout))

    async def run_stale(self, timeout: float | None = None) -> list[Execution]:
        return await self.client._call(_api.run_many(self.id, "run_stale", timeout))

    async def interrupt(self) -> None:
        await self.client._call(_api.interrupt(self.id))

    async def restart(self) -> None:
        await self.client._call(_api.restart(self.id))

    async def shutdown(self) -> None:
        await self.client._call(_api.shutdown(self.id))

    async def add_cell(self, cell_number: int, code: str, *, expected_version: int | None = None) -> int:
        return await self.client._call(_api.add_cell(self.id, cell_number, code, expected_version))

    async def edit_cell(self, cell_number: int, code: str, *, expected_version: int | None = None) -> int:
        return await self.client._call(_api.edit_cell(self.id, cell_number, code, expected_version))

    async def delete_cell(self, cell_number: int, *, expected_version: int | None = None) -> int:
        return await self.client._call(_api.delete_cell(self.id, cell_number, expected_version))

    async def cells(self) -> Cells:
        return await self.client._call(_api.cells(self.id))

    async def outputs(self, cell_number: int) -> Execution:
        return await self.client._call(_api.outputs(self.id, cell_number))

    async def upload(self, path: str, data: bytes | str) -> int:
        return await self.client._call(_api.upload(self.id, path, data))

    async def download(self, path: str) -> bytes:
        return await self.client._call(_api.download(self.id, path))

    async def to_ipynb(self) -> dict[str, Any]:
        return await self.client._call(_api.to_ipynb(self.id))

    async def import_ipynb(
        self, document: dict[str, Any] | str | bytes, *, expected_version: int | None = None
    ) -> list[int]:
        return await self.client._call(_api.import_ipynb(self.id, document, expected_version))


class AsyncExecutionStream:
    """``ExecutionStream`` for asyncio: ``async with kernel.stream(code) as run: async for output in run: ...``."""

    def __init__(self, client: AsyncClient, kernel_id: int, body: dict[str, Any]) -> None:
        self._client, self._kernel_id, self._body = client, kernel_id, body
        self._context: AbstractAsyncContextManager[httpx.Response] | None = None
        self._response: httpx.Response | None = None
        self._reader = _api.StreamReader()

    async def __aenter__(self) -> AsyncExecutionStream:
        client = self._client
        self._context = client._http.stream(
            "POST",
            _api.execute_stream_path(self._kernel_id),
            json=self._body,
            timeout=_api.http_timeout(client.request_timeout, waits_on_kernel=True),
        )
        with _api.transport_errors(client.url):
            self._response = await self._context.__aenter__()
        if not self._response.is_success:
            await self._response.aread()
            await self.__aexit__(None, None, None)
            _api.checked(self._response)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._context is not None:
            context, self._context = self._context, None
            await context.__aexit__(None, None, None)

    async def __aiter__(self) -> AsyncIterator[Output]:
        if self._response is None:
            await self.__aenter__()
        assert self._response is not None
        try:
            with _api.transport_errors(self._client.url):
                async for line in self._response.aiter_lines():
                    output = self._reader.feed(line)
                    if output is not None:
                        yield output
            self._reader.feed("")
        finally:
            await self.__aexit__(None, None, None)

    @property
    def execution(self) -> Execution:
        return self._reader.result()
