"""The gateway's HTTP API as request descriptions and response parsers, shared by ``Client`` and ``AsyncClient``.

Nothing here does I/O: each function returns a ``Call`` (what to send, how to read the answer); the clients send it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from jupycell.errors import ConnectionFailed, JupyCellError, error_for
from jupycell.models import Cell, Cells, Execution, KernelInfo, Output

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"


def resolve_config(url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """The gateway URL and API key: the arguments, else ``JUPYCELL_URL`` / ``JUPYCELL_API_KEY``, else defaults."""
    url = url or os.environ.get("JUPYCELL_URL") or DEFAULT_URL
    api_key = api_key if api_key is not None else (os.environ.get("JUPYCELL_API_KEY") or None)
    return url.rstrip("/"), api_key


def headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def http_timeout(request_timeout: float | None, waits_on_kernel: bool) -> httpx.Timeout:
    """The HTTP timeout of one request. A request that waits on the kernel (a run, a start or restart, a file
    transfer queued behind runs) has no read timeout: the gateway's own deadlines end it (the run's ``timeout``,
    its kernel start timeout), so the client never cuts a run shorter than its deadline. The rest uses
    ``request_timeout``."""
    return httpx.Timeout(request_timeout, read=None) if waits_on_kernel else httpx.Timeout(request_timeout)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to turn its successful response into a value."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: dict[str, Any] | None = None
    content: bytes | None = None
    waits_on_kernel: bool = False  # runs code, starts a kernel or queues behind runs (see http_timeout)


@contextmanager
def transport_errors(url: str) -> Iterator[None]:
    """httpx's transport failures (sync or async) as ConnectionFailed, naming the gateway."""
    try:
        yield
    except httpx.TimeoutException as error:
        raise ConnectionFailed(f"No answer from {url} within request_timeout: {error!r}") from error
    except httpx.TransportError as error:
        raise ConnectionFailed(f"Cannot reach the gateway at {url}: {error!r}") from error


def checked(response: httpx.Response) -> httpx.Response:
    """The response if it succeeded; the typed exception carrying the server's message otherwise."""
    if response.is_success:
        return response
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    raise error_for(response.status_code, body, response.text[:500])


def _json(response: httpx.Response) -> Any:
    return response.json()


def _none(response: httpx.Response) -> None:
    return None


def _version(response: httpx.Response) -> int:
    return int(response.json()["version"])


def _execution(response: httpx.Response) -> Execution:
    return Execution.from_response(response.json())


def _executions(response: httpx.Response) -> list[Execution]:
    return [Execution.from_response(item) for item in response.json()["outputs"]]


def _file(path: str) -> str:
    """A path under /work as the URL names it (``/work/a.csv`` and ``a.csv`` are the same file)."""
    path = path[len("/work/") :] if path.startswith("/work/") else path
    # "." and ".." segments encoded, so the gateway (not URL normalisation) judges them: it refuses them clearly.
    return "/".join(
        quote(part, safe="").replace(".", "%2E") if part in (".", "..") else quote(part, safe="")
        for part in path.split("/")
    )


def _body(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


# --- kernels ------------------------------------------------------------------------------------------------


def start(runtime: str | None) -> Call[int]:
    return Call(
        "POST", "/start", lambda r: int(r.json()["kernel_id"]), json=_body(runtime=runtime), waits_on_kernel=True
    )


def kernel_info(kernel_id: int) -> Call[KernelInfo]:
    return Call("GET", f"/kernels/{kernel_id}", lambda r: KernelInfo.from_response(r.json()))


def kernels() -> Call[list[KernelInfo]]:
    return Call("GET", "/kernels", lambda r: [KernelInfo.from_response(k) for k in r.json()["kernels"]])


def interrupt(kernel_id: int) -> Call[None]:
    return Call("POST", f"/kernels/{kernel_id}/interrupt", _none)


def restart(kernel_id: int) -> Call[None]:
    return Call("POST", f"/kernels/{kernel_id}/restart", _none, waits_on_kernel=True)


def shutdown(kernel_id: int) -> Call[None]:
    return Call("DELETE", f"/kernels/{kernel_id}", _none)


# --- running code -------------------------------------------------------------------------------------------


def execute_body(code: str, timeout: float | None, wait: bool, expected_version: int | None) -> dict[str, Any]:
    return _body(code=code, timeout=timeout, wait=wait, expected_version=expected_version, strip_ansi=True)


def execute(
    kernel_id: int, code: str, timeout: float | None, wait: bool, expected_version: int | None
) -> Call[Execution]:
    body = execute_body(code, timeout, wait, expected_version)
    return Call("POST", f"/kernels/{kernel_id}/execute", _execution, json=body, waits_on_kernel=True)


def execute_stream_path(kernel_id: int) -> str:
    return f"/kernels/{kernel_id}/execute/stream"


def run_cell(kernel_id: int, number: int, timeout: float | None, with_dependencies: bool) -> Call[Execution]:
    body = _body(kernel_id=kernel_id, action="run", cell_number=number, timeout=timeout, strip_ansi=True)
    body["with_dependencies"] = with_dependencies
    return Call("POST", "/cell", _execution, json=body, waits_on_kernel=True)


def run_many(kernel_id: int, action: str, timeout: float | None) -> Call[list[Execution]]:
    body = _body(kernel_id=kernel_id, action=action, timeout=timeout, strip_ansi=True)
    return Call("POST", "/cell", _executions, json=body, waits_on_kernel=True)


# --- cells --------------------------------------------------------------------------------------------------


def add_cell(kernel_id: int, number: int, code: str, expected_version: int | None) -> Call[int]:
    body = _body(kernel_id=kernel_id, action="add", cell_number=number, code=code, expected_version=expected_version)
    return Call("POST", "/cell", _version, json=body)


def edit_cell(kernel_id: int, number: int, code: str, expected_version: int | None) -> Call[int]:
    body = _body(kernel_id=kernel_id, action="edit", cell_number=number, code=code, expected_version=expected_version)
    return Call("POST", "/cell", _version, json=body)


def delete_cell(kernel_id: int, number: int, expected_version: int | None) -> Call[int]:
    body = _body(kernel_id=kernel_id, action="delete", cell_number=number, expected_version=expected_version)
    return Call("POST", "/cell", _version, json=body)


def cells(kernel_id: int) -> Call[Cells]:
    def parse(response: httpx.Response) -> Cells:
        body = response.json()
        return Cells([Cell.from_response(c) for c in body["cells"]], int(body["version"]))

    return Call("GET", f"/kernels/{kernel_id}/cells", parse, params={"strip_ansi": "true"})


def outputs(kernel_id: int, number: int) -> Call[Execution]:
    def parse(response: httpx.Response) -> Execution:
        body = response.json()
        return Execution.from_response({**body, "status": body.get("status") or "not run", "cell_number": number})

    params = {"kernel_id": kernel_id, "cell_number": number, "strip_ansi": "true"}
    return Call("GET", "/cell_outputs", parse, params=params)


# --- files and notebooks ------------------------------------------------------------------------------------


def upload(kernel_id: int, path: str, data: bytes | str) -> Call[int]:
    content = data.encode() if isinstance(data, str) else bytes(data)
    path = f"/kernels/{kernel_id}/files/{_file(path)}"
    return Call("PUT", path, lambda r: int(r.json()["size"]), content=content, waits_on_kernel=True)


def download(kernel_id: int, path: str) -> Call[bytes]:
    return Call("GET", f"/kernels/{kernel_id}/files/{_file(path)}", lambda r: r.content, waits_on_kernel=True)


def to_ipynb(kernel_id: int) -> Call[dict[str, Any]]:
    return Call("GET", f"/kernels/{kernel_id}/notebook", _json)


def import_ipynb(
    kernel_id: int, document: dict[str, Any] | str | bytes, expected_version: int | None
) -> Call[list[int]]:
    if isinstance(document, dict):
        content = json.dumps(document).encode()
    else:
        content = document.encode() if isinstance(document, str) else bytes(document)
    params = _body(expected_version=expected_version)
    return Call(
        "POST", f"/kernels/{kernel_id}/notebook", lambda r: list(r.json()["cells"]), content=content, params=params
    )


# --- Server-Sent Events of a streamed run -------------------------------------------------------------------


class StreamReader:
    """Reads the lines of an ``execute/stream`` response: ``feed(line)`` returns an output when one is complete;
    the ``done`` event sets ``execution``, an ``error`` event raises the typed exception."""

    def __init__(self) -> None:
        self.execution: Execution | None = None
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> Output | None:
        if line.startswith(":"):
            return None  # keep-alive comment
        if line:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                self._event = value
            elif field == "data":
                self._data.append(value)
            return None
        event, data = self._event, "\n".join(self._data)
        self._event, self._data = "message", []
        if not data:
            return None
        payload = json.loads(data)
        if event == "output":
            return payload["output"]
        if event == "done":
            self.execution = Execution.from_response(payload)
        elif event == "error":
            raise error_for(int(payload.get("status_code", 500)), payload)
        return None

    def result(self) -> Execution:
        if self.execution is None:
            raise JupyCellError("The stream ended before the run's result arrived.")
        return self.execution
