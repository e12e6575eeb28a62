"""A kernel container really has its limits, its isolation and no network."""

from __future__ import annotations

import docker
import pytest

from testing.harness import Api, GatewayProcess, stdout_of


@pytest.fixture
def container(gateway: GatewayProcess, kernel: int):
    client = docker.from_env()
    try:
        yield client.containers.get(f"jupycell-{gateway.instance}-{kernel}")
    finally:
        client.close()


def test_docker_inspect_shows_every_limit(container) -> None:
    host = container.attrs["HostConfig"]
    config = container.attrs["Config"]
    assert host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True
    assert host["Privileged"] is False
    assert host["Init"] is True
    assert host["Memory"] == 512 * 2**20 and host["MemorySwap"] == host["Memory"]
    assert host["NanoCpus"] == 10**9
    assert host["PidsLimit"] == 256
    # /opt/jupycell-packages: installed packages (issue 13, docs/packages.md); the only tmpfs without noexec
    assert set(host["Tmpfs"]) == {"/tmp", "/work", "/opt/jupycell-packages"} and "size=256m" in host["Tmpfs"]["/tmp"]
    assert host["LogConfig"]["Config"]["max-size"] == "1024k" and host["LogConfig"]["Config"]["max-file"] == "1"
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 1024}]
    assert config["User"] == "1000:1000"
    assert config["Labels"]["jupycell.managed"] == "true"
    mounts = container.attrs["Mounts"]
    assert sorted(m["Destination"] for m in mounts) == ["/run/jupycell", "/run/jupycell-wheels"]
    assert [m["RW"] for m in mounts if m["Destination"] == "/run/jupycell-wheels"] == [False]  # its wheels, read-only


def test_kernel_sees_no_network_and_no_privileges(api: Api, kernel: int) -> None:
    code = """
import os, socket
print(os.getuid(), sorted(os.listdir('/sys/class/net')))
print([l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0])
s = socket.socket(); s.settimeout(2)
try:
    s.connect(('1.1.1.1', 80)); print('connected')
except OSError as e:
    print('connect failed', e.errno)
"""
    lines = stdout_of(api.execute(kernel, code)).splitlines()
    assert lines[0] == "1000 ['lo']"
    assert lines[1] == "0000000000000000"
    assert lines[2].startswith("connect failed")


def test_only_tmp_and_work_are_writable(api: Api, kernel: int) -> None:
    code = """
import os
places = ['/', '/usr', '/etc', '/opt', '/tmp', '/work', os.getcwd()]
for path in places + ['/run/jupycell-wheels', '/opt/jupycell-packages']:
    try:
        open(os.path.join(path, 'probe'), 'w').close(); print(path, 'writable')
    except OSError as e:
        print(path, e.strerror)
"""
    lines = dict(
        line.rsplit(" ", 1) if " " in line else (line, "")
        for line in stdout_of(api.execute(kernel, code))
        .replace("Read-only file system", "ro")
        .replace("Permission denied", "ro")
        .splitlines()
    )
    assert lines == {
        "/": "ro",
        "/usr": "ro",
        "/etc": "ro",
        "/opt": "ro",
        "/tmp": "writable",
        "/work": "writable",
        "/run/jupycell-wheels": "ro",  # the kernel's fetched wheels (issue 13)
        "/opt/jupycell-packages": "writable",  # where they are installed: a tmpfs of the kernel (issue 13)
    }


def test_kernel_cannot_see_connection_secrets_of_others(api: Api, kernel: int) -> None:
    listing = stdout_of(api.execute(kernel, "import os; print(sorted(os.listdir('/run/jupycell')))"))
    assert listing.startswith("['k-1', 'k-2', 'k-3', 'k-4', 'k-5', 'kernel.json']")


def test_numpy_works_under_the_limits(api: Api, kernel: int) -> None:
    result = api.execute(
        kernel, "import numpy as np\na = np.random.rand(300, 300)\nprint(round(float(np.trace(a @ np.linalg.inv(a)))))"
    )
    assert stdout_of(result) == "300\n"
