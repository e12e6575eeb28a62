"""The MCP server at /mcp with the official ``mcp`` client against a real gateway and real kernel containers."""

from __future__ import annotations

import asyncio
import base64
import io
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
import httpx2
import mcp
import pytest
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ImageContent, TextContent
from PIL import Image

from testing.harness import Api, GatewayProcess
from tests.conftest import KEYS

T = TypeVar("T")

# Front doors over the same core: what they add does not depend on the container runtime, so `make test-runsc`
# (integration and security again, under gVisor) does not repeat them.
pytestmark = pytest.mark.skipif(os.environ.get("JUPYCELL_RUNTIME") == "runsc", reason="runtime-independent")

TOOL_NAMES = {
    "start_kernel",
    "list_kernels",
    "execute_code",
    "add_cell",
    "edit_cell",
    "run_cell",
    "run_all",
    "delete_cell",
    "list_cells",
    "read_cell",
    "upload_file",
    "download_file",
    "interrupt_kernel",
    "install_packages",
    "restart_kernel",
    "shutdown_kernel",
}


@asynccontextmanager
async def connected(
    url: str, key: str | None = None, mode: str = "auto", host: str | None = None
) -> AsyncIterator[mcp.Client]:
    """The official client on /mcp, with ``key`` as Bearer token; ``mode="legacy"``: the initialize handshake;
    ``host``: the Host header to send (as a port published on 127.0.0.1 would give)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if host:
        headers["Host"] = host
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=120)) as http:
        async with mcp.Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client:
            yield client


def run(url: str, scenario: Callable[[mcp.Client], Awaitable[T]], key: str | None = KEYS["alice"], **kw: Any) -> T:
    async def main() -> T:
        async with connected(url, key, **kw) as client:
            return await scenario(client)

    return asyncio.run(main())


def text_of(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def started(client: mcp.Client) -> int:
    result = await client.call_tool("start_kernel", {})
    assert not result.is_error, text_of(result)
    return int(result.structured_content["kernel_id"])


@pytest.fixture
def alice(keyed_gateway: GatewayProcess) -> Api:
    api = Api(keyed_gateway.url, key=KEYS["alice"])
    yield api
    api.close()


@pytest.fixture
def kernel_of_alice(alice: Api) -> int:
    kernel_id = alice.start()
    yield kernel_id
    alice.shutdown(kernel_id)


def test_tools_are_listed_with_their_names_descriptions_and_hints(keyed_gateway: GatewayProcess) -> None:
    tools = {tool.name: tool for tool in run(keyed_gateway.url, lambda c: c.list_tools()).tools}
    assert set(tools) == TOOL_NAMES
    for name in ("list_kernels", "list_cells", "read_cell", "download_file"):
        assert tools[name].annotations.read_only_hint is True, name
    for name in ("delete_cell", "shutdown_kernel", "restart_kernel", "edit_cell"):
        assert tools[name].annotations.destructive_hint is True, name
    assert tools["start_kernel"].annotations.destructive_hint is False
    assert all(len(tool.description or "") > 60 for tool in tools.values())
    assert set(tools["execute_code"].input_schema["properties"]) == {"kernel_id", "code", "timeout"}
    assert tools["list_cells"].input_schema["properties"]["include_outputs"]["default"] is False


def test_state_is_kept_across_execute_code_calls_and_cells_are_shared_with_http(
    keyed_gateway: GatewayProcess, alice: Api
) -> None:
    async def scenario(client: mcp.Client) -> tuple[int, list[CallToolResult]]:
        kernel_id = await started(client)
        first = await client.call_tool("execute_code", {"kernel_id": kernel_id, "code": "x = 40"})
        second = await client.call_tool("execute_code", {"kernel_id": kernel_id, "code": "x += 2\nprint(x)"})
        return kernel_id, [first, second]

    kernel_id, (first, second) = run(keyed_gateway.url, scenario)
    try:
        assert not first.is_error and first.structured_content["cell_number"] == 1
        assert text_of(second) == "42\n"
        facts = second.structured_content
        assert {k: facts[k] for k in ("kernel_id", "cell_number", "status", "execution_count", "version")} == {
            "kernel_id": kernel_id,
            "cell_number": 2,
            "status": "ok",
            "execution_count": 2,
            "version": 2,
        }
        # MCP -> HTTP: the cells made through MCP are the kernel's cells.
        cells = alice.http.get(f"/kernels/{kernel_id}/cells").json()
        assert [c["code"] for c in cells["cells"]] == ["x = 40", "x += 2\nprint(x)"] and cells["version"] == 2
        # HTTP -> MCP: a cell added over HTTP is listed, read and run through MCP, with the same memory.
        assert alice.add(kernel_id, 10, "print(x * 10)").status_code == 200

        async def from_mcp(client: mcp.Client) -> list[CallToolResult]:
            return [
                await client.call_tool("list_cells", {"kernel_id": kernel_id}),
                await client.call_tool("run_cell", {"kernel_id": kernel_id, "cell_number": 10}),
                await client.call_tool("read_cell", {"kernel_id": kernel_id, "cell_number": 10}),
            ]

        listing, ran, read = run(keyed_gateway.url, from_mcp)
        assert [c["cell_number"] for c in listing.structured_content["cells"]] == [1, 2, 10]
        assert "print(x * 10)" in text_of(listing) and "420" not in text_of(listing)  # no outputs by default
        assert listing.structured_content["version"] == 3
        assert text_of(ran) == "420\n" and "420" in text_of(read)
    finally:
        alice.shutdown(kernel_id)


def test_a_matplotlib_plot_arrives_as_image_content(keyed_gateway: GatewayProcess, kernel_of_alice: int) -> None:
    code = "import matplotlib.pyplot as plt\nplt.figure(figsize=(20, 10), dpi=100)\nplt.plot([1, 3, 2])\nplt.show()"
    result = run(keyed_gateway.url, lambda c: c.call_tool("execute_code", {"kernel_id": kernel_of_alice, "code": code}))
    assert not result.is_error, text_of(result)
    images = [block for block in result.content if isinstance(block, ImageContent)]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(images[0].data))) as image:
        assert image.format == "PNG" and max(image.size) == 1024  # 2000 px wide as drawn, downscaled
    assert "<Figure" not in text_of(result)  # the image stands for the figure's text/plain repr


def test_an_exception_is_an_error_result_with_a_trimmed_traceback(
    keyed_gateway: GatewayProcess, kernel_of_alice: int
) -> None:
    code = "def f(n):\n    return f(n + 1) if n < 50 else 1 / 0\nf(0)"
    result = run(keyed_gateway.url, lambda c: c.call_tool("execute_code", {"kernel_id": kernel_of_alice, "code": code}))
    assert result.is_error
    text = text_of(result)
    assert text.startswith("ZeroDivisionError: division by zero") and "traceback lines dropped" in text
    assert "\x1b[" not in text
    assert result.structured_content["status"] == "error"
    assert result.structured_content["error"] == "ZeroDivisionError: division by zero"


def test_a_long_cell_sends_progress_and_its_output_arrives(keyed_gateway: GatewayProcess, kernel_of_alice: int) -> None:
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async def scenario(client: mcp.Client) -> CallToolResult:
        code = "import time\ntime.sleep(1.5)\nprint('done')"
        args = {"kernel_id": kernel_of_alice, "code": code}
        return await client.call_tool("execute_code", args, progress_callback=on_progress)

    result = run(keyed_gateway.url, scenario)
    assert text_of(result) == "done\n"
    assert progress, "no progress notification during a 1.5 s run (interval 0.3 s)"
    values = [value for value, _ in progress]
    assert values == sorted(values) and "still running" in (progress[-1][1] or "")


def test_keys_and_ownership_are_those_of_http(keyed_gateway: GatewayProcess, kernel_of_alice: int) -> None:
    url = keyed_gateway.url
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    refused = httpx.post(f"{url}/mcp", json=listing, headers={"Accept": "application/json, text/event-stream"})
    assert refused.status_code == 401 and "API key" in refused.json()["detail"]

    async def as_bob(client: mcp.Client) -> list[CallToolResult]:
        return [
            await client.call_tool("execute_code", {"kernel_id": kernel_of_alice, "code": "1"}),
            await client.call_tool("shutdown_kernel", {"kernel_id": kernel_of_alice}),
            await client.call_tool("list_kernels", {}),
        ]

    execute, shutdown, kernels = run(url, as_bob, key=KEYS["bob"])
    assert execute.is_error and f"Kernel {kernel_of_alice} not found" in text_of(execute)
    assert shutdown.is_error and execute.structured_content["status_code"] == 404
    assert kernel_of_alice not in {k["kernel_id"] for k in kernels.structured_content["kernels"]}
    as_root = run(url, lambda c: c.call_tool("list_kernels", {}), key=KEYS["root"])
    assert kernel_of_alice in {k["kernel_id"] for k in as_root.structured_content["kernels"]}
    assert run(url, lambda c: c.call_tool("list_kernels", {})).structured_content["kernels"]  # alice sees hers


def test_a_handshake_era_client_is_served(keyed_gateway: GatewayProcess, kernel_of_alice: int) -> None:
    async def scenario(client: mcp.Client) -> CallToolResult:
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOL_NAMES
        return await client.call_tool("execute_code", {"kernel_id": kernel_of_alice, "code": "print('legacy')"})

    assert text_of(run(keyed_gateway.url, scenario, mode="legacy")) == "legacy\n"


def test_unknown_hosts_are_refused(keyed_gateway: GatewayProcess) -> None:
    headers = {
        "Authorization": f"Bearer {KEYS['alice']}",
        "Accept": "application/json, text/event-stream",
        "Host": "evil.example:8000",
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    assert httpx.post(f"{keyed_gateway.url}/mcp", json=body, headers=headers).status_code == 421


def test_cells_files_versions_and_lifecycle_tools(keyed_gateway: GatewayProcess, alice: Api) -> None:
    async def scenario(client: mcp.Client) -> dict[str, CallToolResult]:
        kernel_id = await started(client)

        async def call(tool: str, **args: Any) -> CallToolResult:
            return await client.call_tool(tool, {"kernel_id": kernel_id, **args})

        results = {"kernel": kernel_id}
        results["add"] = await call("add_cell", code="y = 1")
        version = results["add"].structured_content["version"]
        results["stale_edit"] = await call("edit_cell", cell_number=1, code="y = 2", expected_version=version + 5)
        results["edit"] = await call("edit_cell", cell_number=1, code="y = 3", expected_version=version)
        results["run_all"] = await call("run_all")
        results["upload"] = await call("upload_file", path="data/in.txt", content="hello file")
        results["download"] = await call("download_file", path="data/in.txt")
        await call("execute_code", code="import matplotlib.pyplot as plt\nplt.plot([1]); plt.savefig('/work/p.png')")
        results["image"] = await call("download_file", path="p.png")
        results["bad_path"] = await call("download_file", path="../etc/passwd")
        results["interrupt"] = await call("interrupt_kernel")
        results["restart"] = await call("restart_kernel")
        results["after_restart"] = await call("execute_code", code="print(y)")
        results["delete"] = await call("delete_cell", cell_number=1)
        results["shutdown"] = await call("shutdown_kernel")
        results["gone"] = await call("list_cells")
        return results

    results = run(keyed_gateway.url, scenario)
    assert results["add"].structured_content["cell_number"] == 1
    stale = results["stale_edit"]
    assert stale.is_error and "Version conflict" in text_of(stale) and stale.structured_content["version"] == 1
    assert results["edit"].structured_content["version"] == 2
    assert not results["run_all"].is_error and results["run_all"].structured_content["status"] == "ok"
    assert results["upload"].structured_content["size"] == len("hello file")
    assert text_of(results["download"]) == "hello file"
    assert isinstance(results["image"].content[0], ImageContent)
    assert results["bad_path"].is_error and results["bad_path"].structured_content["status_code"] == 400
    assert not results["interrupt"].is_error and not results["restart"].is_error
    assert results["after_restart"].is_error and "NameError" in text_of(results["after_restart"])
    assert not results["delete"].is_error and not results["shutdown"].is_error
    assert results["gone"].is_error and "not found" in text_of(results["gone"])
    assert alice.http.get(f"/kernels/{results['kernel']}").status_code == 404


def test_invalid_arguments_are_error_results(keyed_gateway: GatewayProcess, kernel_of_alice: int) -> None:
    async def scenario(client: mcp.Client) -> list[CallToolResult]:
        return [
            await client.call_tool("execute_code", {"kernel_id": kernel_of_alice}),
            await client.call_tool("execute_code", {"kernel_id": kernel_of_alice, "code": "1", "timeout": -5}),
            await client.call_tool("read_cell", {"kernel_id": kernel_of_alice, "cell_number": 77}),
        ]

    missing, negative, absent = run(keyed_gateway.url, scenario)
    assert missing.is_error and "code" in text_of(missing)
    assert negative.is_error and "timeout" in text_of(negative)
    assert absent.is_error and "Cell 77 not found" in text_of(absent)


def test_install_packages_fetches_outside_the_kernel_and_the_import_works(
    keyed_gateway: GatewayProcess, kernel_of_alice: int
) -> None:
    async def scenario(client: mcp.Client) -> list[CallToolResult]:
        async def call(tool: str, **args: Any) -> CallToolResult:
            return await client.call_tool(tool, {"kernel_id": kernel_of_alice, **args})

        return [
            await call("install_packages", packages=["tabulate"]),
            await call("execute_code", code="import tabulate\nprint('imported', tabulate.__name__)"),
            await call("install_packages", packages=["-r /etc/passwd"]),
        ]

    installed, imported, hostile = run(keyed_gateway.url, scenario)
    assert not installed.is_error, text_of(installed)
    assert {w["name"] for w in installed.structured_content["installed"]} == {"tabulate"}
    assert not imported.is_error and "imported tabulate" in text_of(imported)
    assert hostile.is_error and hostile.structured_content["status_code"] == 422
    assert "pip option" in text_of(hostile)
