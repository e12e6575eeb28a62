"""Reaching out of the sandbox: the file system, the host, other kernels, secrets, the network, privileges,
and killing things.

Where gVisor (runsc) answers differently from runc, the test says so and checks the gVisor answer (it implements
its own kernel: /proc and /sys are its own, not masked host files).
"""

from __future__ import annotations

import pytest

from testing.harness import Api, GatewayProcess, stdout_of
from tests.security.conftest import ADMIN_KEY, GVISOR, KEY, json_out
from tests.security.probes import PRIVILEGE_PROBE, assert_network_fails_fast, assert_no_privileges, network_probe


def test_writing_outside_the_writable_places_is_read_only(api: Api, victim: int) -> None:
    code = """
import os, json
result = {}
for path in ["/", "/usr", "/etc", "/opt", "/var", "/root", "/home", "/usr/lib", "/opt/venv/lib", "/bin", "/sbin"]:
    try:
        with open(os.path.join(path, "probe"), "w"):
            pass
        result[path] = "written"
    except OSError as e:
        result[path] = e.strerror
print(json.dumps(result))
"""
    result = json_out(api.execute(victim, code))
    assert set(result.values()) <= {"Read-only file system", "Permission denied"}, result  # /root is 0700
    # runc: EROFS. gVisor checks permissions first: EACCES (these are root's directories). Either way not written.
    expected = "Permission denied" if GVISOR else "Read-only file system"
    assert result["/"] == result["/usr"] == result["/etc"] == expected, result


def test_socket_directory_is_sealed_after_start(api: Api, victim: int) -> None:
    code = """
import os, json
result = {}
for name in ["junk", "kernel.json", "k-1"]:
    try:
        with open("/run/jupycell/" + name, "ab") as f:
            f.write(b"x" * 10)
        result[name] = "written"
    except OSError as e:
        result[name] = e.strerror
try:
    os.chmod("/run/jupycell", 0o777); result["chmod"] = "changed"
except OSError as e:
    result["chmod"] = e.strerror
print(json.dumps(result))
"""
    result = json_out(api.execute(victim, code))
    assert "written" not in result.values() and result["chmod"] == "Operation not permitted", result


def test_nothing_of_the_host_or_other_kernels_is_visible(api: Api, victim: int, bystander: int) -> None:
    code = """
import os, json, glob
def probe(path, mode="r"):
    try:
        with open(path, "rb") as f:
            return len(f.read(4096))
    except OSError as e:
        return e.strerror
def write(path):
    try:
        with open(path, "w") as f:
            f.write("1")
        return "written"
    except OSError as e:
        return e.strerror
cmdlines = []
for d in glob.glob("/proc/[0-9]*"):
    try:
        cmdlines.append(open(d + "/cmdline", "rb").read().replace(b"\\0", b" ").decode())
    except OSError:
        pass
print(json.dumps({
    "root": sorted(os.listdir("/")),
    "run": sorted(os.listdir("/run")),
    "sockets": sorted(os.listdir("/run/jupycell")),
    "docker_sock": [p for p in ["/var/run/docker.sock", "/run/docker.sock"] if os.path.exists(p)],
    "kcore": probe("/proc/kcore"),
    "keys": probe("/proc/keys"),
    "firmware": sorted(os.listdir("/sys/firmware")) if os.path.isdir("/sys/firmware") else None,
    "proc_sys": write("/proc/sys/kernel/hostname"),
    "sysrq": write("/proc/sysrq-trigger"),
    "processes": cmdlines,
    "hostname": open("/etc/hostname").read().strip(),
    "mounts": open("/proc/self/mountinfo").read(),
}))
"""
    seen = json_out(api.execute(victim, code))
    assert seen["sockets"] == ["k-1", "k-2", "k-3", "k-4", "k-5", "kernel.json"]
    assert seen["docker_sock"] == []
    assert set(seen["root"]) <= {
        "bin",
        "boot",
        "dev",
        "etc",
        "home",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "media",
        "mnt",
        "opt",
        "proc",
        "root",
        "run",
        "sbin",
        "srv",
        "sys",
        "tmp",
        "usr",
        "var",
        "work",
        ".dockerenv",
    }, seen["root"]
    # /proc/kcore and /proc/keys: masked by runc (empty), absent or empty under gVisor.
    assert seen["kcore"] in (0, "No such file or directory"), seen["kcore"]
    assert seen["keys"] in (0, "No such file or directory"), seen["keys"]
    assert not seen["firmware"], seen["firmware"]
    assert seen["proc_sys"] in ("Read-only file system", "Permission denied"), seen["proc_sys"]
    assert seen["sysrq"] in ("Read-only file system", "Permission denied", "No such file or directory")
    # Only the sandbox's own processes: its init, the kernel (and this cell's reading of /proc).
    kernel = ("ipykernel", "jupycell_kernel")  # the sandbox's launcher runs ipykernel as `python -m jupycell_kernel`
    assert all(any(k in c for k in kernel) or "init" in c for c in seen["processes"]), seen["processes"]
    assert str(bystander) not in seen["mounts"] and str(bystander) not in " ".join(seen["processes"])


def test_no_secret_of_the_gateway_is_visible(api: Api, victim: int, hostile_gateway: GatewayProcess) -> None:
    code = """
import os, glob, json
environs = [dict(os.environ)]
for path in glob.glob("/proc/[0-9]*/environ"):
    try:
        environs.append(open(path, "rb").read().decode(errors="replace"))
    except OSError:
        pass
print(json.dumps(environs))
"""
    dump = stdout_of(api.execute(victim, code))
    assert KEY not in dump and ADMIN_KEY not in dump
    assert "JUPYCELL_API_KEYS" not in dump and "JUPYCELL_INSTANCE" not in dump and "DOCKER_HOST" not in dump
    assert hostile_gateway.instance not in dump


def test_network_fails_fast_everywhere(api: Api, victim: int, hostile_gateway: GatewayProcess) -> None:
    port = hostile_gateway.port
    targets = {
        "public": ("1.1.1.1", 443),
        "metadata": ("169.254.169.254", 80),
        "bridge": ("172.17.0.1", port),
        "host": ("127.0.0.1", port),
        "ipv6": ("2606:4700:4700::1111", 443),
    }
    assert_network_fails_fast(json_out(api.execute(victim, network_probe(targets))))


def test_no_privilege_can_be_gained(api: Api, victim: int) -> None:
    r = json_out(api.execute(victim, PRIVILEGE_PROBE))
    print(f"\nprivileges seen by the kernel: {r}")
    assert_no_privileges(r, GVISOR)


@pytest.mark.parametrize(
    ("code", "outcomes"),
    [
        # Every process it may signal, except init and itself: there is no other, "No such process".
        ("import os; os.kill(-1, 9)", {"ok", "error: ProcessLookupError", "died"}),
        ("import os; os.kill(1, 9)", {"ok", "died"}),  # the namespace's init ignores SIGKILL from inside
        ("import os, signal; os.kill(1, signal.SIGTERM)", {"ok", "died"}),  # init forwards it to the kernel
        ("import os; os._exit(7)", {"died"}),
    ],
)
def test_killing_things_only_hurts_the_kernel_itself(api: Api, victim: int, code: str, outcomes: set[str]) -> None:
    result = api.execute(victim, "kept = 1\n" + code + "\nimport time; time.sleep(0.5)\nprint('survived')")
    outcome = result["status"]
    if outcome == "error":
        outcome = f"error: {result['outputs'][-1]['ename']}"
    print(f"\n{code}: {outcome} {result.get('detail') or ''}")
    assert outcome in outcomes, result
    if outcome == "died":
        assert result["detail"] and api.http.get(f"/kernels/{victim}").json()["last_death"]
    assert stdout_of(api.execute(victim, "print('alive again')")) == "alive again\n"


def test_files_are_never_visible_to_another_kernel_or_after_replacement(
    api: Api, victim: int, bystander_api: Api, bystander: int
) -> None:
    api.execute(victim, "for p in ['/tmp/planted', '/work/planted', '/dev/shm/planted']:\n    open(p, 'w').write('x')")
    look = "import os; print([p for p in ['/tmp/planted', '/work/planted', '/dev/shm/planted'] if os.path.exists(p)])"
    assert stdout_of(api.execute(victim, look)) == "['/tmp/planted', '/work/planted', '/dev/shm/planted']\n"
    assert stdout_of(bystander_api.execute(bystander, look)) == "[]\n"
    assert api.http.post(f"/kernels/{victim}/restart").status_code == 200
    assert stdout_of(api.execute(victim, look)) == "[]\n"
