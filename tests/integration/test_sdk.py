"""The Python SDK (clients/python) against a real gateway: sync and async, streaming, conflicts, files, errors, and
the README's example run as written from a clean virtual environment."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from testing.harness import ROOT, GatewayProcess
from tests.conftest import KEYS

sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))

import jupycell  # noqa: E402

SDK = ROOT / "clients" / "python"

# Front doors over the same core: what they add does not depend on the container runtime, so `make test-runsc`
# (integration and security again, under gVisor) does not repeat them.
pytestmark = pytest.mark.skipif(os.environ.get("JUPYCELL_RUNTIME") == "runsc", reason="runtime-independent")


@pytest.fixture
def client(gateway: GatewayProcess) -> jupycell.Client:
    with jupycell.Client(gateway.url) as client:
        yield client


def test_execute_results_errors_and_images(client: jupycell.Client) -> None:
    with client.start_kernel() as kernel:
        first = kernel.execute("x = 6 * 7\nprint('out'); import sys; print('err', file=sys.stderr)\nx")
        assert first.ok and first.stdout == "out\n" and first.stderr == "err\n" and first.text == "42"
        assert first.cell_number == 1 and first.execution_count == 1 and first.version == 1
        assert first.results[0].is_main_result and first.error is None and not first.truncated
        failed = kernel.execute("raise KeyError('nope')")
        assert failed.status == "error" and failed.error is not None
        assert (failed.error.name, failed.error.value) == ("KeyError", "'nope'")
        assert not any("\x1b" in line for line in failed.error.traceback)
        plot = kernel.execute("import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()")
        assert len(plot.images) == 1 and plot.images[0].startswith(b"\x89PNG")
        html = kernel.execute("import pandas as pd\npd.DataFrame({'a': [1]})")
        assert html.results[0].html and "<table" in html.results[0].html
        late = kernel.execute("import time\ntime.sleep(5)", timeout=0.5)
        assert late.status == "timeout" and "deadline" in (late.detail or "")
        kernel_id = kernel.id
        assert [k.kernel_id for k in client.kernels()] == [kernel_id]
        assert client.kernel(kernel_id).execute("print(x)").stdout == "42\n"  # re-attached: same memory
    with pytest.raises(jupycell.KernelNotFound, match=f"Kernel {kernel_id} not found"):
        client.kernel(kernel_id)


def test_streaming_by_callbacks_and_by_iterator(client: jupycell.Client) -> None:
    code = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)"
    with client.start_kernel() as kernel:
        seen: list[str] = []
        outputs: list[dict] = []
        execution = kernel.execute(code, on_stdout=seen.append, on_output=outputs.append)
        assert len(seen) >= 2 and "".join(seen) == "0\n1\n2\n" and len(outputs) == len(seen)
        assert execution.ok and execution.stdout == "0\n1\n2\n" and execution.cell_number == 1
        with kernel.stream(code) as run:
            streamed = [output["text"] for output in run]
        assert "".join(streamed) == "0\n1\n2\n" and run.execution.cell_number == 2


def test_cells_versions_and_conflicts(client: jupycell.Client) -> None:
    with client.start_kernel() as kernel:
        assert kernel.add_cell(1, "a = 1") == 1
        assert kernel.add_cell(2, "b = a + 1\nprint(b)") == 2
        runs = kernel.run_all()
        assert [r.status for r in runs] == ["ok", "ok"] and runs[1].stdout == "2\n"
        cells = kernel.cells()
        assert [c.number for c in cells] == [1, 2] and cells.version == 2 and cells[1].status == "ok"
        assert kernel.edit_cell(1, "a = 10", expected_version=cells.version) == 3
        with pytest.raises(jupycell.VersionConflict) as conflict:
            kernel.delete_cell(2, expected_version=cells.version)
        assert conflict.value.current_version == 3 and conflict.value.status_code == 409
        assert "nothing was changed" in str(conflict.value) and len(kernel.cells()) == 2
        assert kernel.cells()[1].stale  # cell 2 uses a, which cell 1 now defines differently
        stale_runs = kernel.run_stale()
        assert [r.cell_number for r in stale_runs] == [1, 2] and stale_runs[-1].stdout == "11\n"
        assert kernel.run_cell(2).stdout == "11\n" and kernel.outputs(2).stdout == "11\n"
        with pytest.raises(jupycell.CellExists):
            kernel.add_cell(1, "again")
        with pytest.raises(jupycell.CellNotFound):
            kernel.run_cell(99)
        assert kernel.delete_cell(2) == 4
        document = kernel.to_ipynb()
        assert document["metadata"]["jupycell"]["version"] == 4
        with client.start_kernel() as copy:
            assert copy.import_ipynb(document) == [1]
            assert copy.run_all()[0].ok and copy.execute("print(a)").stdout == "10\n"


def test_files_restart_interrupt_and_limits(client: jupycell.Client) -> None:
    with client.start_kernel() as kernel:
        assert kernel.upload("data/in.bin", bytes(range(256))) == 256
        assert kernel.download("/work/data/in.bin") == bytes(range(256))
        assert kernel.execute("print(len(open('/work/data/in.bin', 'rb').read()))").stdout == "256\n"
        with pytest.raises(jupycell.FileNotFoundInKernel):
            kernel.download("missing.txt")
        with pytest.raises(jupycell.InvalidRequest, match="working directory|outside|absolute|\\.\\."):
            kernel.upload("../escape.txt", b"x")
        with pytest.raises(jupycell.TooLarge, match="Code too large"):
            kernel.execute("#" * (1024 * 1024 + 1))
        kernel.execute("y = 5")
        kernel.interrupt()
        kernel.restart()
        assert kernel.execute("y").error.name == "NameError"
        assert kernel.info().state in ("idle", "busy")


def test_async_client_has_the_same_methods(gateway: GatewayProcess) -> None:
    sync_methods = {name for name in dir(jupycell.Kernel) if not name.startswith("_")}
    async_methods = {name for name in dir(jupycell.AsyncKernel) if not name.startswith("_")}
    assert sync_methods == async_methods
    assert {n for n in dir(jupycell.Client) if not n.startswith("_")} == {
        n for n in dir(jupycell.AsyncClient) if not n.startswith("_")
    }

    async def scenario() -> None:
        async with jupycell.AsyncClient(gateway.url) as client:
            async with await client.start_kernel() as kernel:
                assert (await kernel.execute("z = 3\nz * 2")).text == "6"
                seen: list[str] = []

                async def on_stdout(text: str) -> None:
                    seen.append(text)

                execution = await kernel.execute("print(z)", on_stdout=on_stdout)
                assert seen == ["3\n"] and execution.cell_number == 2
                async with kernel.stream("print(z + 1)") as run:
                    assert [output["text"] async for output in run] == ["4\n"]
                assert run.execution.ok
                cells = await kernel.cells()
                with pytest.raises(jupycell.VersionConflict):
                    await kernel.edit_cell(1, "z = 4", expected_version=cells.version - 1)
                assert await kernel.upload("f.txt", "hi") == 2 and await kernel.download("f.txt") == b"hi"
                kernel_id = kernel.id
            with pytest.raises(jupycell.KernelNotFound):
                await client.kernel(kernel_id)

    asyncio.run(scenario())


def test_keys_unreachable_gateway_and_configuration_from_the_environment(
    keyed_gateway: GatewayProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(jupycell.Unauthorized, match="API key"):
        jupycell.Client(keyed_gateway.url).kernels()
    monkeypatch.setenv("JUPYCELL_URL", keyed_gateway.url)
    monkeypatch.setenv("JUPYCELL_API_KEY", KEYS["bob"])
    with jupycell.Client() as bob, bob.start_kernel() as kernel:
        with pytest.raises(jupycell.KernelNotFound):  # alice does not see bob's kernel
            jupycell.Client(api_key=KEYS["alice"]).kernel(kernel.id)
        assert kernel.execute("print('bob')").stdout == "bob\n"
    with pytest.raises(jupycell.ConnectionFailed):
        jupycell.Client("http://127.0.0.1:9", request_timeout=5).kernels()


def test_readme_example_runs_as_written_from_a_clean_venv(gateway: GatewayProcess, tmp_path: Path) -> None:
    """``pip install ./clients/python`` into a new virtual environment, then the README's example, unchanged."""
    readme = (SDK / "README.md").read_text()
    example = re.search(r"## Example\n\n```python\n(.*?)```", readme, re.S)
    assert example is not None and len(example.group(1).strip().splitlines()) <= 12
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)  # filled by this interpreter's pip (no ensurepip needed)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(SDK)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    script = tmp_path / "example.py"
    script.write_text(example.group(1))
    environment = {**os.environ, "JUPYCELL_URL": gateway.url}
    environment.pop("PYTHONPATH", None)
    ran = subprocess.run([python, script], capture_output=True, text=True, timeout=300, env=environment, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        "12.566370614359172 20",
        "error ZeroDivisionError: division by zero",
        "1 PNG image(s) 4",
    ]
    # Installed from the package, not from the checkout: no gateway module in that environment.
    probe = subprocess.run([python, "-c", "import gateway"], capture_output=True, cwd=tmp_path, env=environment)
    assert probe.returncode != 0
