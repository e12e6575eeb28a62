"""What the gateway returns, as typed objects: executions, their rich results, cells, kernels."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

#: One output in Jupyter's nbformat v4 shape (``output_type`` = stream, display_data, execute_result or error).
Output = dict[str, Any]


@dataclass(frozen=True)
class ExecutionError:
    """The exception the code raised: its class name, its message and the (ANSI-free) traceback lines."""

    name: str
    value: str
    traceback: list[str]

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"


@dataclass(frozen=True)
class Result:
    """A rich output (an ``execute_result`` or a ``display_data``): one value in several formats (mime types)."""

    data: dict[str, Any]
    is_main_result: bool = False  # the value of the cell's last expression

    def formats(self) -> list[str]:
        return sorted(self.data)

    def _text(self, mime: str) -> str | None:
        value = self.data.get(mime)
        return value if isinstance(value, str) else None

    def _bytes(self, mime: str) -> bytes | None:
        value = self._text(mime)
        return base64.b64decode(value) if value is not None else None

    @property
    def text(self) -> str | None:
        return self._text("text/plain")

    @property
    def html(self) -> str | None:
        return self._text("text/html")

    @property
    def markdown(self) -> str | None:
        return self._text("text/markdown")

    @property
    def svg(self) -> str | None:
        return self._text("image/svg+xml")

    @property
    def latex(self) -> str | None:
        return self._text("text/latex")

    @property
    def json(self) -> Any:
        return self.data.get("application/json")

    @property
    def png(self) -> bytes | None:
        """The PNG image's bytes (decoded from the base64 the gateway sends)."""
        return self._bytes("image/png")

    @property
    def jpeg(self) -> bytes | None:
        return self._bytes("image/jpeg")


@dataclass
class Execution:
    """How a cell run ended and what it produced.

    ``status``: ``ok``, ``error`` (the code raised: see ``error``), ``timeout`` (the deadline passed) or ``died``
    (the kernel died, e.g. out of memory: see ``detail``). ``truncated``: the gateway dropped part of the output
    (past its size caps; the start and the end are kept).
    """

    status: str
    cell_number: int | None
    execution_count: int | None
    outputs: list[Output] = field(default_factory=list)
    truncated: bool = False
    detail: str | None = None
    version: int | None = None  # the notebook's version (execute responses)
    kernel_state_kept: bool = True

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> Execution:
        return cls(
            status=str(body.get("status")),
            cell_number=body.get("cell_number"),
            execution_count=body.get("execution_count"),
            outputs=list(body.get("outputs") or []),
            truncated=bool(body.get("truncated", False)),
            detail=body.get("detail"),
            version=body.get("version"),
            kernel_state_kept=bool(body.get("kernel_state_kept", True)),
        )

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def _stream(self, name: str) -> str:
        return "".join(
            str(o.get("text", "")) for o in self.outputs if o.get("output_type") == "stream" and o.get("name") == name
        )

    @property
    def stdout(self) -> str:
        return self._stream("stdout")

    @property
    def stderr(self) -> str:
        return self._stream("stderr")

    @property
    def error(self) -> ExecutionError | None:
        for output in self.outputs:
            if output.get("output_type") == "error":
                return ExecutionError(
                    str(output.get("ename", "")), str(output.get("evalue", "")), list(output.get("traceback", []))
                )
        return None

    @property
    def results(self) -> list[Result]:
        return [
            Result(dict(o.get("data") or {}), is_main_result=o.get("output_type") == "execute_result")
            for o in self.outputs
            if o.get("output_type") in ("execute_result", "display_data")
        ]

    @property
    def text(self) -> str | None:
        """The text of the cell's value (its last expression), if it had one."""
        return next((r.text for r in self.results if r.is_main_result), None)

    @property
    def images(self) -> list[bytes]:
        """Every PNG or JPEG image the run displayed (e.g. matplotlib plots), as bytes."""
        return [image for r in self.results if (image := r.png or r.jpeg) is not None]


@dataclass(frozen=True)
class Cell:
    """A cell of a kernel's notebook and the record of its last run."""

    number: int
    code: str
    status: str | None  # None: never run
    execution_count: int | None
    stale: bool
    outputs: list[Output]

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> Cell:
        return cls(
            number=int(body["number"]),
            code=str(body["code"]),
            status=body.get("status"),
            execution_count=body.get("execution_count"),
            stale=bool(body.get("stale", False)),
            outputs=list(body.get("outputs") or []),
        )


@dataclass(frozen=True)
class Cells:
    """A kernel's cells in run order, and the notebook's ``version`` they were read at."""

    cells: list[Cell]
    version: int

    def __iter__(self):  # noqa: ANN204 (Iterator[Cell])
        return iter(self.cells)

    def __len__(self) -> int:
        return len(self.cells)

    def __getitem__(self, index: int) -> Cell:
        return self.cells[index]


@dataclass(frozen=True)
class KernelInfo:
    """A kernel as ``kernels()`` lists it."""

    kernel_id: int
    state: str  # starting, idle, busy, dead
    cell_count: int
    version: int
    runtime: str
    last_death: str | None

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> KernelInfo:
        return cls(
            kernel_id=int(body["kernel_id"]),
            state=str(body.get("state")),
            cell_count=int(body.get("cell_count", 0)),
            version=int(body.get("version", 0)),
            runtime=str(body.get("runtime", "")),
            last_death=body.get("last_death"),
        )
